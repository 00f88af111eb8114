"""Fuzz every RPC of every public service: no request, however odd, gets INTERNAL or UNKNOWN.

Requests are generated from the services' descriptors (hypothesis): every field of the request
type, recursively, unset or set to a value of its type. Most requests are tame: plausible values
and names of what exists, so that they get past the first checks into the code behind them, with
now and then one wild value deep inside. The others are wild: huge and negative numbers, unknown
enum values, invalid and out-of-range Durations and Timestamps, long and non-ASCII strings, NUL,
paths that climb, unbalanced quotes, forged page tokens; or not messages at all (random bytes).
They go as bytes through a generic channel to a real server (its own thread and event loop)
holding a pool with a joined node that serves its files for real (the agent's NodeService over a
temporary node root), a job with a task running there, and a container with a blob.

Each answer must be a deliberate status (none of `FORBIDDEN`), and nothing may log a traceback.
The default run sends `DEFAULT_EXAMPLES` requests; `SHOAL_FUZZ_EXAMPLES=N` makes a longer run (`make test`
sends 4,000 in its pass over the sources; `SHOAL_FUZZ_EXAMPLES=10000 make test` a long one), which prints
the statuses it saw.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import functools
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor, message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.nodeagent.fileservice import NodeFileService
from shoal.nodeagent.layout import NodeLayout
from shoal.server.app import ServerConfig, ShoalServer
from shoal.tlsconfig import server_credentials
from shoal.v1 import (
    account_pb2,
    application_pb2,
    certificate_pb2,
    job_pb2,
    job_pb2_grpc,
    join_pb2,
    pool_pb2,
    pool_pb2_grpc,
    storage_pb2,
    storage_pb2_grpc,
    task_pb2,
    task_pb2_grpc,
)
from tests.channels import server_channel, sync_channel
from tests.service.scripted_agent import ScriptedAgent

DEFAULT_EXAMPLES = 1500
EXAMPLES = int(os.environ.get("SHOAL_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
#: Deadline of each call (a stream that follows a file, or watches a job, runs until it).
CALL_SECONDS = 2.0
#: Never an answer: INTERNAL and UNKNOWN (a failure the server did not mean), RESOURCE_EXHAUSTED (these
#: requests are small: an answer too large for the client, say) and UNAVAILABLE (the node under fuzz
#: is always there: an agent that failed on a request the server passed on).
FORBIDDEN = {
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
}

SERVICES = [
    pool_pb2.DESCRIPTOR.services_by_name["PoolService"],
    job_pb2.DESCRIPTOR.services_by_name["JobService"],
    task_pb2.DESCRIPTOR.services_by_name["TaskService"],
    storage_pb2.DESCRIPTOR.services_by_name["StorageService"],
    account_pb2.DESCRIPTOR.services_by_name["AccountService"],
    certificate_pb2.DESCRIPTOR.services_by_name["CertificateService"],
    application_pb2.DESCRIPTOR.services_by_name["ApplicationService"],
    join_pb2.DESCRIPTOR.services_by_name["JoinService"],
]
#: Sent with the administrator's key (the rest with the default account's).
ADMIN_METHODS = {m.name for m in account_pb2.DESCRIPTOR.services_by_name["AccountService"].methods}
METHODS = [m for s in SERVICES for m in s.methods]

#: Methods that end or shrink what they name: they never get the fixture's own resources.
DESTRUCTIVE = {
    "DeletePool",
    "ResizePool",
    # (A new target, start task or certificates for the fixture's pool would change its node.)
    "UpdatePool",
    "DeleteJob",
    "TerminateJob",
    "DeleteTask",
    "TerminateTask",
    # (A new default key would lock the fuzzer's own channel out; quotas on it would refuse its work.)
    "SetAccountQuotas",
    "RegenerateAccountKey",
    "DeleteAccount",
}
PROTECTED = {"pools/p", "jobs/j", "jobs/j/tasks/t", "box", "accounts/default"}

# ------------------------------------------------------------------ values

INT32 = [0, 1, -1, 2, 3, 7, 64, 1000, 1001, 2**31 - 1, -(2**31)]
INT64 = [*INT32, 2**32, 2**53 + 1, 2**63 - 1, -(2**63), 315_576_000_000, 315_576_000_001, 10**14]
UINT = [0, 1, 2**32 - 1, 2**64 - 1]
NASTY = [
    "",
    " ",
    ".",
    "..",
    "/",
    "//",
    "../../etc/passwd",
    "/etc/passwd",
    "wd/../..",
    "a\x00b",
    "\x00",
    "x" * 6000,
    "\u30d7" * 3000,
    "a" * 65,
    "A" * 64,
    "\U0001f600",
    "\u202e",
    "%s%n%x",
    "'",
    '"',
    "\\",
    'echo "unbalanced',
    "echo 'it''s",
    "sh -c 'exit 3'",
    "LTE=",
    "OTk5OTk5OTk5OTk5OTk5OTk5OTk=",
    "AQAAAAAAAAPoAAAAAAAAAAAA",
    "*",
    "**/*",
    "0755",
    "999",
    "http://127.0.0.1:9/x",
    "ftp://x",
    "javascript:alert(1)",
    "pools/",
    "pools/p/nodes/",
    "jobs/j/tasks/",
    "jobs//tasks/t",
    "containers/box",
]


class Names:
    """What exists on the server under fuzz (the node id is known once its agent joined)."""

    node_id = "node-1"

    @classmethod
    def resources(cls) -> list[str]:
        return [
            "pools/p",
            "pools/P",
            f"pools/p/nodes/{cls.node_id}",
            "pools/px",
            "jobs/j",
            "jobs/J",
            "jobs/j/tasks/t",
            "jobs/j/tasks/T",
            "jobs/j/tasks/t2",
            "jobs/jx",
            "jobs/jx/tasks/tx",
        ]


#: Values a well-meaning client would send, by field name: a tame request is made of these, so that
#: it gets past the first checks into the code behind them.
PLAUSIBLE: dict[str, list[str]] = {
    "id": ["px", "jx", "tx", "t2", "box2", "boxx", "p"],
    "pool_id": ["p", "px"],
    "job_id": ["j"],
    "task_id": ["t"],
    "task_ids": ["t", "t2"],
    "container": ["box", "box2"],
    "storage_container_name": ["box"],
    "container_name": ["box"],
    "blob_name": ["b", "dir/b"],
    "blob_prefix": ["", "d", "dir/"],
    "prefix": ["", "b", "dir/"],
    "path": ["", "wd", "wd/hello.txt", "stdout.txt", "out/x"],
    "file_path": ["", ".", "in/x"],
    "file_pattern": ["*.txt", "**/*", "../stdout.txt"],
    "file_mode": ["0644", "755"],
    "http_url": ["http://127.0.0.1:9/x"],
    "command_line": ["/bin/true", "echo hi", "sh -c 'exit 3'"],
    "coordination_command_line": ["", "/bin/true"],
    "provider": ["", "join", "local"],
    "update_mask": ["priority", "on_all_tasks_complete"],
    "page_token": [""],
    # (No precondition: a random etag would stop most changes at ETAG_MISMATCH; wild requests send them.)
    "etag": [""],
    "name": ["A", "PATH"],
    "value": ["1", ""],
}
#: Fields a tame message always sets (unset, the request goes no further).
ALWAYS = {"id", "command_line", "container", "blob_name", "file_pattern", "container_name"}
#: Numbers a well-meaning client would send, by field name (others: 0 to 3).
PLAUSIBLE_INT: dict[str, list[int]] = {
    "number_of_instances": [1],
    "required_slots": [0, 1],
    "target_nodes": [0, 1, 2],
    "task_slots_per_node": [0, 1, 2],
    "priority": [0, 5, -5],
    "max_task_retry_count": [-1, 0, 2],
    "page_size": [0, 1, 2],
}


def _strings() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(Names.resources()),
        st.sampled_from(NASTY),
        st.text(max_size=24),
        st.text(alphabet="abjpt/-_.", max_size=16),
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


#: Page tokens a client could forge: numbers of any size and sign, random bytes, a real token's shape.
FORGED_TOKENS = st.one_of(
    st.integers().map(lambda i: _b64(str(i).encode())),
    st.binary(max_size=40).map(_b64),
    st.binary(min_size=16, max_size=16).map(lambda b: _b64(b"\x01" + b)),
    _strings(),
)


def _one_in(n: int, rare: st.SearchStrategy[Any], common: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`rare` about once in `n` draws, else `common` (st.one_of gives each branch an equal share)."""
    # (The last index, not the first: hypothesis favours the first of a choice.)
    return st.sampled_from(range(n)).flatmap(lambda i: rare if i == n - 1 else common)


def _integers(values: list[int], lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(values), st.integers(min_value=lo, max_value=hi))


def _time_value(cls: type[message.Message], tame: bool) -> st.SearchStrategy[message.Message]:
    """A Duration or Timestamp: valid (tame), or anything: out of range, of mixed signs."""
    if tame:
        return st.builds(lambda s: cls(seconds=s), st.integers(0, 3600))
    return st.builds(
        lambda s, n: cls(seconds=s, nanos=n),
        _integers([*INT64, -1, 3600, 36_500 * 86_400 + 1], -(2**63), 2**63 - 1),
        _integers([0, 1, -1, 999_999_999, 1_000_000_000, -1845], -(2**31), 2**31 - 1),
    )


def _names_for(method: str) -> list[str]:
    """The resource names `method` takes (those that exist, mostly)."""
    node = f"pools/p/nodes/{Names.node_id}"
    by_method = {
        "ListNodes": ["pools/p", "pools/px"],
        "GetNode": [node, "pools/p/nodes/node-0"],
        "ListNodeFiles": [node],
        "ReadNodeFile": [node],
        "GetNodeFileProperties": [node],
        "DeleteNodeFile": [node],
        "AddTask": ["jobs/j", "jobs/jx"],
        "AddTasks": ["jobs/j", "jobs/jx"],
        "ListTasks": ["jobs/j", "jobs/jx"],
        "WatchTasks": ["jobs/j"],
    }
    if method in by_method:
        return by_method[method]
    if "Account" in method:
        return ["accounts/default", "accounts/other", "accounts/Bad"]
    if "Pool" in method:
        return ["pools/p", "pools/P", "pools/px"]
    if "Task" in method or method == "ListSubtasks":
        return ["jobs/j/tasks/t", "jobs/j/tasks/T", "jobs/j/tasks/t2", "jobs/jx/tasks/tx"]
    return ["jobs/j", "jobs/J", "jobs/jx"]


def _plausible_string(
    f: descriptor.FieldDescriptor, desc: descriptor.Descriptor, method: str
) -> st.SearchStrategy[str]:
    if f.name in ("name", "parent") and desc.full_name != "shoal.v1.EnvironmentSetting":
        return st.sampled_from(_names_for(method))
    if f.name == "id":
        # New ids as often as known ones: a create that always met an existing id would go no further.
        return st.sampled_from(PLAUSIBLE["id"]) | st.integers(0, 10**9).map(lambda i: f"x{i}")
    return st.sampled_from(PLAUSIBLE.get(f.name, ["x"]))


def _field_value(
    f: descriptor.FieldDescriptor, desc: descriptor.Descriptor, method: str, depth: int, tame: bool
) -> st.SearchStrategy[Any]:
    T = descriptor.FieldDescriptor
    if f.type == T.TYPE_MESSAGE:
        full = f.message_type.full_name
        if full in ("google.protobuf.Duration", "google.protobuf.Timestamp"):
            return _time_value(GetMessageClass(f.message_type), tame)
        return message_strategy(f.message_type, method, depth + 1, tame)
    if f.type == T.TYPE_ENUM:
        defined = [v.number for v in f.enum_type.values]
        return st.sampled_from(defined) if tame else _integers([*defined, -1, 99], -(2**31), 2**31 - 1)
    if f.type in (T.TYPE_INT32, T.TYPE_SINT32, T.TYPE_SFIXED32):
        if tame:
            return st.sampled_from(PLAUSIBLE_INT[f.name]) if f.name in PLAUSIBLE_INT else st.integers(0, 3)
        return _integers(INT32, -(2**31), 2**31 - 1)
    if f.type in (T.TYPE_INT64, T.TYPE_SINT64, T.TYPE_SFIXED64):
        return st.integers(0, 3) if tame else _integers(INT64, -(2**63), 2**63 - 1)
    if f.type in (T.TYPE_UINT32, T.TYPE_FIXED32):
        return _integers(UINT[:3], 0, 2**32 - 1)
    if f.type in (T.TYPE_UINT64, T.TYPE_FIXED64):
        return _integers(UINT, 0, 2**64 - 1)
    if f.type == T.TYPE_BOOL:
        return st.booleans()
    if f.type in (T.TYPE_DOUBLE, T.TYPE_FLOAT):
        return st.floats(width=32 if f.type == T.TYPE_FLOAT else 64)
    if f.type == T.TYPE_BYTES:
        return st.binary(max_size=64)
    if tame:
        strings = _plausible_string(f, desc, method)
    elif f.name == "page_token":
        strings = FORGED_TOKENS
    else:
        strings = _strings()
    if method in DESTRUCTIVE and f.name in ("name", "parent"):
        strings = strings.filter(lambda s: s.lower() not in PROTECTED)
    if method == "DeleteContainer" and f.name == "id":
        strings = strings.filter(lambda s: s != "box")
    if method == "UpdatePool" and f.name == "id":  # (UpdatePool names its pool by id as well)
        strings = strings.filter(lambda s: s.lower() != "p")
    return strings


def message_strategy(
    desc: descriptor.Descriptor, method: str, depth: int = 0, tame: bool = False
) -> st.SearchStrategy[Any]:
    """Messages of type `desc`: each field unset or set to a value of its type (repeated: up to 3).

    A tame message holds plausible values, with now and then a wild one; a wild one, anything.
    """
    cls = GetMessageClass(desc)
    if depth > 4:
        return st.just(cls())
    fields = {}
    for f in desc.fields:
        value = _field_value(f, desc, method, depth, tame)
        if tame:
            # Now and then one wild value among the tame ones: an error deep inside a good request.
            value = _one_in(15, _field_value(f, desc, method, depth, tame=False), value)
        value = st.lists(value, min_size=int(tame and depth == 0), max_size=3) if f.is_repeated else value
        if not tame:
            fields[f.name] = st.none() | value
        elif depth == 0 or f.name in ALWAYS:
            # A tame request sets its own fields (one without its name or its task goes no further)...
            fields[f.name] = _one_in(10, st.none(), value)
        elif f.is_repeated or f.message_type:
            # ...and few of the optional parts within (each one is a chance to be refused)...
            fields[f.name] = _one_in(3, value, st.none())
        else:
            # ...and most of the plain fields of those.
            fields[f.name] = _one_in(4, st.none(), value)

    def build(values: dict[str, Any]) -> message.Message:
        msg = cls()
        for name, v in values.items():
            if v is None:
                continue
            f = desc.fields_by_name[name]
            target = getattr(msg, name) if f.is_repeated or f.message_type else None
            if f.is_repeated:
                for item in v:
                    if f.message_type:
                        target.add().CopyFrom(item)
                    else:
                        target.append(item)
            elif f.message_type:
                target.CopyFrom(v)
            else:
                setattr(msg, name, v)
        return msg

    return st.fixed_dictionaries(fields).map(build)


class Payload(list[bytes]):
    """The request's messages, shown shortly (a failure report need not repeat 6,000 characters)."""

    def __repr__(self) -> str:
        text = super().__repr__()
        return text if len(text) <= 600 else text[:600] + f"... ({sum(map(len, self))} bytes)"


@functools.cache  # (built once per method: building it costs more than drawing from it)
def request_strategy(method: descriptor.MethodDescriptor) -> st.SearchStrategy[Payload]:
    """The request's bytes (a list of messages for a client stream): generated messages (mostly tame), or
    random bytes."""
    one = st.one_of(
        message_strategy(method.input_type, method.name, tame=True).map(lambda m: m.SerializeToString()),
        message_strategy(method.input_type, method.name, tame=True).map(lambda m: m.SerializeToString()),
        message_strategy(method.input_type, method.name).map(lambda m: m.SerializeToString()),
        st.binary(max_size=48),
    )
    if method.client_streaming:
        return st.lists(one, min_size=0, max_size=3).map(Payload)
    return one.map(lambda b: Payload([b]))


# ------------------------------------------------------------------ the server under fuzz


class ServerUnderFuzz:
    """A real Shoal server on its own thread's event loop, with something to find behind each name."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzzed-server", daemon=True)
        self.server: ShoalServer | None = None
        self.node_server: grpc.aio.Server | None = None
        self.agent: ScriptedAgent | None = None
        self.beats: asyncio.Future[None] | None = None

    def run(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> str:
        self.thread.start()
        return self.run(self._start())  # type: ignore[no-any-return]

    async def _start(self) -> str:
        srv = ShoalServer(ServerConfig(data_dir=self.tmp / "data", listen="127.0.0.1:0", publish_address=False))
        await srv.start()
        # No agent processes: a pool the fuzzer creates gets node records only (nodes nobody runs).
        srv.cp.provider = None
        self.server = srv
        # A joined node whose NodeService is the agent's own, over a temporary node root.
        layout = NodeLayout(self.tmp / "node")
        layout.create()
        self.node_server = grpc.aio.server()
        agent_pb2_grpc.add_NodeServiceServicer_to_server(
            NodeFileService(layout, lambda job, task: None), self.node_server
        )
        ident = srv.security.issue_node("fuzzed-node", "p")
        mutual = server_credentials(ident.cert_pem, ident.key_pem, client_ca_pem=ident.ca_pem)
        port = self.node_server.add_secure_port("127.0.0.1:0", mutual)
        await self.node_server.start()
        channel = server_channel(srv)
        pools = pool_pb2_grpc.PoolServiceStub(channel)
        jobs = job_pb2_grpc.JobServiceStub(channel)
        tasks = task_pb2_grpc.TaskServiceStub(channel)
        storage = storage_pb2_grpc.StorageServiceStub(channel)
        await pools.CreatePool(
            pool_pb2.CreatePoolRequest(
                pool=pool_pb2.Pool(id="p", target_nodes=1, provider="join", enable_inter_node_communication=True)
            )
        )
        self.agent = ScriptedAgent(srv, "p", "127.0.0.1", node_service_port=port)
        Names.node_id = (await self.agent.connect()).node_id
        await jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
        await tasks.AddTask(
            task_pb2.AddTaskRequest(parent="jobs/j", task=task_pb2.TaskSpec(id="t", command_line="/bin/true"))
        )
        start = await self.agent.expect("start_tasks")
        ref = start.start_tasks.tasks[0].attempt
        await self.agent.event(ref, agent_pb2.TASK_EVENT_KIND_RUNNING)
        await self.agent.expect("events_ack")
        task_dir = layout.task_dir("j", "t")
        (task_dir / "wd").mkdir(parents=True)
        (task_dir / "wd" / "hello.txt").write_text("hello\n")
        (task_dir / "stdout.txt").write_text("out\n")
        await storage.CreateContainer(storage_pb2.CreateContainerRequest(id="box"))
        await storage.UploadBlob(
            iter([storage_pb2.UploadBlobRequest(container="box", blob_name="b", data=b"data", finish=True)])
        )
        await channel.close()
        # Heartbeats, so that the node stays connected whatever the length of the run.
        self.beats = asyncio.ensure_future(self._beat())
        return srv.address

    async def _beat(self) -> None:
        assert self.agent is not None
        while True:
            await self.agent.heartbeat()
            await asyncio.sleep(1.0)

    def alive(self) -> bool:
        """The server's own loops still run (a request must never bring one down)."""
        assert self.server is not None
        return all(not t.done() for t in self.server._loops)

    def stop(self) -> None:
        async def _stop() -> None:
            if self.beats is not None:
                self.beats.cancel()
            if self.agent is not None:
                await self.agent.close()
            if self.server is not None:
                await self.server.stop()
            if self.node_server is not None:
                await self.node_server.stop(0)

        try:
            self.run(_stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


class Tracebacks(logging.Handler):
    """Log records with an exception, or at ERROR and above: a servicer that failed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)


def send(channel: grpc.Channel, method: descriptor.MethodDescriptor, payload: list[bytes]) -> grpc.StatusCode:
    """Send `payload` (bytes, as they are) to `method`; the status of the answer."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        if method.client_streaming and method.server_streaming:
            call: Any = channel.stream_stream(path)(iter(payload), timeout=CALL_SECONDS)
        elif method.client_streaming:
            channel.stream_unary(path)(iter(payload), timeout=CALL_SECONDS)
            return grpc.StatusCode.OK
        elif method.server_streaming:
            call = channel.unary_stream(path)(payload[0], timeout=CALL_SECONDS)
        else:
            channel.unary_unary(path)(payload[0], timeout=CALL_SECONDS)
            return grpc.StatusCode.OK
        # A stream: its first message is enough (a watch or a follow goes on until cancelled).
        for _ in call:
            call.cancel()
            break
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory):
    server = ServerUnderFuzz(tmp_path_factory.mktemp("fuzz"))
    address = server.start()
    channel = sync_channel(address, server.tmp / "data")
    admin = sync_channel(address, server.tmp / "data", admin=True)
    try:
        yield server, channel, admin
    finally:
        admin.close()
        channel.close()
        server.stop()


SEEN: collections.Counter[tuple[str, str]] = collections.Counter()


# (About 10 ms a request on a loaded 2-core machine: the timeout grows with the number asked for.)
@pytest.mark.timeout(120 + EXAMPLES // 10)
def test_no_request_gets_internal_or_unknown(fuzzed: tuple[ServerUnderFuzz, grpc.Channel, grpc.Channel]) -> None:
    server, channel, admin = fuzzed
    tracebacks = Tracebacks()
    root = logging.getLogger()
    root.addHandler(tracebacks)
    try:
        _fuzz(channel, admin, lambda: tracebacks.records)
        # A method the random draws missed (each is drawn with a chance of 1/len(METHODS)) gets an empty
        # request, so that every one is exercised whatever the draws.
        for method in METHODS:
            if not any(m == method.name for m, _ in SEEN):
                code = send(admin if method.name in ADMIN_METHODS else channel, method, [b""])
                SEEN[(method.name, code.name)] += 1
                assert code not in FORBIDDEN, f"{method.name} answered {code.name} to an empty request"
                assert not tracebacks.records, f"{method.name} logged {tracebacks.records[0].getMessage()[:1000]}"
    finally:
        root.removeHandler(tracebacks)
        if os.environ.get("SHOAL_FUZZ_EXAMPLES"):
            _report()
    assert server.alive()
    # And it still answers.
    reply = channel.unary_unary("/shoal.v1.PoolService/GetPool")(
        pool_pb2.GetPoolRequest(name="pools/p").SerializeToString(), timeout=10
    )
    assert pool_pb2.Pool.FromString(reply).id == "p"
    assert {m for m, _ in SEEN} == {m.name for m in METHODS}


def _fuzz(channel: grpc.Channel, admin: grpc.Channel, failures: Callable[[], list[logging.LogRecord]]) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def one_request(data: st.DataObject) -> None:
        method = data.draw(st.sampled_from(METHODS), label="method")
        payload = data.draw(request_strategy(method), label="payload")
        code = send(admin if method.name in ADMIN_METHODS else channel, method, payload)
        SEEN[(method.name, code.name)] += 1
        assert code not in FORBIDDEN, f"{method.name} answered {code.name} to {payload!r}"
        logged = failures()
        assert not logged, f"{method.name} logged {logged[0].getMessage()[:1000]} for {payload!r}"

    one_request()


def _report() -> None:
    total = sum(SEEN.values())
    by_status = collections.Counter()
    for (_, code), n in SEEN.items():
        by_status[code] += n
    print(
        f"\nfuzz: {total} requests over {len({m for m, _ in SEEN})} methods; statuses: {dict(by_status.most_common())}"
    )
    for (method, code), n in sorted(SEEN.items()):
        print(f"  {method:18} {code:20} {n}")
