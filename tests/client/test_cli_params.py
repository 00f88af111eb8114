"""The CLI's shared parameter types (client/cli_params.py): durations everywhere, upload conditions by Batch's
names, and the readable long forms of --resource, --output-file and --user-account. Through click's CliRunner,
against the fake API on a real in-process gRPC server where a command needs one."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from shoal.client import OutputFileSpec, ResourceFileSpec
from shoal.client.cli import cli
from shoal.client.cli_params import (
    DURATION,
    OUTPUT_FILE,
    RESOURCE_FILE,
    UNLIMITED,
    USER_ACCOUNT,
    WALL_CLOCK_LIMIT,
    split_keyed,
)
from shoal.client.errors import InvalidArgument
from shoal.client.identity_types import UserAccount


def _convert(param_type: click.ParamType, value: str) -> Any:
    """What `param_type` makes of `value` on an option --x (click's usage error on bad input)."""

    @click.command()
    @click.option("--x", type=param_type)
    def command(x: Any) -> None:
        click.echo(repr(x))

    result = CliRunner().invoke(command, ["--x", value], standalone_mode=False, catch_exceptions=True)
    if result.exception is not None:
        raise result.exception
    return command.params[0].type_cast_value(click.Context(command), value)


def _error(args: list[str]) -> str:
    """The usage error (exit code 2) of `shoal ARGS`, which never reaches a server."""
    result = CliRunner().invoke(cli, ["--address", "127.0.0.1:1", *args])
    assert result.exit_code == 2, result.output
    return result.output


# --------------------------------------------------------------------------- durations


def test_duration_type() -> None:
    assert _convert(DURATION, "1h30m") == timedelta(hours=1, minutes=30)
    assert _convert(DURATION, "90") == timedelta(seconds=90)
    assert _convert(DURATION, "0") == timedelta(0)
    assert _convert(WALL_CLOCK_LIMIT, "UNLIMITED") is UNLIMITED
    with pytest.raises(click.BadParameter, match="more than zero"):
        _convert(WALL_CLOCK_LIMIT, "0s")
    with pytest.raises(click.BadParameter, match="not a duration"):
        _convert(DURATION, "unlimited")


@pytest.mark.parametrize(
    "args",
    [
        ["task", "add", "j", "t", "x", "--max-wall-clock", "ten"],
        ["task", "add", "j", "t", "x", "--retention", "-1h"],
        ["task", "update", "j", "t", "--max-wall-clock", "1:30"],
        ["task", "wait", "j", "--timeout", "soon"],
        ["job", "create", "j", "--pool", "p", "--max-wall-clock", "0"],
        ["job", "update", "j", "--max-wall-clock", "forever"],
        ["job", "wait", "j", "--timeout", "1y"],
        ["pool", "create", "p", "--autoscale-interval", "x"],
        ["pool", "create", "p", "--wait", "x"],
        ["pool", "resize", "p", "--nodes", "1", "--wait", "x"],
        ["pool", "update", "p", "--resize-timeout", "x"],
        ["pool", "join-token", "p", "--ttl", "0"],
        ["pool", "autoscale", "enable", "p", "--interval", "x"],
        ["node", "disable", "p", "n", "--wait", "x"],
        ["node", "remove", "p", "n", "--resize-timeout", "x"],
        ["node", "reboot", "p", "n", "--wait", "x"],
        ["schedule", "create", "s", "--pool", "p", "--interval", "x"],
        ["schedule", "create", "s", "--pool", "p", "--max-wall-clock", "x"],
        ["run", "--pool", "p", "--wall-clock", "x", "--", "true"],
    ],
)
def test_a_bad_duration_names_its_option(args: list[str]) -> None:
    option = next(a for a in args if a.startswith("--") and a not in ("--pool", "--nodes", "--"))
    out = _error(args)
    assert f"Invalid value for '{option}'" in out
    # The forms it takes, or what is wrong with the duration.
    assert "90s, 15m, 1h30m" in out or "must be more than zero" in out


def test_durations_reach_the_server_in_every_form(run) -> None:  # type: ignore[no-untyped-def]
    run("pool", "create", "p", "--nodes", "1")
    r = run("job", "create", "j", "--pool", "p", "--max-wall-clock", "1h30m", "-o", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)[0]["max_wall_clock_time"] == 5400.0
    r = run(
        "task", "add", "j", "t", "x", "--max-wall-clock", "01:30:00", "--retention", "2d", "-o", "json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    spec = json.loads(r.output)[0]["spec"]
    assert spec["max_wall_clock_time"] == 5400.0 and spec["retention_time"] == 2 * 86400.0
    r = run("task", "update", "j", "t", "--max-wall-clock", "PT15M", "-o", "json")
    assert json.loads(r.output)[0]["spec"]["max_wall_clock_time"] == 900.0
    r = run("task", "update", "j", "t", "--max-wall-clock", "unlimited", "-o", "json")
    assert json.loads(r.output)[0]["spec"]["max_wall_clock_time"] is None
    r = run("task", "add-many", "j", "--count", "1", "--command", "x", "--id-format", "g{i}", "--max-wall-clock", "90")
    assert r.exit_code == 0, r.output
    assert json.loads(run("task", "get", "j", "g0", "-o", "json").output)["spec"]["max_wall_clock_time"] == 90.0
    r = run("job", "update", "j", "--max-wall-clock", "1.00:00:00", "-o", "json")
    assert json.loads(r.output)[0]["max_wall_clock_time"] == 86400.0


def test_durations_ago_and_from_now() -> None:
    from datetime import UTC, datetime

    from shoal.client.cli_nodes import parse_when
    from shoal.client.cli_nodeusers import _expiry

    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_when("1h30m", "--start", now) == now - timedelta(hours=1, minutes=30)
    assert parse_when("01:00:00", "--start", now) == now - timedelta(hours=1)
    assert _expiry("1d12h") == timedelta(days=1, hours=12)
    assert _expiry("2026-03-01T00:00") == now
    with pytest.raises(click.BadParameter, match=r"neither a duration .*1h30m.* nor an ISO 8601 time"):
        _expiry("whenever")


# --------------------------------------------------------------------------- output files


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("tasksuccess", "success"),
        ("TaskFailure", "failure"),
        ("TASKCOMPLETION", "completion"),
        ("Success", "success"),
        ("completion", "completion"),
    ],
)
def test_upload_conditions_by_batchs_names_in_any_case(given: str, kept: str) -> None:
    assert OutputFileSpec(file_pattern="*", container="c", upload_condition=given).upload_condition == kept
    assert _convert(OUTPUT_FILE, f"*.txt:out::{given}").upload_condition == kept
    assert _convert(OUTPUT_FILE, f"pattern=*.txt,container=out,condition={given}").upload_condition == kept


def test_a_bad_upload_condition_lists_the_names() -> None:
    with pytest.raises(InvalidArgument) as e:
        OutputFileSpec(file_pattern="*", container="c", upload_condition="sometimes")
    assert "tasksuccess" in e.value.message
    out = _error(["task", "add", "j", "t", "x", "--output-file", "*:out:p:sometimes"])
    assert "Invalid value for '--output-file'" in out and "tasksuccess, taskfailure, taskcompletion" in out


def test_the_output_file_help_lists_the_conditions() -> None:
    out = CliRunner().invoke(cli, ["task", "add", "--help"], terminal_width=200).output
    assert all(name in out for name in ("tasksuccess", "taskfailure", "taskcompletion"))
    assert "pattern=GLOB,container=NAME" in out


def test_output_file_forms() -> None:
    packed = _convert(OUTPUT_FILE, "out/*:results:t0/:completion")
    long = _convert(OUTPUT_FILE, "pattern=out/*,container=results,path=t0/,condition=taskcompletion")
    assert (
        packed
        == long
        == OutputFileSpec(file_pattern="out/*", container="results", path="t0/", upload_condition="completion")
    )
    # A glob's {a,b} keeps its comma: only a known key ends a value.
    braces = _convert(OUTPUT_FILE, "pattern={a,b}.txt,container=results")
    assert braces.file_pattern == "{a,b}.txt" and braces.upload_condition == "success"
    for bad, says in [
        ("pattern=*", "container= missing"),
        ("pattern=*,container=c,colour=red", "expected one of"),
        ("pattern=*,container=c,container=d", "given twice"),
        ("justone", "PATTERN:CONTAINER"),
        ("a:b:c:d:e", "PATTERN:CONTAINER"),
    ]:
        with pytest.raises(click.BadParameter, match=says):
            _convert(OUTPUT_FILE, bad)


# --------------------------------------------------------------------------- resource files


def test_resource_file_forms() -> None:
    assert _convert(RESOURCE_FILE, "inputs:data/:in") == _convert(
        RESOURCE_FILE, "container=inputs,prefix=data/,path=in"
    ) == ResourceFileSpec(storage_container="inputs", blob_prefix="data/", file_path="in")  # fmt: skip
    assert _convert(RESOURCE_FILE, "inputs") == ResourceFileSpec(storage_container="inputs")
    assert _convert(RESOURCE_FILE, "https://example.com/x=x.bin") == _convert(
        RESOURCE_FILE, "url=https://example.com/x,path=x.bin"
    )  # fmt: skip
    # Commas inside a URL stay in it; mode= is only in the long form.
    r = _convert(RESOURCE_FILE, "url=https://h/q?a=1,2,path=f.txt,mode=0755")
    assert (r.http_url, r.file_path, r.file_mode) == ("https://h/q?a=1,2", "f.txt", "0755")
    for bad, says in [
        ("url=https://h/x", "path= missing"),
        ("container=c,url=https://h/x,path=p", "one of them"),
        ("prefix=p", "one of them"),
        ("url=https://h/x,path=p,prefix=a", "prefix= goes with container="),
        ("https://h/x", "URL=PATH"),
        ("a:b:c:d", "CONTAINER"),
        ("container=c,size=3", "expected one of"),
    ]:
        with pytest.raises(click.BadParameter, match=says):
            _convert(RESOURCE_FILE, bad)


def test_task_add_takes_the_long_forms(run) -> None:  # type: ignore[no-untyped-def]
    run("pool", "create", "p", "--nodes", "1")
    run("job", "create", "j", "--pool", "p")
    r = run(
        "task", "add", "j", "t", "x",
        "--resource", "container=inputs,prefix=data/,path=in",
        "--resource", "url=https://example.com/x,path=x.bin",
        "--output-file", "pattern=out/*,container=outputs,path=t/,condition=TaskFailure",
        "-o", "json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    spec = json.loads(r.output)[0]["spec"]
    assert spec["resource_files"][0]["storage_container"] == "inputs"
    assert spec["resource_files"][0]["blob_prefix"] == "data/" and spec["resource_files"][0]["file_path"] == "in"
    assert spec["resource_files"][1]["http_url"] == "https://example.com/x"
    assert spec["output_files"][0] == {
        "file_pattern": "out/*",
        "container": "outputs",
        "path": "t/",
        "upload_condition": "failure",
    }
    r = run("task", "add", "j", "m", "x", "--instances", "2", "--common-resource", "container=shared,path=lib")
    assert r.exit_code == 0, r.output


# --------------------------------------------------------------------------- user accounts


def test_user_account_forms() -> None:
    assert _convert(USER_ACCOUNT, "alice:admin:5000:5000") == _convert(
        USER_ACCOUNT, "name=alice,admin,uid=5000,gid=5000"
    ) == UserAccount(name="alice", elevation_level="admin", uid=5000, gid=5000)  # fmt: skip
    assert _convert(USER_ACCOUNT, "name=bob,elevation=admin").elevation_level == "admin"
    assert _convert(USER_ACCOUNT, "name=bob") == UserAccount(name="bob")
    for bad, says in [
        ("name=bob,uid=5", "go together"),
        ("name=bob,uid=x,gid=y", "go together"),
        ("name=bob,elevation=root", "admin or nonadmin"),
        ("name=bob,admin,elevation=admin", "not both"),
        ("bob:5000", "NAME"),
    ]:
        with pytest.raises(click.BadParameter, match=says):
            _convert(USER_ACCOUNT, bad)


def test_pool_create_takes_the_long_user_account(run) -> None:  # type: ignore[no-untyped-def]
    r = run("pool", "create", "p", "--nodes", "1", "--user-account", "name=ops,admin,uid=6000,gid=6000", "-o", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)[0]["user_accounts"] == [
        {"name": "ops", "elevation_level": "admin", "uid": 6000, "gid": 6000}
    ]


def test_split_keyed() -> None:
    assert split_keyed("a=1,b=x,y", ["a", "b"]) == {"a": "1", "b": "x,y"}
    assert split_keyed("a=1, admin", ["a"], flags=["admin"]) == {"a": "1", "admin": "true"}
    assert split_keyed('a="x,b=2",b=3', ["a", "b"]) == {"a": "x,b=2", "b": "3"}
    with pytest.raises(ValueError, match="given twice"):
        split_keyed("a=1,a=2", ["a"])
    with pytest.raises(ValueError, match="'c=3': expected one of a=, b="):
        split_keyed("a=1,c=3", ["a", "b"])


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
paths = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_./", max_size=16)


@given(container=names, prefix=paths, path=paths)
def test_the_long_and_packed_resource_forms_agree(container: str, prefix: str, path: str) -> None:
    long = _convert(RESOURCE_FILE, f"container={container},prefix={prefix},path={path}")
    assert long == _convert(RESOURCE_FILE, f"{container}:{prefix}:{path}")
    assert (long.storage_container, long.blob_prefix, long.file_path) == (container, prefix, path)


@given(
    pattern=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789*?/{},.[]", min_size=1, max_size=16).filter(
        lambda p: not re.search(r",\s*[A-Za-z][\w-]*\s*=", p) and "=" not in p
    ),
    container=names,
    path=paths,
    condition=st.sampled_from(["success", "TaskFailure", "taskcompletion"]),
)
def test_the_long_and_packed_output_forms_agree(pattern: str, container: str, path: str, condition: str) -> None:
    long = _convert(OUTPUT_FILE, f"pattern={pattern},container={container},path={path},condition={condition}")
    assert long.file_pattern == pattern and long.container == container and long.path == path
    if ":" not in pattern:
        assert long == _convert(OUTPUT_FILE, f"{pattern}:{container}:{path}:{condition}")
