"""The compiled core's loader (`shoal.native`): it uses a build only when the build is current."""

from __future__ import annotations

import importlib.machinery
import json
from pathlib import Path

from shoal import native
from shoal.server import controlplane
from shoal.server.domain import records

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def fake_build(root: Path, **manifest_changes: object) -> Path:
    """A source tree under `root` and a build of it (files with the right names, not real extensions)."""
    for d in native.SOURCE_DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
        (root / d / "m.py").write_text(f"# {d}\n")
    build = root / native.BUILD_DIR
    modules = {}
    for name in native.MODULES:
        rel = Path(*name.split(".")).with_suffix(SUFFIX)
        (build / rel).parent.mkdir(parents=True, exist_ok=True)
        (build / rel).write_bytes(b"")
        modules[name] = str(rel)
    (build / f"abc__mypyc{SUFFIX}").write_bytes(b"library")
    built = [*modules.values(), f"abc__mypyc{SUFFIX}"]
    manifest = {
        "suffix": SUFFIX,
        "sources": native.source_digest(root),
        "modules": modules,
        "libraries": {"abc__mypyc": f"abc__mypyc{SUFFIX}"},
        "files": {rel: native.file_digest(build / rel) for rel in built},
        **manifest_changes,
    }
    (build / native.MANIFEST).write_text(json.dumps(manifest))
    return build


def test_a_current_build_is_used(tmp_path: Path) -> None:
    build = fake_build(tmp_path)
    st = native.check(tmp_path, {})
    assert st.active, st.reason
    assert set(st.files) == {*native.MODULES, "abc__mypyc"}
    assert st.files["shoal.server.controlplane"] == build / "shoal" / "server" / f"controlplane{SUFFIX}"
    assert "compiled core in use" in st.describe()


def test_turned_off_by_the_environment(tmp_path: Path) -> None:
    fake_build(tmp_path)
    st = native.check(tmp_path, {native.ENV: "0"})
    assert not st.active and native.ENV in st.reason and "runs from its sources" in st.describe()


def test_not_built(tmp_path: Path) -> None:
    st = native.check(tmp_path, {})
    assert not st.active and "not built" in st.reason


def test_a_failed_build_says_why(tmp_path: Path) -> None:
    fake_build(tmp_path, error="mypyc failed (1): no compiler")
    st = native.check(tmp_path, {})
    assert not st.active and "no compiler" in st.reason


def test_any_source_changed_since_the_build_makes_it_unused(tmp_path: Path) -> None:
    for d in native.SOURCE_DIRS:
        fake_build(tmp_path)
        assert native.check(tmp_path, {}).active
        (tmp_path / d / "m.py").write_text("# edited\n")
        st = native.check(tmp_path, {})
        assert not st.active and "changed since the build" in st.reason, d
    fake_build(tmp_path)
    (tmp_path / "server" / "new.pyi").write_text("")
    assert not native.check(tmp_path, {}).active


def test_a_build_for_another_interpreter_or_set_of_modules_is_unused(tmp_path: Path) -> None:
    fake_build(tmp_path, suffix=".cpython-399-x86_64-linux-gnu.so")
    assert "this interpreter" in native.check(tmp_path, {}).reason
    fake_build(tmp_path, modules={"shoal.server.controlplane": "x.so"})
    assert "another set of modules" in native.check(tmp_path, {}).reason


def test_a_missing_file_makes_the_build_unused(tmp_path: Path) -> None:
    build = fake_build(tmp_path)
    (build / f"abc__mypyc{SUFFIX}").unlink()
    st = native.check(tmp_path, {})
    assert not st.active and "missing" in st.reason


def test_a_built_file_changed_since_the_build_makes_it_unused(tmp_path: Path) -> None:
    """A truncated or replaced extension would fail to import half-way, some modules already compiled."""
    build = fake_build(tmp_path)
    (build / f"abc__mypyc{SUFFIX}").write_bytes(b"librar")
    st = native.check(tmp_path, {})
    assert not st.active and "changed since the build" in st.reason
    fake_build(tmp_path, files={})
    assert "does not list every built file" in native.check(tmp_path, {}).reason


def test_a_manifest_in_any_state_gives_a_reason_never_an_error(tmp_path: Path) -> None:
    build = fake_build(tmp_path)
    odd_files = json.dumps({"suffix": SUFFIX, "modules": {}, "files": 1})
    for text in ("[]", "{", "null", '{"modules": 3}', odd_files):
        (build / native.MANIFEST).write_text(text)
        st = native.check(tmp_path, {})
        assert not st.active and st.reason, text
    fake_build(tmp_path, files={"nowhere.so": "0"})
    assert not native.check(tmp_path, {}).active


def test_a_build_elsewhere_is_checked_against_these_sources(tmp_path: Path) -> None:
    """A build staged outside build/native (as build_native.py tries it before putting it in place)."""
    build = fake_build(tmp_path)
    staged = tmp_path / "staged"
    build.rename(staged)
    assert not native.check(tmp_path, {}).active
    st = native.check(tmp_path, {}, build=staged)
    assert st.active and st.files["abc__mypyc"] == staged / f"abc__mypyc{SUFFIX}"


def test_this_process_runs_what_the_check_decided() -> None:
    """The control plane here is compiled exactly when this checkout has a current build (as `make test` makes)."""
    st = native.status()
    for module in (controlplane, records):
        assert native.running_compiled(module) == st.active, (module.__name__, st.describe())
    assert st.active == records.COMPILED
