"""The README's list of error reasons is whole (scripts/error_reasons.py reads them from the sources),
and every .proto names its package for Go, Java and C#."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent.parent


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("error_reasons", ROOT / "scripts" / "error_reasons.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # (Its dataclasses look their module up in sys.modules.)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_refusal_has_a_reason_read_from_the_source() -> None:
    found = _script().find()
    assert found.unresolved == [], "add these to DYNAMIC in scripts/error_reasons.py"
    # A few of each kind of site: literals, constants, locals, loops, the agent's file reasons, grpcguard.
    assert "POOL_NOT_FOUND" in found.reasons["NOT_FOUND"]
    assert "BLOB_NOT_FOUND" in found.reasons["NOT_FOUND"]
    assert "TASK_DIRECTORY_NOT_FOUND" in found.reasons["NOT_FOUND"]
    assert {"DUPLICATE_TASK_ID", "INVALID_TASK", "MALFORMED_REQUEST"} <= found.reasons["INVALID_ARGUMENT"]
    assert "NODE_QUOTA_REACHED" in found.reasons["RESOURCE_EXHAUSTED"]
    assert "JOIN_TOKEN_EXPIRED" in found.reasons["UNAUTHENTICATED"]
    assert "TASK_EXISTS" in found.reasons["ALREADY_EXISTS"]
    assert "NODE_UNAVAILABLE" in found.reasons["UNAVAILABLE"]


def test_readme_lists_every_reason() -> None:
    script = _script()
    listed = script.readme_list((ROOT / "README.md").read_text())
    assert listed == script.markdown(script.find()), "run scripts/error_reasons.py --write"


def test_every_proto_names_its_package_for_other_languages() -> None:
    protos = sorted((ROOT / "protos" / "shoal").rglob("*.proto"))
    assert protos
    for proto in protos:
        text = proto.read_text()
        package = re.search(r"^package ([\w.]+);", text, re.M)
        assert package, proto
        for option in ("go_package", "java_package", "csharp_namespace"):
            assert re.search(rf'^option {option} = "[^"]+";', text, re.M), f"{proto}: no {option}"
        assert re.search(r"^option java_multiple_files = true;", text, re.M), proto
