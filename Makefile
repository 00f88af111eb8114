# Shoal: `make demo` runs an embedded cluster through a real workload;
# `make test` installs everything and runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck protos protos-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Shoal needs Python 3.11 or newer"'
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	scripts/gen_protos.sh --check
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy server nodeagent client mpi certs shoal_root

protos: $(STAMP)
	scripts/gen_protos.sh

protos-check: $(STAMP)
	scripts/gen_protos.sh --check

clean:
	rm -rf $(VENV) build *.egg-info demo-data
