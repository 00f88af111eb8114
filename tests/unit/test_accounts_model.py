"""The pure parts of accounts: ids, keys, quotas, and where a client finds its credentials."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.client.credentials import resolve
from shoal.credfiles import server_file_name
from shoal.server.accounts.model import Quotas, Usage, account_id_problem, new_key, quota_refusal


def test_account_ids_follow_batch_rules() -> None:
    assert account_id_problem("teamb") is None and account_id_problem("a1b") is None
    for bad in ("ab", "x" * 25, "Team", "team-b", "_admin", ""):
        assert account_id_problem(bad), bad


def test_keys_are_64_random_bytes_in_base64() -> None:
    keys = {new_key() for _ in range(50)}
    assert len(keys) == 50 and all(len(base64.b64decode(k)) == 64 for k in keys)


limits = st.integers(min_value=0, max_value=50)


@given(limits, limits, limits, limits, limits, limits, st.integers(0, 5), st.integers(0, 60), st.integers(0, 5))
def test_a_quota_refuses_exactly_the_growth_past_it(
    max_pools: int,
    max_nodes: int,
    max_jobs: int,
    pools: int,
    nodes: int,
    jobs: int,
    more_pools: int,
    more_nodes: int,
    more_jobs: int,
) -> None:
    quotas = Quotas(max_pools, max_nodes, max_jobs)
    usage = Usage(pools, nodes, jobs)
    refusal = quota_refusal("a", quotas, usage, pools=more_pools, nodes=more_nodes, jobs=more_jobs)
    past = [
        (limit and more and held + more > limit)
        for limit, held, more in (
            (max_pools, pools, more_pools),
            (max_nodes, nodes, more_nodes),
            (max_jobs, jobs, more_jobs),
        )
    ]
    assert (refusal is not None) == any(past)
    if refusal is not None:
        reasons = ["POOL_QUOTA_REACHED", "NODE_QUOTA_REACHED", "ACTIVE_JOB_QUOTA_REACHED"]
        assert refusal.reason == reasons[[bool(p) for p in past].index(True)]


def _write(path: Path, data: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_a_saved_key_goes_only_to_its_own_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SHOAL_ADDRESS",
        "SHOAL_ACCOUNT_NAME",
        "SHOAL_ACCOUNT_KEY",
        "SHOAL_AUTHENTICATION_TOKEN",
        "SHOAL_KEY",
        "SHOAL_ADMIN_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHOAL_HOME", str(tmp_path))
    latest = {"address": "127.0.0.1:1", "account": "default", "key": "K1", "admin_key": "A1"}
    _write(tmp_path / "credentials.json", latest)
    _write(tmp_path / "servers" / server_file_name("127.0.0.1:2"), {**latest, "address": "127.0.0.1:2", "key": "K2"})
    assert resolve().key == "K1" and resolve().address == "127.0.0.1:1"
    assert resolve("127.0.0.1:2").key == "K2"
    assert resolve("127.0.0.1:3").key is None  # never another server's key
    admin = resolve(admin=True)
    assert (admin.account, admin.key) == ("_admin", "A1")
    # A task's environment wins over the files.
    monkeypatch.setenv("SHOAL_ACCOUNT_NAME", "teamb")
    monkeypatch.setenv("SHOAL_AUTHENTICATION_TOKEN", "st1.teamb.p.n.mac")
    task = resolve()
    assert (task.account, task.key) == ("teamb", "st1.teamb.p.n.mac")
    assert ("authorization", "Bearer st1.teamb.p.n.mac") in task.metadata()
    assert os.environ["SHOAL_HOME"] == str(tmp_path)
