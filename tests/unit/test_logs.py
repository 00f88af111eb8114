"""`shoal.logs`: text or JSON lines, fields from context, and secrets redacted whatever the format."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from shoal import logs
from shoal.server.accounts.model import new_key
from shoal.v1 import common_pb2, pool_pb2


@pytest.fixture
def capture() -> Iterator[io.StringIO]:
    """The root logger writing JSON lines into a buffer (the handlers of before put back after)."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    logs.configure("json", "DEBUG", stream=out)
    try:
        yield out
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
        logs.forget_secrets()
        logs.set_static(node=None, pool=None)


def lines(out: io.StringIO) -> list[dict[str, object]]:
    """Every line written, each parsed as one JSON object."""
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_lines_carry_the_record_and_the_context(capture: io.StringIO) -> None:
    log = logging.getLogger("shoal.test")
    logs.set_static(node="node-7")
    with logs.bound(method="/shoal.v1.PoolService/GetPool", request_id="r-1"):
        log.info("found %s", "it", extra={"pool": "p1"})
    log.warning("outside")
    try:
        raise ValueError("boom\nwith a second line")
    except ValueError:
        log.exception("failed")
    first, second, third = (d for d in lines(capture) if d["logger"] == "shoal.test")
    assert first["level"] == "INFO" and first["logger"] == "shoal.test" and first["message"] == "found it"
    assert str(first["timestamp"]).endswith("+00:00")
    assert (first["method"], first["request_id"], first["pool"], first["node"]) == (
        "/shoal.v1.PoolService/GetPool",
        "r-1",
        "p1",
        "node-7",
    )
    assert "method" not in second and second["node"] == "node-7"
    assert third["level"] == "ERROR" and "ValueError: boom" in str(third["exception"])
    assert len(lines(capture)) == len(capture.getvalue().splitlines())  # (a traceback stays in its line)


async def test_fields_bound_in_one_task_stay_there(capture: io.StringIO) -> None:
    log = logging.getLogger("shoal.test")

    async def request(n: int) -> None:
        with logs.bound(request_id=f"r{n}"):
            await asyncio.sleep(0)
            log.info("handled %d", n)

    await asyncio.gather(*(request(n) for n in range(5)))
    mine = [d for d in lines(capture) if d["logger"] == "shoal.test"]
    assert sorted((d["message"], d["request_id"]) for d in mine) == [(f"handled {n}", f"r{n}") for n in range(5)]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_are_redacted_in_either_format(fmt: str) -> None:
    key = new_key()
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure(fmt, "INFO", stream=out)
    try:
        password = 'pa"ss\\wörd-42'
        logs.register_secret(password)
        log = logging.getLogger("shoal.test")
        log.info("key %s and a cut one %s", key, key[:-6] + "AAAAAA")
        log.info("header %s", {"authorization": "Bearer xyz-not-shown"})
        log.info("credential st1.acct.pool.node-1.%s", "A" * 43)
        log.info("join with shoal1.eyJwIjoicCJ9.c2lnbmF0dXJlLXRhZw")
        log.info("a user %s", "$6$rounds=5000$salt$hashhashhash")
        log.info("password=%s secret: %s", "hunter22", "s3cr3t")
        log.info("the user's password is %s", password, extra={"registry_password": password})
        log.info("-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----")
        # What is not secret stays: ids, paths, digests.
        log.info("task render-frame-0001 in /var/lib/shoal/nodes/node-1/wd, sha256 %s", "ab" * 32)
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
        logs.forget_secrets()
    text = out.getvalue()
    for secret in (key, key[:-6], "xyz-not-shown", "A" * 43, "c2lnbmF0dXJlLXRhZw", "hashhashhash", "hunter22"):
        assert secret not in text, secret
    for secret in ("s3cr3t", 'pa"ss', "ss\\\\w", "MIIEv", password):
        assert secret not in text, secret
    assert "render-frame-0001" in text and "/var/lib/shoal/nodes/node-1/wd" in text and "ab" * 32 in text
    if fmt == "json":
        assert len(lines(out)) == 9
        assert all(json.loads(line)["message"] for line in text.splitlines())


def test_secrets_of_a_request_are_registered() -> None:
    registry = common_pb2.ContainerRegistry(registry_server="r.example", user_name="u", password="registry-pw-1")
    pool = pool_pb2.Pool(
        id="p", container_configuration=common_pb2.ContainerConfiguration(container_registries=[registry])
    )
    user = pool_pb2.AddNodeUserRequest(parent="pools/p/nodes/n", user=pool_pb2.NodeUser(name="u", password="nu-pw-2"))
    try:
        assert logs.holds_secrets(pool_pb2.CreatePoolRequest.DESCRIPTOR)
        assert not logs.holds_secrets(pool_pb2.GetPoolRequest.DESCRIPTOR)
        logs.register_message_secrets(pool_pb2.CreatePoolRequest(pool=pool))
        logs.register_message_secrets(user)
        assert logs.redact("registry-pw-1 and nu-pw-2") == f"{logs.REDACTED} and {logs.REDACTED}"
    finally:
        logs.forget_secrets()


def test_a_bad_format_is_refused_and_the_environment_gives_the_default() -> None:
    with pytest.raises(logs.BadLogFormat, match="text, json"):
        logs.check_format("xml")
    assert logs.default_format({"SHOAL_LOG_FORMAT": "JSON"}) == "json"
    assert logs.default_format({}) == "text"
    assert logs.default_level({"SHOAL_LOG_LEVEL": "debug"}) == "DEBUG"


def test_the_server_commands_take_the_format() -> None:
    from click.testing import CliRunner

    from shoal.client.cli import cli

    runner = CliRunner()
    for command in ("server", "up"):
        shown = runner.invoke(cli, [command, "--help"])
        assert shown.exit_code == 0 and "--log-format [text|json]" in shown.output
        refused = runner.invoke(cli, [command, "--data-dir", "/nonexistent", "--log-format", "xml"])
        assert refused.exit_code == 2 and "xml" in refused.output
