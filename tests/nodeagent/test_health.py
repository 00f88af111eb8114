"""The agent's health checks on a real node root: a usable root has no error; a root whose `workitems/`
cannot be made is NodeRootUnusable until it can; a disk with less free space than reserved is DiskFull."""

from __future__ import annotations

import shutil
from pathlib import Path

from shoal.nodeagent import health
from shoal.nodeagent.layout import NodeLayout


def test_a_usable_root_has_no_error_and_no_probe_is_left(tmp_path: Path) -> None:
    layout = NodeLayout(tmp_path / "root")
    assert health.node_errors(layout, 0) == []
    assert not (layout.workitems / health.PROBE).exists()


def test_a_broken_root_is_unusable_until_it_is_mended(tmp_path: Path) -> None:
    layout = NodeLayout(tmp_path / "root")
    layout.create()
    layout.workitems.rmdir()
    layout.workitems.write_text("not a directory")
    (err,) = health.node_errors(layout, 0)
    assert err.code == health.ROOT_UNUSABLE and "workitems" in err.message
    assert {d.name: d.value for d in err.error_details} == {"path": str(layout.root)}
    layout.workitems.unlink()
    assert health.node_errors(layout, 0) == []


def test_less_free_space_than_reserved_is_disk_full(tmp_path: Path) -> None:
    layout = NodeLayout(tmp_path / "root")
    free = shutil.disk_usage(tmp_path).free
    (err,) = health.node_errors(layout, free + 2**40)
    assert err.code == health.DISK_FULL
    details = {d.name: d.value for d in err.error_details}
    assert int(details["reserved_bytes"]) == free + 2**40 and int(details["free_bytes"]) <= free + 2**30
    assert health.node_errors(layout, 1) == []
