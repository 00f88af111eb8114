"""A root agent runs tasks as the users their identities name: real users made on this machine (with this
run's prefix, removed at its end), real processes, files owned accordingly."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import stat
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from shoal.agent.v1 import agent_pb2
from shoal.nodeagent import ownership, usernames
from shoal.nodeagent.agent import Agent
from shoal.nodeagent.config import AgentConfig, default_user_prefix
from shoal.v1 import common_pb2, identity_pb2
from tests.mpi.exec_client import exec_call
from tests.nodeagent.conftest import PlaneServer, assignment, start_tasks
from tests.taskusers import SKIP_REASON, can_make_users, open_dir
from tests.tlshelp import give_node_identity

pytestmark = pytest.mark.skipif(not can_make_users(), reason=SKIP_REASON)

ID = identity_pb2
COMPLETED = agent_pb2.TASK_EVENT_KIND_COMPLETED
TASK_USER = ID.UserIdentity(auto_user=ID.AutoUserSpecification(scope=ID.AUTO_USER_SCOPE_TASK))
ADMIN = ID.UserIdentity(auto_user=ID.AutoUserSpecification(elevation_level=ID.ELEVATION_LEVEL_ADMIN))
POOL = "pool1"

MakeAgent = Callable[..., Coroutine[Any, Any, Agent]]


@pytest.fixture
async def node(plane_server: PlaneServer) -> AsyncIterator[tuple[MakeAgent, Path]]:
    """Start an agent whose node root other users can reach (so it runs tasks as their users)."""
    started: list[tuple[Agent, asyncio.Task[int]]] = []
    with open_dir() as base:

        async def make(welcome: agent_pb2.Welcome | None = None, **kw: Any) -> Agent:
            plane_server.plane.welcome = welcome or agent_pb2.Welcome(
                node_id="n1", pool_id=POOL, heartbeat_interval_seconds=30
            )
            # The node's certificate, as the local provider gives it.
            give_node_identity(base / "node", "n1", POOL)
            cfg = AgentConfig(
                server=plane_server.address,
                agent_server=plane_server.address,
                node_root=base / "node",
                ip="127.0.0.1",
                orphan_timeout=60.0,
                kill_grace_seconds=0.5,
                **kw,
            )
            agent = Agent(cfg)
            started.append((agent, asyncio.create_task(agent.run())))
            await plane_server.plane.wait_for(lambda: plane_server.plane.registers)
            return agent

        try:
            yield make, base / "node"
        finally:
            for agent, task in started:
                agent.request_stop("test over")
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 15)


async def run(ps: PlaneServer, *tasks: agent_pb2.TaskAssignment, command_id: int = 1) -> list[agent_pb2.TaskEvent]:
    """Send the assignments at once; their COMPLETED events."""
    await ps.plane.send(start_tasks(command_id, *tasks))
    return [await ps.plane.wait_event(t.attempt.task_id, COMPLETED) for t in tasks]


def out(root: Path, task_id: str, job_id: str = "j1") -> str:
    return (root / "workitems" / job_id / "job-1" / task_id / "stdout.txt").read_text()


def owner_mode(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, stat.S_IMODE(st.st_mode)


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll `condition` (a cleanup in the agent's thread pool, which sends no message to wait on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_default_identity_is_the_pools_user(node: tuple[MakeAgent, Path], plane_server: PlaneServer) -> None:
    make, root = node
    agent = await make()
    reg = plane_server.plane.registers[0]
    assert reg.task_user_isolation and reg.agent_user == "root"
    name = usernames.pool_user(default_user_prefix(), POOL)
    plane_server.storage.put("inputs", "sub/data.txt", b"staged\n")
    task = assignment(
        "t1",
        "sh -c 'id -u; id -g; id -G; echo $HOME $USER $LOGNAME; cat sub/data.txt; touch made-by-task'",
        resource_files=[common_pb2.ResourceFile(storage_container_name="inputs", blob_prefix="sub/")],
    )
    (done,) = await run(plane_server, task)
    task_dir = root / "workitems" / "j1" / "job-1" / "t1"
    assert done.exit_code == 0, (task_dir / "stderr.txt").read_text()
    pw = pwd.getpwnam(name)
    assert pw.pw_uid != 0
    uid, gid, groups, env, staged = out(root, "t1").splitlines()
    assert (int(uid), int(gid), groups) == (pw.pw_uid, pw.pw_gid, str(pw.pw_gid))  # no other group
    assert env == f"{root}/home/{name} {name} {name}"
    # The task directory, what is staged into it and what the task makes are the user's; the
    # directories are its alone.
    assert staged == "staged"
    assert owner_mode(task_dir) == (pw.pw_uid, 0o700)
    assert owner_mode(task_dir / "wd") == (pw.pw_uid, 0o700)
    for f in ("stdout.txt", "wd/sub", "wd/sub/data.txt", "wd/made-by-task"):
        assert os.lstat(task_dir / f).st_uid == pw.pw_uid, f
    assert owner_mode(root / "home" / name) == (pw.pw_uid, 0o700)
    # The agent (root) still reads what the task wrote.
    assert agent.users.isolation


async def test_task_scope_users_keep_tasks_apart_and_admin_reads_all(
    node: tuple[MakeAgent, Path], plane_server: PlaneServer
) -> None:
    make, root = node
    agent = await make()
    pool_uid = None
    writer = assignment("writer", "sh -c 'id -u; echo secret > secret.txt; sleep 1'", user_identity=TASK_USER)
    reader = assignment(
        "reader",
        "sh -c 'id -u; sleep 0.3; cat $SHOAL_TASK_DIR/../writer/wd/secret.txt; echo rc=$?; "
        "ls $SHOAL_TASK_DIR/../writer'",
        user_identity=TASK_USER,
    )
    w, r = await run(plane_server, writer, reader)
    assert w.exit_code == 0 and r.exit_code != 0
    w_uid, r_uid = int(out(root, "writer").split()[0]), int(out(root, "reader").split()[0])
    assert w_uid != r_uid and 0 not in (w_uid, r_uid)
    assert "rc=1" in out(root, "reader")
    assert "Permission denied" in (root / "workitems" / "j1" / "job-1" / "reader" / "stderr.txt").read_text()
    with contextlib.suppress(KeyError):
        pool_uid = pwd.getpwnam(usernames.pool_user(default_user_prefix(), POOL)).pw_uid
    assert pool_uid not in (w_uid, r_uid)
    # Both users go back to the free list once nothing of their tasks can be reached through them: the
    # task directories are root's now.
    await until(lambda: len(agent.users._free) == 2)
    assert owner_mode(root / "workitems" / "j1" / "job-1" / "writer") == (0, 0o700)
    again = assignment("again", "sh -c 'id -u; cat $SHOAL_TASK_DIR/../writer/wd/secret.txt'", user_identity=TASK_USER)
    admin = assignment("admin", "sh -c 'id -u; cat $SHOAL_TASK_DIR/../writer/wd/secret.txt'", user_identity=ADMIN)
    a, adm = await run(plane_server, again, admin, command_id=2)
    # A later task takes one of those users (no new user) and cannot read what the writer left.
    assert int(out(root, "again").split()[0]) in (w_uid, r_uid)
    assert a.exit_code != 0
    assert adm.exit_code == 0 and out(root, "admin").split() == ["0", "secret"]


def _free_id() -> int:
    for i in range(42000 + os.getpid() % 5000, 60000):
        with contextlib.suppress(KeyError):
            pwd.getpwuid(i)
            continue
        with contextlib.suppress(KeyError):
            grp.getgrgid(i)
            continue
        return i
    raise AssertionError("no free id")


async def test_named_accounts(node: tuple[MakeAgent, Path], plane_server: PlaneServer) -> None:
    make, root = node
    uid = _free_id()
    accounts = [
        ID.UserAccount(name="alice", linux_user_configuration=ID.LinuxUserConfiguration(uid=uid, gid=uid)),
        ID.UserAccount(name="ops", elevation_level=ID.ELEVATION_LEVEL_ADMIN),
        ID.UserAccount(name="bob"),
    ]
    await make(agent_pb2.Welcome(node_id="n1", pool_id=POOL, heartbeat_interval_seconds=30, user_accounts=accounts))
    tasks = [
        assignment("a", "sh -c 'id -u; id -g'", user_identity=ID.UserIdentity(user_name="alice")),
        assignment("o", "id -u", user_identity=ID.UserIdentity(user_name="ops")),
        assignment("b", "id -un", user_identity=ID.UserIdentity(user_name="bob")),
        assignment("x", "id -u", user_identity=ID.UserIdentity(user_name="carol")),
    ]
    a, o, b, x = await run(plane_server, *tasks)
    assert a.exit_code == o.exit_code == b.exit_code == 0
    assert out(root, "a").split() == [str(uid), str(uid)]
    assert out(root, "o").split() == ["0"]
    assert out(root, "b").strip() == usernames.account_user(default_user_prefix(), POOL, "bob")
    assert pwd.getpwuid(uid).pw_name == usernames.account_user(default_user_prefix(), POOL, "alice")
    # A name that is none of the pool's accounts fails the task before it starts.
    assert not x.HasField("exit_code")
    assert x.failure_info.code == "CommandLaunchFailed" and "'carol'" in x.failure_info.message


async def test_start_task_preparation_and_shared_directories(
    node: tuple[MakeAgent, Path], plane_server: PlaneServer
) -> None:
    """An ADMIN start task installs into its directory, which every task reads (as the job's tasks read
    its preparation's); the shared directory is every task's to write."""
    make, root = node
    welcome = agent_pb2.Welcome(
        node_id="n1",
        pool_id=POOL,
        heartbeat_interval_seconds=30,
        run_start_task=True,
        start_task=common_pb2.StartTask(
            command_line="sh -c 'id -u > tool.txt; mkdir -p $SHOAL_NODE_SHARED_DIR/in'", user_identity=ADMIN
        ),
    )
    await make(welcome)
    await plane_server.plane.wait_for(
        lambda: [r for r in plane_server.plane.start_reports() if r.state == common_pb2.START_TASK_STATE_COMPLETED]
    )
    assert owner_mode(root / "startup") == (0, 0o755)
    prep = agent_pb2.JobTaskSpec(job_id="j1", command_line="sh -c 'echo ready > marker; id -u'", wait_for_success=True)
    task = assignment(
        "t",
        "sh -c 'cat $SHOAL_NODE_STARTUP_DIR/wd/tool.txt $SHOAL_JOB_PREP_WORKING_DIR/marker; "
        "echo hi > $SHOAL_NODE_SHARED_DIR/from-task; id -u'",
        user_identity=TASK_USER,
        job_preparation=prep,
    )
    (done,) = await run(plane_server, task)
    task_dir = root / "workitems" / "j1" / "job-1" / "t"
    assert done.exit_code == 0, (task_dir / "stderr.txt").read_text()
    tool, marker, uid = out(root, "t").split()
    assert (tool, marker) == ("0", "ready")
    pool_uid = pwd.getpwnam(usernames.pool_user(default_user_prefix(), POOL)).pw_uid
    # The preparation ran as the pool's user (the default), in a directory every user reads.
    prep_dir = root / "workitems" / "j1" / "job-1" / "jobpreparation"
    assert owner_mode(prep_dir) == (pool_uid, 0o755)
    assert os.lstat(root / "shared" / "from-task").st_uid == int(uid)
    assert stat.S_IMODE(os.lstat(root / "shared").st_mode) == 0o1777
    assert stat.S_IMODE(os.lstat(root / "volatile").st_mode) == 0o711


async def test_agent_told_not_to_runs_tasks_as_itself(node: tuple[MakeAgent, Path], plane_server: PlaneServer) -> None:
    make, root = node
    await make(task_users=False)
    reg = plane_server.plane.registers[0]
    assert not reg.task_user_isolation and reg.agent_user == "root"
    (done,) = await run(plane_server, assignment("t", "id -u", user_identity=TASK_USER))
    assert done.exit_code == 0 and out(root, "t").split() == ["0"]


async def test_multi_instance_commands_and_exec_run_as_the_pools_user(
    node: tuple[MakeAgent, Path], plane_server: PlaneServer
) -> None:
    """A multi-instance task asking for a task-scope user takes its pool's (its instances share a directory),
    and what the exec port starts inside it (MPI proxies) runs as that user too."""
    make, root = node
    agent = await make()
    task_dir = root / "workitems" / "j1" / "job-1" / "mi"
    mi = agent_pb2.MultiInstance(
        instance_index=0,
        number_of_instances=1,
        host_list=["127.0.0.1"],
        agent_addresses=[f"127.0.0.1:{agent.node_service_port}"],
        coordination_command_line="sh -c 'id -u > coord-uid'",
        task_shared_dir=str(task_dir),
        exec_secret="the-gangs-secret",
    )
    task = assignment("mi", "id -u", user_identity=TASK_USER, multi_instance=mi)
    await plane_server.plane.send(start_tasks(1, task))
    await plane_server.plane.wait_event("mi", agent_pb2.TASK_EVENT_KIND_COORDINATED)
    pool_uid = pwd.getpwnam(usernames.pool_user(default_user_prefix(), POOL)).pw_uid
    assert (task_dir / "wd" / "coord-uid").read_text().strip() == str(pool_uid)

    # Through the exec port, as `shoal-mpi-launch` calls it.
    hello = {
        "job_id": "j1",
        "task_id": "mi",
        "attempt": 1,
        "argv": ["sh", "-c", "id -u; id -G"],
        "secret": "the-gangs-secret",
    }
    result = await exec_call(f"127.0.0.1:{agent.exec_port}", hello)
    assert result.exit_code == 0, result
    assert result.stdout.split() == [str(pool_uid).encode(), str(pool_uid).encode()]
    ref = agent_pb2.AttemptRef(job_id="j1", task_id="mi", attempt=1)
    await plane_server.plane.send(
        agent_pb2.ServerMessage(run_application=agent_pb2.RunApplication(command_id=2, attempt=ref))
    )
    done = await plane_server.plane.wait_event("mi", COMPLETED)
    assert done.exit_code == 0 and out(root, "mi").split() == [str(pool_uid)]


def test_giving_a_directory_away_never_follows_a_link(tmp_path: Path) -> None:
    """A task that swapped its directory for a link to, say, /etc does not get the link's target."""
    target = tmp_path / "target"
    target.mkdir(mode=0o755)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OSError):
        ownership.give(link, (65534, 65534), 0o700)
    assert owner_mode(target) == (0, 0o755)
    ownership.give(target, (65534, 65534), 0o700)
    assert owner_mode(target) == (65534, 0o700)


async def test_a_task_user_new_to_the_agent_takes_nothing_an_earlier_agent_left(
    node: tuple[MakeAgent, Path], plane_server: PlaneServer
) -> None:
    """Task-scope users are named by slot: after an agent dies, the next one lends the same users again, so
    before the first lending it takes back what they may still own (a task directory left as theirs)."""
    make, root = node
    name = usernames.task_user(default_user_prefix(), POOL, str(root), 0)
    agent = await make()
    (first,) = await run(plane_server, assignment("first", "id -u", user_identity=TASK_USER))
    assert first.exit_code == 0
    uid = pwd.getpwnam(name).pw_uid
    assert out(root, "first").split() == [str(uid)]
    # As if an agent had died before it took back a directory of that user.
    left = root / "workitems" / "old" / "job-1" / "x"
    (left / "wd").mkdir(parents=True)
    (left / "wd" / "secret.txt").write_text("s3cret\n")
    for d in (left / "wd", left):
        os.chown(d, uid, uid)
        d.chmod(0o755)
    plane_server.plane.stream_ended.clear()
    agent.request_stop("test")
    await asyncio.wait_for(plane_server.plane.stream_ended.wait(), 15)
    await make()
    await plane_server.plane.wait_for(lambda: len(plane_server.plane.registers) == 2)
    (again,) = await run(
        plane_server,
        assignment("again", f"sh -c 'id -u; cat {left}/wd/secret.txt'", user_identity=TASK_USER),
        command_id=2,
    )
    assert int(out(root, "again").split()[0]) == uid
    assert again.exit_code != 0
    assert owner_mode(left) == (0, 0o700)
