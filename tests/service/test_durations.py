"""Every Duration a request carries is checked: protobuf range, signs, not negative, at most 100 years."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor, duration_pb2, field_mask_pb2

from shoal.v1 import job_pb2, pool_pb2, storage_pb2, task_pb2
from tests.service.test_validation import details, make_pool_and_job

DURATION = duration_pb2.Duration.DESCRIPTOR.full_name
TIMESTAMP = "google.protobuf.Timestamp"
SERVICES = [
    pool_pb2.DESCRIPTOR.services_by_name["PoolService"],
    job_pb2.DESCRIPTOR.services_by_name["JobService"],
    task_pb2.DESCRIPTOR.services_by_name["TaskService"],
    storage_pb2.DESCRIPTOR.services_by_name["StorageService"],
]

BAD = [
    pytest.param(100_000_000_000_000, 0, id="beyond-protobuf-range"),
    pytest.param(2**63 - 1, 0, id="int64-max"),
    pytest.param(-(2**63), 0, id="int64-min"),
    pytest.param(1, -1845, id="mixed-signs"),
    pytest.param(-1, 5, id="mixed-signs-negative"),
    pytest.param(0, 1_000_000_000, id="nanos-a-second"),
    pytest.param(0, -(2**31), id="nanos-int32-min"),
    pytest.param(315_576_000_000, 0, id="protobuf-max-but-over-100-years"),
    pytest.param(-5, 0, id="negative"),
]


def paths_of(desc: descriptor.Descriptor, full_name: str, prefix: str = "", depth: int = 0) -> list[str]:
    """Field paths to every field of type `full_name` reachable from `desc` (repeated fields as `[0]`)."""
    out: list[str] = []
    if depth > 6:
        return out
    for f in desc.fields:
        if f.message_type is None:
            continue
        path = f"{prefix}{f.name}" + ("[0]" if f.is_repeated else "")
        if f.message_type.full_name == full_name:
            out.append(path)
        elif not f.message_type.GetOptions().map_entry:
            out += paths_of(f.message_type, full_name, path + ".", depth + 1)
    return out


#: (method, Duration field path) that every request can carry, with how to send it.
JOB_TASK_DURATIONS = (
    "job.job_manager_task.constraints.max_wall_clock_time",
    "job.job_manager_task.constraints.retention_time",
    "job.job_preparation_task.constraints.max_wall_clock_time",
    "job.job_preparation_task.constraints.retention_time",
    "job.job_release_task.max_wall_clock_time",
    "job.job_release_task.retention_time",
)
CASES = {
    ("CreateJob", "job.constraints.max_wall_clock_time"),
    ("UpdateJob", "job.constraints.max_wall_clock_time"),
    *(("CreateJob", p) for p in JOB_TASK_DURATIONS),
    *(("UpdateJob", p) for p in JOB_TASK_DURATIONS),
    ("UpdateTask", "task.spec.constraints.max_wall_clock_time"),
    ("UpdateTask", "task.spec.constraints.retention_time"),
    ("AddTask", "task.constraints.max_wall_clock_time"),
    ("AddTask", "task.constraints.retention_time"),
    ("AddTasks", "tasks[0].constraints.max_wall_clock_time"),
    ("AddTasks", "tasks[0].constraints.retention_time"),
    ("CreatePool", "pool.resize_timeout"),
    ("UpdatePool", "pool.resize_timeout"),
    ("RemoveNodes", "resize_timeout"),
    ("CreatePool", "pool.auto_scale_evaluation_interval"),
    ("EnableAutoScale", "auto_scale_evaluation_interval"),
    ("CreateJob", "job.auto_pool_specification.pool.resize_timeout"),
    ("CreateJob", "job.auto_pool_specification.pool.auto_scale_evaluation_interval"),
}
#: Durations a request carries that its method never reads: UpdatePool's mask cannot name the autoscale
#: interval (EnableAutoScale changes it), so it is refused as INVALID_UPDATE_MASK whatever its value; of
#: a job's auto pool, UpdateJob reads `keep_alive` alone.
NOT_READ = {
    ("UpdatePool", "pool.auto_scale_evaluation_interval"),
    ("UpdateJob", "job.auto_pool_specification.pool.resize_timeout"),
    ("UpdateJob", "job.auto_pool_specification.pool.auto_scale_evaluation_interval"),
}
#: The longest autoscale evaluation interval (168 hours).
MAX_AUTOSCALE_INTERVAL = 168 * 3600


def test_every_duration_of_every_request_is_covered() -> None:
    found = {(m.name, p) for s in SERVICES for m in s.methods for p in paths_of(m.input_type, DURATION)}
    assert found == CASES | NOT_READ


#: The Timestamps a client does set (each checked where its request is: tests/service/test_node_logs.py,
#: tests/unit/test_node_users_model.py).
INPUT_TIMESTAMPS = {
    ("UploadNodeLogs", "start_time"),
    ("UploadNodeLogs", "end_time"),
    ("AddNodeUser", "user.expiry_time"),
    ("UpdateNodeUser", "user.expiry_time"),
}


def test_timestamps_in_requests_are_only_output_fields() -> None:
    """Besides INPUT_TIMESTAMPS, a client never sets a Timestamp: those in requests are output-only fields
    of Pool and Job, which a create drops (`clear_output_only`) and an update does not read (UpdatePool
    refuses them in its mask), and of the Task UpdateTask names (it reads only `task.spec.constraints`)."""
    from shoal.server.api.validation import JOB_OUTPUT_ONLY, POOL_OUTPUT_ONLY

    found = {(m.name, p) for s in SERVICES for m in s.methods for p in paths_of(m.input_type, TIMESTAMP)}
    assert found >= INPUT_TIMESTAMPS
    for method, path in found - INPUT_TIMESTAMPS:
        top = path.split(".")[1]
        if top == "auto_pool_specification":
            # (The pool of a job's auto pool spec: CreateJob drops its output-only fields as CreatePool
            # does; UpdateJob reads only its keep_alive.)
            assert path.split(".")[3] in POOL_OUTPUT_ONLY, (method, path)
            continue
        if method == "UpdateTask":
            assert not path.startswith("task.spec."), path
            continue
        assert method in ("CreatePool", "UpdatePool", "CreateJob", "UpdateJob"), (method, path)
        assert top in (POOL_OUTPUT_ONLY if "Pool" in method else JOB_OUTPUT_ONLY), (method, path)


def field_mask(paths: list[str]) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=paths)


def _set(msg, path: str, d: duration_pb2.Duration) -> None:
    """Set the Duration at `path` (below the request's top field) in `msg`."""
    *parents, name = path.split(".")
    for part in parents:
        msg = getattr(msg, part)
    getattr(msg, name).CopyFrom(d)


def _request(method: str, path: str, seconds: int, nanos: int):
    d = duration_pb2.Duration(seconds=seconds, nanos=nanos)
    spec = task_pb2.TaskSpec(id="t", command_line="x")
    if method == "CreateJob" and ".auto_pool_specification." in path:
        job = job_pb2.Job(id="j2")
        pool = job.auto_pool_specification.pool
        if "auto_scale" in path:
            pool.enable_auto_scale = True
            pool.auto_scale_formula = "$TargetDedicatedNodes = 0;"
        _set(job, path.split(".", 1)[1], d)
        return "jobs", "CreateJob", job_pb2.CreateJobRequest(job=job)
    if method == "CreateJob":
        job = job_pb2.Job(id="j2", pool_id="p1")
        _set(job, path.split(".", 1)[1], d)
        return "jobs", "CreateJob", job_pb2.CreateJobRequest(job=job)
    if method == "UpdateJob":
        job = job_pb2.Job(name="jobs/j1", priority=5)
        _set(job, path.split(".", 1)[1], d)
        return "jobs", "UpdateJob", job_pb2.UpdateJobRequest(job=job, update_mask=["priority"])
    if method == "UpdateTask":
        task = task_pb2.Task(name="jobs/j1/tasks/t0")
        _set(task, path.split(".", 1)[1], d)
        return "tasks", "UpdateTask", task_pb2.UpdateTaskRequest(task=task)
    if method == "CreatePool" and path == "pool.auto_scale_evaluation_interval":
        pool = pool_pb2.Pool(
            id="p2",
            enable_auto_scale=True,
            auto_scale_formula="$TargetDedicatedNodes = 0;",
            auto_scale_evaluation_interval=d,
        )
        return "pools", "CreatePool", pool_pb2.CreatePoolRequest(pool=pool)
    if method == "CreatePool":
        return "pools", "CreatePool", pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p2", resize_timeout=d))
    if method == "EnableAutoScale":
        request = pool_pb2.EnableAutoScaleRequest(
            name="pools/p1", auto_scale_formula="$TargetDedicatedNodes = 0;", auto_scale_evaluation_interval=d
        )
        return "pools", "EnableAutoScale", request
    if method == "UpdatePool":
        pool = pool_pb2.Pool(name="pools/p1", resize_timeout=d)
        return "pools", "UpdatePool", pool_pb2.UpdatePoolRequest(pool=pool, update_mask=field_mask(["resize_timeout"]))
    if method == "RemoveNodes":
        return "pools", "RemoveNodes", pool_pb2.RemoveNodesRequest(name="pools/p1", node_ids=["n"], resize_timeout=d)
    getattr(spec.constraints, path.rsplit(".", 1)[1]).CopyFrom(d)
    if method == "AddTask":
        return "tasks", "AddTask", task_pb2.AddTaskRequest(parent="jobs/j1", task=spec)
    return "tasks", "AddTasks", task_pb2.AddTasksRequest(parent="jobs/j1", tasks=[spec])


@pytest.mark.parametrize(("seconds", "nanos"), BAD)
@pytest.mark.parametrize(("method", "path"), sorted(CASES))
async def test_bad_durations_are_invalid_argument_naming_the_field(
    stubs, method: str, path: str, seconds: int, nanos: int
) -> None:
    await make_pool_and_job(stubs)
    service, rpc, request = _request(method, path, seconds, nanos)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await getattr(getattr(stubs, service), rpc)(request)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
    reason, violations = details(e.value)
    assert reason in (
        "INVALID_JOB",
        "INVALID_TASK",
        "INVALID_POOL",
        "INVALID_REMOVE_NODES",
        "INVALID_AUTO_SCALE_INTERVAL",
    ), (reason, violations)
    assert path in [f for f, _ in violations]
    # Nothing changed.
    job = await stubs.jobs.GetJob(job_pb2.GetJobRequest(name="jobs/j1"))
    assert job.priority == 0 and not job.constraints.HasField("max_wall_clock_time")
    assert [j.id for j in (await stubs.jobs.ListJobs(job_pb2.ListJobsRequest())).jobs] == ["j1"]
    assert [p.id for p in (await stubs.pools.ListPools(pool_pb2.ListPoolsRequest())).pools] == ["p1"]
    assert list((await stubs.tasks.ListTasks(task_pb2.ListTasksRequest(parent="jobs/j1"))).tasks) == []


@pytest.mark.parametrize(("method", "path"), sorted(CASES))
async def test_good_durations_are_taken(stubs, method: str, path: str) -> None:
    await make_pool_and_job(stubs)
    for seconds, nanos in [(3600, 500), (36_500 * 24 * 3600, 0)]:
        if "auto_scale" in path and seconds > MAX_AUTOSCALE_INTERVAL:
            continue  # (an evaluation interval is 168 hours at most)
        service, rpc, request = _request(method, path, seconds, nanos)
        if method == "CreateJob":
            request.job.id = f"j-{seconds}"
        elif method == "AddTask":
            request.task.id = f"t-{seconds}"
        elif method == "AddTasks":
            request.tasks[0].id = f"t-{seconds}"
        elif method == "CreatePool":
            request.pool.id = f"p-{seconds}"
        elif method == "RemoveNodes":
            # (The pool has no node "n": the request is refused for that alone, its timeout taken.)
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stubs.pools.RemoveNodes(request)
            assert [f for f, _ in details(e.value)[1]] == ["node_ids[0]"]
            continue
        elif method == "UpdateTask" and seconds == 3600:
            spec = task_pb2.TaskSpec(id="t0", command_line="x")
            await stubs.tasks.AddTask(task_pb2.AddTaskRequest(parent="jobs/j1", task=spec))
        if method == "CreateJob" and ".job_" in path:
            if "release" in path and path.endswith("max_wall_clock_time") and seconds > 15 * 60:
                continue  # (a release task runs 15 minutes at most)
            request.job.job_manager_task.command_line = "x"
            request.job.job_preparation_task.command_line = "x"
            if "release" in path:
                request.job.job_release_task.command_line = "x"
        await getattr(getattr(stubs, service), rpc)(request)


async def test_zero_means_unlimited_or_default_for_tasks_but_a_job_limit_must_be_positive(stubs) -> None:
    await make_pool_and_job(stubs)
    spec = task_pb2.TaskSpec(id="t", command_line="x")
    spec.constraints.max_wall_clock_time.SetInParent()
    spec.constraints.retention_time.SetInParent()
    await stubs.tasks.AddTask(task_pb2.AddTaskRequest(parent="jobs/j1", task=spec))
    job = job_pb2.Job(id="j2", pool_id="p1")
    job.constraints.max_wall_clock_time.SetInParent()
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job))
    assert details(e.value)[1] == [("job.constraints.max_wall_clock_time", "must be positive")]


async def test_output_only_fields_of_a_created_job_and_pool_are_dropped(stubs) -> None:
    pool = pool_pb2.Pool(id="p1", current_nodes=7, etag="x", state=pool_pb2.POOL_STATE_DELETING)
    pool.creation_time.seconds = 2**62
    created = await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool))
    assert created.current_nodes == 0 and created.state == pool_pb2.POOL_STATE_ACTIVE
    assert 0 < created.creation_time.seconds < 2**40
    job = job_pb2.Job(id="j1", pool_id="p1")
    job.execution_info.end_time.seconds = -(2**62)
    job.execution_info.terminate_reason = "made up"
    created_job = await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job))
    assert not created_job.execution_info.HasField("end_time")
    assert created_job.execution_info.terminate_reason == ""
