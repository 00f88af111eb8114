"""Job schedules on a real in-process server whose clock the test moves: days of due times in seconds.

The jobs have no tasks: a job stays active until the test terminates it, which is what ends a run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import pytest
from croniter import croniter
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2

from shoal.clock import ManualClock
from shoal.server.app import ShoalServer
from shoal.v1 import account_pb2, account_pb2_grpc, job_pb2, pool_pb2, pool_pb2_grpc, schedule_pb2, schedule_pb2_grpc
from tests.channels import server_channel
from tests.service.conftest import Stubs, configured_server
from tests.service.test_accounts import channel_as, make_account, refused
from tests.service.test_validation import details

pytestmark = pytest.mark.timeout(60)

S = schedule_pb2
J = job_pb2
HOUR = 3600


@dataclass
class Env:
    server: ShoalServer
    clock: ManualClock
    stubs: Stubs
    schedules: schedule_pb2_grpc.JobScheduleServiceStub


def _start() -> datetime:
    # A day ago, on a whole minute: the server's TLS certificate is issued on its clock, and must be valid
    # now for the test's client, whose clock is the real one, even when a restarted server's clock moved on.
    return datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)


@contextlib.asynccontextmanager
async def env_on(data_dir: Path, clock: ManualClock) -> AsyncIterator[Env]:
    async with configured_server(data_dir, clock=clock) as srv, server_channel(srv) as ch:
        yield Env(srv, clock, Stubs(ch), schedule_pb2_grpc.JobScheduleServiceStub(ch))


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with env_on(tmp_path / "data", ManualClock(_start())) as e:
        await e.stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=0)))
        yield e


def ts(t: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(t)
    return out


def dur(seconds: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(seconds))


def schedule(sid: str = "s", **when: object) -> S.JobSchedule:
    return S.JobSchedule(id=sid, schedule=S.Schedule(**when), job_specification=J.Job(pool_id="p"))  # type: ignore[arg-type]


async def create(e: Env, js: S.JobSchedule) -> S.JobSchedule:
    return await e.schedules.CreateJobSchedule(S.CreateJobScheduleRequest(job_schedule=js))


async def get(e: Env, sid: str = "s") -> S.JobSchedule:
    return await e.schedules.GetJobSchedule(S.GetJobScheduleRequest(name=f"jobschedules/{sid}"))


async def job_ids(e: Env, sid: str = "s") -> list[str]:
    jobs = await e.schedules.ListJobsFromSchedule(S.ListJobsFromScheduleRequest(name=f"jobschedules/{sid}"))
    return [j.id for j in jobs.jobs]


async def until(check: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    """Wait (on the schedule loop, which runs on its own) until `check()` (awaited if need be) is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


async def settle(e: Env) -> None:
    """Let the schedule loop act on the clock just moved (it makes no job: checked by the caller)."""
    await e.server.cp.run_due_schedules()


async def jobs_are(e: Env, expected: list[str], sid: str = "s") -> None:
    async def check() -> bool:
        return await job_ids(e, sid) == expected

    await until(check, f"jobs {expected}")
    await settle(e)
    assert await job_ids(e, sid) == expected


async def end(e: Env, job_id: str) -> None:
    await e.stubs.jobs.TerminateJob(J.TerminateJobRequest(name=f"jobs/{job_id}"))


async def test_recurrence_waits_for_the_active_job_and_skips_past_the_window(env: Env) -> None:
    e = env
    t0 = e.clock.now()
    js = await create(e, schedule(recurrence_interval=dur(HOUR), start_window=dur(600)))
    assert js.state == S.JOB_SCHEDULE_STATE_ACTIVE and js.name == "jobschedules/s" and js.etag
    assert await job_ids(e) == ["s:job-1"]  # (due at creation: made with it)
    job = await e.stubs.jobs.GetJob(J.GetJobRequest(name="jobs/s:job-1"))
    assert job.job_schedule_id == "s" and job.pool_id == "p" and job.state == J.JOB_STATE_ACTIVE
    js = await get(e)
    assert js.execution_info.recent_job.id == "s:job-1" and js.execution_info.recent_job.name == "jobs/s:job-1"
    assert js.execution_info.next_run_time.ToDatetime(tzinfo=UTC) == t0 + timedelta(hours=1)
    await end(e, "s:job-1")
    e.clock.advance(HOUR)
    await jobs_are(e, ["s:job-1", "s:job-2"])
    # job-2 runs on past the next due time: no job-3 while it does ...
    e.clock.advance(HOUR)
    await jobs_are(e, ["s:job-1", "s:job-2"])
    assert (await get(e)).execution_info.next_run_time.ToDatetime(tzinfo=UTC) == t0 + timedelta(hours=2)
    # ... and none for that due time once its start window passed.
    e.clock.advance(601)
    await settle(e)
    assert (await get(e)).execution_info.next_run_time.ToDatetime(tzinfo=UTC) == t0 + timedelta(hours=3)
    await end(e, "s:job-2")
    await jobs_are(e, ["s:job-1", "s:job-2"])
    e.clock.advance(HOUR - 601)
    await jobs_are(e, ["s:job-1", "s:job-2", "s:job-3"])
    # Within its window, a due time waits for the job before it and is made when it ends.
    e.clock.advance(HOUR + 300)
    await jobs_are(e, ["s:job-1", "s:job-2", "s:job-3"])
    await end(e, "s:job-3")
    await jobs_are(e, ["s:job-1", "s:job-2", "s:job-3", "s:job-4"])
    # The jobs of the schedule, by ListJobs' filter too.
    listed = await e.stubs.jobs.ListJobs(J.ListJobsRequest(job_schedule_id="S"))
    assert [j.id for j in listed.jobs] == ["s:job-1", "s:job-2", "s:job-3", "s:job-4"]
    active = await e.schedules.ListJobsFromSchedule(
        S.ListJobsFromScheduleRequest(name="s", state=J.JOB_STATE_ACTIVE)  # (a bare id does too)
    )
    assert [j.id for j in active.jobs] == ["s:job-4"]


async def test_a_day_of_runs_in_seconds(env: Env) -> None:
    e = env
    await create(e, schedule(recurrence_interval=dur(HOUR)))
    for n in range(1, 25):
        await jobs_are(e, [f"s:job-{i}" for i in range(1, n + 1)])
        await end(e, f"s:job-{n}")
        e.clock.advance(HOUR)
    await jobs_are(e, [f"s:job-{i}" for i in range(1, 26)])


async def test_one_job_without_a_recurrence(env: Env) -> None:
    e = env
    t0 = e.clock.now()
    await create(e, schedule(do_not_run_until=ts(t0 + timedelta(hours=5))))
    js = await get(e)
    assert js.execution_info.next_run_time.ToDatetime(tzinfo=UTC) == t0 + timedelta(hours=5)
    e.clock.advance(5 * HOUR - 1)
    await jobs_are(e, [])
    e.clock.advance(1)
    await jobs_are(e, ["s:job-1"])
    assert not (await get(e)).execution_info.HasField("next_run_time")
    await end(e, "s:job-1")
    await until(lambda: _state_is(e, S.JOB_SCHEDULE_STATE_COMPLETED), "completed")
    js = await get(e)
    assert js.execution_info.HasField("end_time") and js.previous_state == S.JOB_SCHEDULE_STATE_ACTIVE
    e.clock.advance(24 * HOUR)
    await jobs_are(e, ["s:job-1"])


async def _state_is(e: Env, state: int, sid: str = "s") -> bool:
    return (await get(e, sid)).state == state


async def test_completes_past_do_not_run_after_once_its_job_ended(env: Env) -> None:
    e = env
    t0 = e.clock.now()
    await create(e, schedule(recurrence_interval=dur(HOUR), do_not_run_after=ts(t0 + timedelta(minutes=150))))
    await end(e, "s:job-1")
    e.clock.advance(HOUR)
    await jobs_are(e, ["s:job-1", "s:job-2"])
    await end(e, "s:job-2")
    e.clock.advance(HOUR)
    await jobs_are(e, ["s:job-1", "s:job-2", "s:job-3"])
    # Past do_not_run_after with job-3 still active: not completed until it ends; no job-4 ever.
    e.clock.advance(HOUR)
    await settle(e)
    assert (await get(e)).state == S.JOB_SCHEDULE_STATE_ACTIVE
    assert not (await get(e)).execution_info.HasField("next_run_time")
    await end(e, "s:job-3")
    await until(lambda: _state_is(e, S.JOB_SCHEDULE_STATE_COMPLETED), "completed")
    e.clock.advance(10 * HOUR)
    await jobs_are(e, ["s:job-1", "s:job-2", "s:job-3"])


async def test_cron_in_a_time_zone(env: Env) -> None:
    e = env
    zone = ZoneInfo("America/New_York")
    # (Off the whole minute the clock starts on: run at 09:30 New York time, a start on a due time would
    # have its job made at creation, which the expectations below do not count.)
    e.clock.advance(1)
    now = e.clock.now()
    due = [croniter("30 9 * * 1-5", now.astimezone(zone)).get_next(datetime)]
    due.append(croniter("30 9 * * 1-5", due[0]).get_next(datetime))
    expected = [d.astimezone(UTC) for d in due]
    await create(e, schedule(cron="30 9 * * 1-5", time_zone="America/New_York"))
    js = await get(e)
    assert js.execution_info.next_run_time.ToDatetime(tzinfo=UTC) == expected[0]
    e.clock.advance((expected[0] - now).total_seconds() - 1)
    await jobs_are(e, [])
    e.clock.advance(1)
    await jobs_are(e, ["s:job-1"])
    await end(e, "s:job-1")
    assert (await get(e)).execution_info.next_run_time.ToDatetime(tzinfo=UTC) == expected[1]
    e.clock.advance((expected[1] - e.clock.now()).total_seconds())
    await jobs_are(e, ["s:job-1", "s:job-2"])


async def test_disable_enable_terminate(env: Env) -> None:
    e = env
    await create(e, schedule(recurrence_interval=dur(HOUR), start_window=dur(1800)))
    await end(e, "s:job-1")
    js = await e.schedules.DisableJobSchedule(S.DisableJobScheduleRequest(name="jobschedules/s"))
    assert js.state == S.JOB_SCHEDULE_STATE_DISABLED
    e.clock.advance(HOUR)
    await jobs_are(e, ["s:job-1"])
    # Enabled within the due time's window: its job is made at once.
    e.clock.advance(600)
    js = await e.schedules.EnableJobSchedule(S.EnableJobScheduleRequest(name="jobschedules/s", etag=js.etag))
    assert js.state == S.JOB_SCHEDULE_STATE_ACTIVE
    assert await job_ids(e) == ["s:job-1", "s:job-2"]
    await refused(
        e.schedules.EnableJobSchedule(S.EnableJobScheduleRequest(name="jobschedules/s", etag="0" * 16)),
        grpc.StatusCode.ABORTED,
        "ETAG_MISMATCH",
    )
    # Disabled while job-2 runs: job-2 goes on.
    await e.schedules.DisableJobSchedule(S.DisableJobScheduleRequest(name="jobschedules/s"))
    job = await e.stubs.jobs.GetJob(J.GetJobRequest(name="jobs/s:job-2"))
    assert job.state == J.JOB_STATE_ACTIVE
    await e.schedules.EnableJobSchedule(S.EnableJobScheduleRequest(name="jobschedules/s"))
    js = await e.schedules.TerminateJobSchedule(S.TerminateJobScheduleRequest(name="jobschedules/s"))
    # (job-2 has no task to wait for: it completes at once, and the schedule with it.)
    assert js.state == S.JOB_SCHEDULE_STATE_COMPLETED and js.previous_state == S.JOB_SCHEDULE_STATE_TERMINATING
    job = await e.stubs.jobs.GetJob(J.GetJobRequest(name="jobs/s:job-2"))
    assert job.state == J.JOB_STATE_COMPLETED and job.execution_info.terminate_reason == "TerminateJobSchedule"
    for call in (
        e.schedules.DisableJobSchedule(S.DisableJobScheduleRequest(name="jobschedules/s")),
        e.schedules.TerminateJobSchedule(S.TerminateJobScheduleRequest(name="jobschedules/s")),
    ):
        await refused(call, grpc.StatusCode.FAILED_PRECONDITION, "JOB_SCHEDULE_COMPLETED")
    await refused(
        e.schedules.EnableJobSchedule(S.EnableJobScheduleRequest(name="jobschedules/s")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "JOB_SCHEDULE_NOT_DISABLED",
    )
    e.clock.advance(5 * HOUR)
    await jobs_are(e, ["s:job-1", "s:job-2"])


async def test_terminating_waits_for_the_job_to_complete(env: Env) -> None:
    e = env
    await create(e, schedule())
    cp = e.server.cp
    job = cp.job("s:job-1")
    # The job is terminating already (as while its release tasks run on the nodes that prepared it).
    cp.job_life.set_state(job, J.JOB_STATE_TERMINATING)
    await cp.flush()
    js = await e.schedules.TerminateJobSchedule(S.TerminateJobScheduleRequest(name="jobschedules/s"))
    assert js.state == S.JOB_SCHEDULE_STATE_TERMINATING
    await refused(
        e.schedules.UpdateJobSchedule(
            S.UpdateJobScheduleRequest(
                job_schedule=S.JobSchedule(id="s", display_name="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "JOB_SCHEDULE_BEING_TERMINATED",
    )
    cp.job_life.set_state(job, J.JOB_STATE_COMPLETED)
    await cp.flush()
    js = await get(e)
    assert js.state == S.JOB_SCHEDULE_STATE_COMPLETED and js.execution_info.HasField("end_time")


async def test_delete_takes_its_jobs_with_it(env: Env) -> None:
    e = env
    ended: list[str] = []
    e.server.cp.schedule_end_hooks.append(lambda sid, spec: ended.append(sid))
    await create(e, schedule(recurrence_interval=dur(HOUR)))
    await end(e, "s:job-1")
    e.clock.advance(HOUR)
    await jobs_are(e, ["s:job-1", "s:job-2"])
    js = await e.schedules.DeleteJobSchedule(S.DeleteJobScheduleRequest(name="jobschedules/s"))
    assert js.state == S.JOB_SCHEDULE_STATE_DELETING
    await until(lambda: "s" not in e.server.cp.schedules.schedules, "the schedule gone")
    await refused(get(e), grpc.StatusCode.NOT_FOUND, "JOB_SCHEDULE_NOT_FOUND")
    listed = await e.stubs.jobs.ListJobs(J.ListJobsRequest(job_schedule_id="s"))
    assert not listed.jobs and not e.server.cp.jobs
    assert ended == ["s"]
    # The id is free again.
    await create(e, schedule(recurrence_interval=dur(HOUR)))
    assert await job_ids(e) == ["s:job-1"]


async def test_update_applies_to_the_jobs_made_from_then_on(env: Env) -> None:
    e = env
    t0 = e.clock.now()
    js = await create(e, schedule(recurrence_interval=dur(HOUR)))
    await end(e, "s:job-1")
    patch = S.JobSchedule(
        name="jobschedules/s",
        schedule=S.Schedule(recurrence_interval=dur(2 * HOUR)),
        job_specification=J.Job(pool_id="p", priority=7),
        display_name="nightly",
        metadata=[{"name": "team", "value": "render"}],  # type: ignore[list-item]
    )
    mask = field_mask_pb2.FieldMask(paths=["schedule", "job_specification", "display_name", "metadata"])
    await refused(
        e.schedules.UpdateJobSchedule(S.UpdateJobScheduleRequest(job_schedule=patch, update_mask=mask, etag="x")),
        grpc.StatusCode.ABORTED,
        "ETAG_MISMATCH",
    )
    got = await e.schedules.UpdateJobSchedule(
        S.UpdateJobScheduleRequest(job_schedule=patch, update_mask=mask, etag=js.etag)
    )
    assert got.display_name == "nightly" and got.metadata[0].value == "render"
    assert got.last_modified.ToDatetime(tzinfo=UTC) == t0
    # The next due time is the new interval after the last run.
    assert got.execution_info.next_run_time.ToDatetime(tzinfo=UTC) == t0 + timedelta(hours=2)
    e.clock.advance(HOUR)
    await jobs_are(e, ["s:job-1"])
    e.clock.advance(HOUR)
    await jobs_are(e, ["s:job-1", "s:job-2"])
    job1 = await e.stubs.jobs.GetJob(J.GetJobRequest(name="jobs/s:job-1"))
    job2 = await e.stubs.jobs.GetJob(J.GetJobRequest(name="jobs/s:job-2"))
    assert (job1.priority, job2.priority) == (0, 7)
    for bad_mask, reason in ((["state"], "INVALID_UPDATE_MASK"), ([], "INVALID_UPDATE_MASK")):
        await refused(
            e.schedules.UpdateJobSchedule(
                S.UpdateJobScheduleRequest(job_schedule=patch, update_mask=field_mask_pb2.FieldMask(paths=bad_mask))
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            reason,
        )


async def test_listing_pages_and_state_filter(env: Env) -> None:
    e = env
    for i in range(5):
        await create(e, schedule(f"s{i}", recurrence_interval=dur(HOUR)))
    for i in (1, 3):
        await e.schedules.DisableJobSchedule(S.DisableJobScheduleRequest(name=f"jobschedules/s{i}"))
    seen: list[str] = []
    token = ""
    while True:
        page = await e.schedules.ListJobSchedules(S.ListJobSchedulesRequest(page_size=2, page_token=token))
        assert len(page.job_schedules) <= 2
        seen += [s.id for s in page.job_schedules]
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"s{i}" for i in range(5)]
    disabled = await e.schedules.ListJobSchedules(S.ListJobSchedulesRequest(state=S.JOB_SCHEDULE_STATE_DISABLED))
    assert [s.id for s in disabled.job_schedules] == ["s1", "s3"]
    first = await e.schedules.ListJobSchedules(S.ListJobSchedulesRequest(page_size=2))
    await refused(
        e.schedules.ListJobSchedules(
            S.ListJobSchedulesRequest(page_token=first.next_page_token, state=S.JOB_SCHEDULE_STATE_ACTIVE)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_PAGE_TOKEN",
    )
    await refused(
        e.schedules.ListJobSchedules(S.ListJobSchedulesRequest(state=99)),  # type: ignore[arg-type]
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_FILTER",
    )


async def test_field_violations_and_ids(env: Env) -> None:
    e = env

    async def violations(js: S.JobSchedule) -> list[tuple[str, str]]:
        err = await refused(create(e, js), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_JOB_SCHEDULE")
        return details(err)[1]

    def fields(vs: list[tuple[str, str]]) -> set[str]:
        return {f for f, _ in vs}

    prefix = "job_schedule.schedule."
    assert fields(await violations(schedule(recurrence_interval=dur(30), start_window=dur(59)))) == {
        prefix + "recurrence_interval",
        prefix + "start_window",
    }
    assert fields(await violations(schedule(cron="0 * * * *", recurrence_interval=dur(HOUR)))) == {prefix + "cron"}
    assert fields(await violations(schedule(cron="0 * * *", time_zone="Mars/Olympus"))) == {
        prefix + "cron",
        prefix + "time_zone",
    }
    assert fields(await violations(schedule(time_zone="UTC"))) == {prefix + "time_zone"}
    t = e.clock.now()
    assert fields(await violations(schedule(do_not_run_until=ts(t), do_not_run_after=ts(t - timedelta(1))))) == {
        prefix + "do_not_run_after"
    }
    spec = J.Job(id="j", pool_id="p", priority=5000, state=J.JOB_STATE_ACTIVE)
    got = fields(await violations(S.JobSchedule(id="bad:id", job_specification=spec)))
    assert got == {
        "job_schedule.id",
        "job_schedule.job_specification.id",
        "job_schedule.job_specification.state",
        "job_schedule.job_specification.priority",
    }
    assert fields(await violations(S.JobSchedule(id="s"))) == {"job_schedule.job_specification"}
    await refused(
        create(e, S.JobSchedule(id="s", job_specification=J.Job(pool_id="nope"))),
        grpc.StatusCode.NOT_FOUND,
        "POOL_NOT_FOUND",
    )
    assert not e.server.cp.schedules.schedules and not e.server.cp.jobs
    # A job and a schedule never share an id, either way round, whatever the case.
    await e.stubs.jobs.CreateJob(J.CreateJobRequest(job=J.Job(id="j", pool_id="p")))
    await refused(create(e, schedule("J")), grpc.StatusCode.ALREADY_EXISTS, "JOB_EXISTS")
    await create(e, schedule("s"))
    await refused(create(e, schedule("S")), grpc.StatusCode.ALREADY_EXISTS, "JOB_SCHEDULE_EXISTS")
    await refused(
        e.stubs.jobs.CreateJob(J.CreateJobRequest(job=J.Job(id="S", pool_id="p"))),
        grpc.StatusCode.ALREADY_EXISTS,
        "JOB_SCHEDULE_EXISTS",
    )
    # ':' is for the jobs of schedules alone.
    err = await refused(
        e.stubs.jobs.CreateJob(J.CreateJobRequest(job=J.Job(id="s:job-2", pool_id="p"))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_JOB",
    )
    assert "job.id" in {f for f, _ in details(err)[1]}
    await refused(get(e, "nope"), grpc.StatusCode.NOT_FOUND, "JOB_SCHEDULE_NOT_FOUND")
    # Idempotent creation.
    request = S.CreateJobScheduleRequest(job_schedule=schedule("r"), request_id="req-1")
    first = await e.schedules.CreateJobSchedule(request)
    again = await e.schedules.CreateJobSchedule(request)
    assert first.id == again.id == "r" and await job_ids(e, "r") == ["r:job-1"]


async def test_a_restart_between_two_runs_loses_none_and_doubles_none(tmp_path: Path) -> None:
    data = tmp_path / "data"
    clock = ManualClock(_start())
    t0 = clock.now()
    async with env_on(data, clock) as e:
        await e.stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=0)))
        await create(e, schedule(recurrence_interval=dur(HOUR), start_window=dur(1800)))
        await end(e, "s:job-1")
    # Down for 70 minutes: the due time at t0 + 1 h is still within its window.
    clock = ManualClock(t0 + timedelta(minutes=70))
    async with env_on(data, clock) as e:
        await jobs_are(e, ["s:job-1", "s:job-2"])
        js = await get(e)
        assert js.execution_info.recent_job.id == "s:job-2"
        assert js.execution_info.next_run_time.ToDatetime(tzinfo=UTC) == t0 + timedelta(hours=2)
    # Up again at once: nothing new is due; job-2 still active.
    async with env_on(data, clock) as e:
        await jobs_are(e, ["s:job-1", "s:job-2"])
        await end(e, "s:job-2")
        # Down past the next window: that run is skipped, not made late.
    clock = ManualClock(t0 + timedelta(hours=2, minutes=31))
    async with env_on(data, clock) as e:
        await jobs_are(e, ["s:job-1", "s:job-2"])
        assert (await get(e)).execution_info.next_run_time.ToDatetime(tzinfo=UTC) == t0 + timedelta(hours=3)
        e.clock.advance(29 * 60)
        await jobs_are(e, ["s:job-1", "s:job-2", "s:job-3"])


async def test_accounts_see_their_own_schedules_and_count_them_in_their_quota(env: Env) -> None:
    e = env
    await create(e, schedule("s"))
    key = await make_account(e.server, "team2", max_active_jobs=1)
    async with channel_as(e.server, "team2", key) as ch:
        other = schedule_pb2_grpc.JobScheduleServiceStub(ch)
        await refused(
            other.GetJobSchedule(S.GetJobScheduleRequest(name="jobschedules/s")),
            grpc.StatusCode.NOT_FOUND,
            "JOB_SCHEDULE_NOT_FOUND",
        )
        await refused(
            other.DeleteJobSchedule(S.DeleteJobScheduleRequest(name="jobschedules/s")),
            grpc.StatusCode.NOT_FOUND,
            "JOB_SCHEDULE_NOT_FOUND",
        )
        # Not on another account's pool.
        await refused(
            other.CreateJobSchedule(S.CreateJobScheduleRequest(job_schedule=schedule("t"))),
            grpc.StatusCode.NOT_FOUND,
            "POOL_NOT_FOUND",
        )
        await pool_pb2_grpc.PoolServiceStub(ch).CreatePool(
            pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="q", target_nodes=0))
        )
        later = S.Schedule(do_not_run_until=ts(e.clock.now() + timedelta(days=1)))
        spec = J.Job(pool_id="q")
        await other.CreateJobSchedule(
            S.CreateJobScheduleRequest(job_schedule=S.JobSchedule(id="t", schedule=later, job_specification=spec))
        )
        # A schedule counts as an active job (Batch's quota of active jobs and job schedules).
        await refused(
            other.CreateJobSchedule(
                S.CreateJobScheduleRequest(job_schedule=S.JobSchedule(id="u", schedule=later, job_specification=spec))
            ),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "ACTIVE_JOB_QUOTA_REACHED",
        )
        listed = await other.ListJobSchedules(S.ListJobSchedulesRequest())
        assert [s.id for s in listed.job_schedules] == ["t"] and listed.job_schedules[0].account == "team2"
    assert [s.id for s in (await e.schedules.ListJobSchedules(S.ListJobSchedulesRequest())).job_schedules] == ["s"]


async def pool_ids(e: Env) -> list[str]:
    return sorted(p.id for p in (await e.stubs.pools.ListPools(pool_pb2.ListPoolsRequest())).pools)


def auto_pool_schedule(sid: str, lifetime: int, *, keep_alive: bool = False) -> S.JobSchedule:
    spec = J.Job(
        auto_pool_specification=J.AutoPoolSpecification(
            auto_pool_id_prefix="ap-",
            pool_lifetime_option=lifetime,  # type: ignore[arg-type]
            keep_alive=keep_alive,
            pool=pool_pb2.Pool(target_nodes=0),
        )
    )
    return S.JobSchedule(id=sid, schedule=S.Schedule(recurrence_interval=dur(HOUR)), job_specification=spec)


async def test_auto_pools_of_a_schedule_per_job_or_for_the_schedules_life(env: Env) -> None:
    """JOB_SCHEDULE lifetime: one pool for every job of the schedule, gone when the schedule completes;
    JOB lifetime: a pool per job, gone with it; keep_alive keeps the schedule's pool."""
    e = env
    shared, own = J.POOL_LIFETIME_OPTION_JOB_SCHEDULE, J.POOL_LIFETIME_OPTION_JOB
    await create(e, auto_pool_schedule("life", shared))
    await create(e, auto_pool_schedule("each", own))
    await create(e, auto_pool_schedule("kept", shared, keep_alive=True))
    first = {
        sid: await e.stubs.jobs.GetJob(J.GetJobRequest(name=f"jobs/{sid}:job-1")) for sid in ("life", "each", "kept")
    }
    life_pool = first["life"].pool_id
    assert first["life"].execution_info.pool_id == life_pool
    owners = {p.id: p.auto_pool_owner for p in (await e.stubs.pools.ListPools(pool_pb2.ListPoolsRequest())).pools}
    assert owners[life_pool] == "jobschedules/life" and owners[first["each"].pool_id] == "jobs/each:job-1"
    for sid in ("life", "each", "kept"):
        await end(e, f"{sid}:job-1")
    # The JOB-lifetime pool went with its job; the schedule's pool stays for its next job.
    assert first["each"].pool_id not in await pool_ids(e)
    e.clock.advance(HOUR)
    await jobs_are(e, ["life:job-1", "life:job-2"], "life")
    second = await e.stubs.jobs.GetJob(J.GetJobRequest(name="jobs/life:job-2"))
    assert second.pool_id == life_pool
    each2 = await e.stubs.jobs.GetJob(J.GetJobRequest(name="jobs/each:job-2"))
    assert each2.pool_id not in (first["each"].pool_id, "", life_pool)
    # The schedules end: the shared pool goes unless kept alive.
    for sid in ("life", "kept"):
        await e.schedules.TerminateJobSchedule(S.TerminateJobScheduleRequest(name=f"jobschedules/{sid}"))
        await until(lambda sid=sid: _state_is(e, S.JOB_SCHEDULE_STATE_COMPLETED, sid), f"{sid} completed")
    pools = await pool_ids(e)
    assert life_pool not in pools and first["kept"].pool_id in pools


async def test_a_job_whose_auto_pool_cannot_be_made_does_not_stall_the_schedule(env: Env) -> None:
    """Such a job completes as it is made (a scheduling error); the schedule goes on to its next due time,
    and a one-job schedule completes."""
    e = env
    js = auto_pool_schedule("bad", J.POOL_LIFETIME_OPTION_JOB)
    pool = js.job_specification.auto_pool_specification.pool
    pool.enable_auto_scale = True
    pool.auto_scale_formula = "$TargetDedicatedNodes = = 1;"
    await create(e, js)
    job = await e.stubs.jobs.GetJob(J.GetJobRequest(name="jobs/bad:job-1"))
    assert job.state == J.JOB_STATE_COMPLETED
    assert job.execution_info.scheduling_error.code == "InvalidAutoScaleFormulaInAutoPool"
    e.clock.advance(HOUR)
    await jobs_are(e, ["bad:job-1", "bad:job-2"], "bad")
    once = S.JobSchedule(id="once", schedule=S.Schedule(), job_specification=js.job_specification)
    await create(e, once)
    await until(lambda: _state_is(e, S.JOB_SCHEDULE_STATE_COMPLETED, "once"), "once completed")
    assert await job_ids(e, "once") == ["once:job-1"]


async def test_a_kept_alive_pool_of_a_deleted_schedule_is_not_another_accounts(env: Env) -> None:
    """Schedule ids are not per account: another account's schedule of the same id neither runs its jobs
    on the pool a deleted schedule kept alive nor deletes it when it ends."""
    e = env
    shared = J.POOL_LIFETIME_OPTION_JOB_SCHEDULE
    await create(e, auto_pool_schedule("x", shared, keep_alive=True))
    kept = (await e.stubs.jobs.GetJob(J.GetJobRequest(name="jobs/x:job-1"))).pool_id
    await e.schedules.DeleteJobSchedule(S.DeleteJobScheduleRequest(name="jobschedules/x"))

    async def gone() -> bool:
        return not (await e.schedules.ListJobSchedules(S.ListJobSchedulesRequest())).job_schedules

    await until(gone, "schedule x gone")
    assert kept in await pool_ids(e)
    key = await make_account(e.server, "team2")
    async with channel_as(e.server, "team2", key) as ch:
        other = schedule_pb2_grpc.JobScheduleServiceStub(ch)
        await other.CreateJobSchedule(S.CreateJobScheduleRequest(job_schedule=auto_pool_schedule("x", shared)))
        theirs = await Stubs(ch).jobs.GetJob(J.GetJobRequest(name="jobs/x:job-1"))
        assert theirs.pool_id not in ("", kept)
        await other.TerminateJobSchedule(S.TerminateJobScheduleRequest(name="jobschedules/x"))

        async def completed() -> bool:
            got = await other.GetJobSchedule(S.GetJobScheduleRequest(name="jobschedules/x"))
            return got.state == S.JOB_SCHEDULE_STATE_COMPLETED

        await until(completed, "team2's schedule completed")
    assert kept in await pool_ids(e)


async def test_an_account_holding_a_schedule_is_not_deleted(env: Env) -> None:
    """A schedule that has made no job yet still holds its account (it would make jobs for one gone)."""
    e = env
    key = await make_account(e.server, "later")
    js = auto_pool_schedule("nightly", J.POOL_LIFETIME_OPTION_JOB)
    js.schedule.CopyFrom(S.Schedule(do_not_run_until=ts(e.clock.now() + timedelta(days=1))))
    async with channel_as(e.server, "later", key) as ch:
        mine = schedule_pb2_grpc.JobScheduleServiceStub(ch)
        await mine.CreateJobSchedule(S.CreateJobScheduleRequest(job_schedule=js))
        assert not (await mine.ListJobsFromSchedule(S.ListJobsFromScheduleRequest(name="nightly"))).jobs
    async with server_channel(e.server, admin=True) as ch:
        admin = account_pb2_grpc.AccountServiceStub(ch)
        await refused(
            admin.DeleteAccount(account_pb2.DeleteAccountRequest(name="accounts/later")),
            grpc.StatusCode.FAILED_PRECONDITION,
            "ACCOUNT_NOT_EMPTY",
        )


async def test_what_the_server_sets_on_a_pool_is_dropped_from_a_schedules_auto_pool(env: Env) -> None:
    """As CreateJob drops them: a pool made from the schedule's specification never shows a client's
    resize errors or autoscale run."""
    e = env
    js = auto_pool_schedule("dirty", J.POOL_LIFETIME_OPTION_JOB_SCHEDULE)
    js.job_specification.auto_pool_specification.pool.resize_errors.add(code="Forged", message="not ours")
    await create(e, js)
    pool_id = (await e.stubs.jobs.GetJob(J.GetJobRequest(name="jobs/dirty:job-1"))).pool_id
    pool = await e.stubs.pools.GetPool(pool_pb2.GetPoolRequest(name=f"pools/{pool_id}"))
    assert [r.code for r in pool.resize_errors] == []
    # An update of the specification too.
    update = S.JobSchedule(name="jobschedules/dirty", job_specification=js.job_specification)
    mask = field_mask_pb2.FieldMask(paths=["job_specification"])
    await e.schedules.UpdateJobSchedule(S.UpdateJobScheduleRequest(job_schedule=update, update_mask=mask))
    assert not e.server.cp.schedules.schedule(
        "dirty"
    ).proto.job_specification.auto_pool_specification.pool.resize_errors
