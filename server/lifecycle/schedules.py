"""Job schedules: jobs made at due times (Batch's JobSchedule), at most one active at a time.

The pure rules are `server/scheduling/schedules.py` (`decide`); this room keeps the schedules in memory,
stores each as a row of the `schedules` table and applies the decisions: a job is made by
`JobLifecycle.make_job` in the same change, and so the same commit, as the schedule's row with its run
counter and latest due time handled, so a server killed between can neither lose nor double a run. It
learns that a job ended through the kernel's `job_end_hooks`, and tells the rooms that outlive a
schedule (auto pools) that one ended through `schedule_end_hooks`.

`run_due` is called by the schedule loop (`server/controllers/schedules.py`) when the earliest wake-up
time has come or something changed (`changed`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from google.protobuf import timestamp_pb2

from shoal.clock import to_timestamp
from shoal.server.domain import states
from shoal.server.domain.errors import AlreadyExists, FailedPrecondition, NotFound, Refused
from shoal.server.domain.etags import check_etag
from shoal.server.domain.ids import DEFAULT_ACCOUNT
from shoal.server.domain.ids import key as idkey
from shoal.server.domain.records import JobRec
from shoal.server.scheduling.schedules import (
    SCHEDULE_TRANSITIONS,
    Decision,
    Recurrence,
    ScheduleView,
    decide,
)
from shoal.server.store.base import StoredRow
from shoal.v1 import job_pb2, schedule_pb2

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel

log = logging.getLogger("shoal.server")

S = schedule_pb2
J = job_pb2
TABLE: Final = "schedules"
#: The fields UpdateJobSchedule may change.
UPDATABLE_SCHEDULE_FIELDS: Final = frozenset({"schedule", "job_specification", "metadata", "display_name"})
#: Jobs that are over as far as a schedule is concerned (the next may be made).
_ENDED_JOB_STATES: Final = frozenset({J.JOB_STATE_COMPLETED, J.JOB_STATE_DELETING})


def _micros(t: datetime | None) -> int | None:
    return None if t is None else round(t.timestamp() * 1_000_000)


def _from_micros(v: int | None) -> datetime | None:
    return None if v is None else datetime.fromtimestamp(v / 1_000_000, UTC)


def _time(ts: timestamp_pb2.Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def scheduled_job_id(schedule_id: str, n: int) -> str:
    """The id of the `n`th job (from 1) a schedule makes: `<schedule id>:job-<n>`."""
    return f"{schedule_id}:job-{n}"


@dataclass(eq=False)
class ScheduleRec:
    """One job schedule: its message, and what the room keeps beside it."""

    key: str
    seq: int
    proto: schedule_pb2.JobSchedule
    #: Where its due times start (see `Recurrence.anchor` and `anchor_of`).
    anchor: datetime
    #: Jobs made so far (the last one is `<id>:job-<runs>`).
    runs: int = 0
    #: The latest due time handled (a job made for it, or skipped); None before the first.
    last_due: datetime | None = None
    #: The key of its job that is not completed yet, if any.
    active_job: str | None = None
    #: When `run_due` next looks at it (None: when something changes).
    wake_at: datetime | None = None

    @property
    def state(self) -> int:
        return self.proto.state

    def row(self) -> bytes:
        return json.dumps(
            {
                "schedule": self.proto.SerializeToString().hex(),
                "runs": self.runs,
                "last_due": _micros(self.last_due),
                "anchor": _micros(self.anchor),
                "active_job": self.active_job,
            }
        ).encode()

    @classmethod
    def from_row(cls, row: StoredRow) -> ScheduleRec:
        blob = json.loads(row.data)
        proto = S.JobSchedule.FromString(bytes.fromhex(blob["schedule"]))
        anchor = _from_micros(blob.get("anchor")) or _time(proto.creation_time)
        return cls(
            row.key,
            row.seq,
            proto,
            anchor,
            runs=int(blob.get("runs", 0)),
            last_due=_from_micros(blob.get("last_due")),
            active_job=blob.get("active_job") or None,
        )

    def recurrence(self) -> Recurrence:
        s = self.proto.schedule
        return Recurrence(
            anchor=self.anchor,
            interval=s.recurrence_interval.ToTimedelta() if s.HasField("recurrence_interval") else None,
            cron=s.cron,
            time_zone=s.time_zone,
            start_window=s.start_window.ToTimedelta() if s.HasField("start_window") else None,
            do_not_run_after=_time(s.do_not_run_after) if s.HasField("do_not_run_after") else None,
        )


def anchor_of(schedule: schedule_pb2.Schedule, now: datetime, last_due: datetime | None) -> datetime:
    """Where a (new or changed) schedule's due times start: its do_not_run_until; else, for an interval
    after a job was made, the last due time (the next is an interval after it); else now."""
    if schedule.HasField("do_not_run_until"):
        return _time(schedule.do_not_run_until)
    if last_due is not None and schedule.HasField("recurrence_interval") and not schedule.cron:
        return last_due
    return now


class ScheduleLifecycle:
    """Job schedules: their states, the jobs they make, and what ends them."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.schedules: dict[str, ScheduleRec] = {}
        #: Set when a schedule may have something to do now (made, changed, its job ended): wakes the loop.
        self.changed = asyncio.Event()
        #: Schedules to look at with the next `run_due`, whatever their wake-up time.
        self._due_now: set[str] = set()
        k.job_end_hooks.append(self.job_ended)

    # ---------------------------------------------------------------- reading

    def load(self, rows: list[StoredRow]) -> None:
        """The schedules as last committed (at start-up, after the jobs are loaded)."""
        for row in rows:
            rec = ScheduleRec.from_row(row)
            if rec.active_job is not None:
                job = self.k.jobs.get(rec.active_job)
                if job is None or job.proto.state in _ENDED_JOB_STATES:
                    rec.active_job = None  # (a job end's hook marks the row in the same commit: not expected)
            self.schedules[rec.key] = rec
            self._due_now.add(rec.key)
        self.changed.set()

    def schedule(self, schedule_id: str) -> ScheduleRec:
        rec = self.schedules.get(idkey(schedule_id))
        if rec is None:
            raise NotFound("JOB_SCHEDULE_NOT_FOUND", f"job schedule {schedule_id!r} does not exist")
        return rec

    def exists(self, schedule_id: str) -> bool:
        return idkey(schedule_id) in self.schedules

    def jobs_of(self, rec: ScheduleRec) -> list[JobRec]:
        """The schedule's jobs not deleted, oldest first."""
        return sorted(
            (j for j in self.k.jobs.values() if j.proto.job_schedule_id and idkey(j.proto.job_schedule_id) == rec.key),
            key=lambda j: j.seq,
        )

    def next_wake(self) -> datetime | None:
        """The earliest time a schedule has something to do (None: none has, until something changes)."""
        if self._due_now:
            return self.k.clock.now()
        return min((r.wake_at for r in self.schedules.values() if r.wake_at is not None), default=None)

    # ---------------------------------------------------------------- changes

    def _set_state(self, rec: ScheduleRec, new: int) -> None:
        old = rec.proto.state
        states.check_transition(SCHEDULE_TRANSITIONS, old, new, f"job schedule {rec.key}")
        if old == new:
            return
        now = to_timestamp(self.k.clock.now())
        rec.proto.previous_state = old  # type: ignore[assignment]
        rec.proto.previous_state_transition_time.CopyFrom(rec.proto.state_transition_time)
        rec.proto.state = new  # type: ignore[assignment]
        rec.proto.state_transition_time.CopyFrom(now)
        if new == S.JOB_SCHEDULE_STATE_COMPLETED:
            rec.proto.execution_info.end_time.CopyFrom(now)
        if new != S.JOB_SCHEDULE_STATE_ACTIVE:
            rec.proto.execution_info.ClearField("next_run_time")
            rec.wake_at = None
        self._mark(rec)
        if new == S.JOB_SCHEDULE_STATE_COMPLETED:
            self._schedule_ended(rec)

    def _mark(self, rec: ScheduleRec) -> None:
        self.k.mark(TABLE, rec.key, ("", rec.row()))

    def _wake(self, rec: ScheduleRec) -> None:
        self._due_now.add(rec.key)
        self.changed.set()

    async def create(self, spec: schedule_pb2.JobSchedule, request_id: str = "") -> schedule_pb2.JobSchedule:
        """Create a schedule (checked by the API); its first job is made by the next `run_due` if due."""
        if request_id and f"schedule:{request_id}" in self.k.requests:
            return self.schedule(self.k.requests[f"schedule:{request_id}"]).proto
        k = idkey(spec.id)
        if k in self.schedules:
            raise AlreadyExists("JOB_SCHEDULE_EXISTS", f"job schedule {spec.id!r} already exists")
        if k in self.k.jobs:
            raise AlreadyExists("JOB_EXISTS", f"a job with id {spec.id!r} exists: a job schedule may not share it")
        now = self.k.clock.now()
        stamp = to_timestamp(now)
        proto = S.JobSchedule()
        proto.CopyFrom(spec)
        proto.name = f"jobschedules/{spec.id}"
        proto.state = S.JOB_SCHEDULE_STATE_ACTIVE
        proto.creation_time.CopyFrom(stamp)
        proto.state_transition_time.CopyFrom(stamp)
        proto.last_modified.CopyFrom(stamp)
        # (Its job specification's auto pool registry passwords are kept apart: `containers.credentials`.)
        self.k.registry_credentials.keep_schedule(proto)
        self.k.meta["schedule_seq"] = self.k.meta.get("schedule_seq", 0) + 1
        self.k.mark_meta("schedule_seq")
        rec = ScheduleRec(k, self.k.meta["schedule_seq"], proto, anchor_of(proto.schedule, now, None))
        self.schedules[k] = rec
        # (A job due now is made with the schedule, in its commit.)
        made = self._apply(rec, self._decide(rec, now))
        self._mark(rec)
        if request_id:
            self.k.requests[f"schedule:{request_id}"] = spec.id
            self.k.mark("requests", f"schedule:{request_id}", spec.id)
        await self._commit(made)
        return rec.proto

    async def _commit(self, made: JobRec | None) -> None:
        """Flush this change; the scheduler places the job made in it (its job manager task), if any; the
        loop looks again at the schedules' wake-up times."""
        await self.k.flush()
        if made is not None and made.has_queued():
            self.k.kick_scheduler()
        self.changed.set()

    async def update(
        self, schedule_id: str, patch: schedule_pb2.JobSchedule, fields: frozenset[str], *, etag: str = ""
    ) -> schedule_pb2.JobSchedule:
        """Set `fields` (among `UPDATABLE_SCHEDULE_FIELDS`) from `patch`: they apply to jobs made from now."""
        rec = self.schedule(schedule_id)
        check_etag(f"job schedule {schedule_id!r}", rec.proto, etag)
        self._refuse_unless_open(rec, "it cannot be updated")
        now = self.k.clock.now()
        proto = rec.proto
        if "schedule" in fields:
            proto.schedule.CopyFrom(patch.schedule)
            rec.anchor = anchor_of(proto.schedule, now, rec.last_due)
        if "job_specification" in fields:
            proto.job_specification.CopyFrom(patch.job_specification)
            self.k.registry_credentials.keep_schedule(proto)
        if "metadata" in fields:
            del proto.metadata[:]
            proto.metadata.extend(patch.metadata)
        if "display_name" in fields:
            proto.display_name = patch.display_name
        proto.last_modified.CopyFrom(to_timestamp(now))
        made = self._apply(rec, self._decide(rec, now))
        self._mark(rec)
        await self._commit(made)
        return proto

    def _refuse_unless_open(self, rec: ScheduleRec, what: str) -> None:
        state = rec.proto.state
        if state == S.JOB_SCHEDULE_STATE_DELETING:
            raise FailedPrecondition("JOB_SCHEDULE_BEING_DELETED", f"job schedule {rec.proto.id!r} is being deleted")
        if state == S.JOB_SCHEDULE_STATE_TERMINATING:
            raise FailedPrecondition(
                "JOB_SCHEDULE_BEING_TERMINATED", f"job schedule {rec.proto.id!r} is terminating: {what}"
            )
        if state == S.JOB_SCHEDULE_STATE_COMPLETED:
            raise FailedPrecondition("JOB_SCHEDULE_COMPLETED", f"job schedule {rec.proto.id!r} is completed: {what}")

    async def disable(self, schedule_id: str, *, etag: str = "") -> schedule_pb2.JobSchedule:
        """ACTIVE -> DISABLED: no job is made until it is enabled (its active job goes on)."""
        rec = self.schedule(schedule_id)
        check_etag(f"job schedule {schedule_id!r}", rec.proto, etag)
        if rec.state == S.JOB_SCHEDULE_STATE_DISABLED:
            return rec.proto
        self._refuse_unless_open(rec, "it cannot be disabled")
        self._set_state(rec, S.JOB_SCHEDULE_STATE_DISABLED)
        # (It still skips what its windows pass and completes at its do_not_run_after.)
        await self._commit(self._apply(rec, self._decide(rec, self.k.clock.now())))
        return rec.proto

    async def enable(self, schedule_id: str, *, etag: str = "") -> schedule_pb2.JobSchedule:
        """DISABLED -> ACTIVE: a job due (its window still open) is made at once."""
        rec = self.schedule(schedule_id)
        check_etag(f"job schedule {schedule_id!r}", rec.proto, etag)
        if rec.state == S.JOB_SCHEDULE_STATE_ACTIVE:
            return rec.proto
        if rec.state != S.JOB_SCHEDULE_STATE_DISABLED:
            raise FailedPrecondition(
                "JOB_SCHEDULE_NOT_DISABLED",
                f"job schedule {schedule_id!r} is {S.JobScheduleState.Name(rec.state)}: only a disabled one can be "
                "enabled",
            )
        self._set_state(rec, S.JOB_SCHEDULE_STATE_ACTIVE)
        await self._commit(self._apply(rec, self._decide(rec, self.k.clock.now())))
        return rec.proto

    async def terminate(self, schedule_id: str, *, etag: str = "") -> schedule_pb2.JobSchedule:
        """TERMINATING while its active job terminates (reason `TerminateJobSchedule`), then COMPLETED."""
        rec = self.schedule(schedule_id)
        check_etag(f"job schedule {schedule_id!r}", rec.proto, etag)
        self._refuse_unless_open(rec, "it cannot be terminated")
        self._set_state(rec, S.JOB_SCHEDULE_STATE_TERMINATING)
        job = self.k.jobs.get(rec.active_job) if rec.active_job is not None else None
        if job is None or job.proto.state in _ENDED_JOB_STATES:
            self._set_state(rec, S.JOB_SCHEDULE_STATE_COMPLETED)
        elif job.proto.state != J.JOB_STATE_TERMINATING:
            # (Completing the job at once calls `job_ended`, which completes the schedule.)
            self.k.send_kills(self.k.job_life.terminate_now(job, "TerminateJobSchedule"))
        result = S.JobSchedule()
        result.CopyFrom(rec.proto)
        await self.k.flush()
        self.k.kick_scheduler()
        return result

    async def delete(self, schedule_id: str, *, etag: str = "") -> schedule_pb2.JobSchedule:
        """DELETING while its jobs are deleted, then gone."""
        rec = self.schedule(schedule_id)
        check_etag(f"job schedule {schedule_id!r}", rec.proto, etag)
        if rec.state == S.JOB_SCHEDULE_STATE_DELETING:
            raise FailedPrecondition("JOB_SCHEDULE_BEING_DELETED", f"job schedule {schedule_id!r} is being deleted")
        self._set_state(rec, S.JOB_SCHEDULE_STATE_DELETING)
        result = S.JobSchedule()
        result.CopyFrom(rec.proto)
        # Committed first: a restart goes on deleting its jobs (`run_due`).
        await self.k.flush()
        await self._delete_jobs(rec)
        return result

    async def _delete_jobs(self, rec: ScheduleRec) -> None:
        """Delete a DELETING schedule's jobs (those not being deleted already); forget it once none is left."""
        for job in self.jobs_of(rec):
            if job.proto.state != J.JOB_STATE_DELETING and job.key in self.k.jobs:
                try:
                    await self.k.job_life.delete_job(job.proto.id)
                except Refused as e:  # (deleted meanwhile)
                    log.info("job schedule %s: job %s: %s", rec.proto.id, job.proto.id, e)
        if self.schedules.get(rec.key) is rec and not self.jobs_of(rec):
            self._remove(rec)
            await self.k.flush()

    def _remove(self, rec: ScheduleRec) -> None:
        del self.schedules[rec.key]
        self._due_now.discard(rec.key)
        self.k.delete_row(TABLE, rec.key)
        self._schedule_ended(rec)

    def _schedule_ended(self, rec: ScheduleRec) -> None:
        """Tell the `schedule_end_hooks`, with the job specification as the jobs get it: its account set
        (schedule ids are not per account: the hooks must not touch another account's pool of that id)."""
        spec = J.Job()
        spec.CopyFrom(rec.proto.job_specification)
        spec.account = rec.proto.account
        for hook in self.k.schedule_end_hooks:
            hook(rec.proto.id, spec)

    def job_ended(self, job: JobRec) -> None:
        """Job end hook: a job of a schedule completed or was removed (called twice: idempotent)."""
        sid = job.proto.job_schedule_id
        rec = self.schedules.get(idkey(sid)) if sid else None
        if rec is None:
            return
        if rec.active_job == job.key:
            rec.active_job = None
            self._mark(rec)
            if rec.state == S.JOB_SCHEDULE_STATE_TERMINATING:
                self._set_state(rec, S.JOB_SCHEDULE_STATE_COMPLETED)
            else:
                self._wake(rec)
        if rec.state == S.JOB_SCHEDULE_STATE_DELETING and job.key not in self.k.jobs:
            # (Its last job gone: the schedule goes with the next `run_due`.)
            self._wake(rec)

    # ---------------------------------------------------------------- the loop's work

    def _decide(self, rec: ScheduleRec, now: datetime) -> Decision:
        job_active = rec.active_job is not None
        view = ScheduleView(
            rec.recurrence(), rec.last_due, enabled=rec.state == S.JOB_SCHEDULE_STATE_ACTIVE, job_active=job_active
        )
        return decide(view, now)

    def _apply(self, rec: ScheduleRec, d: Decision) -> JobRec | None:
        """Apply decision `d` to `rec` in this change: the job it makes, what it skips, its completion and its
        next run time. Returns the job made."""
        before = (rec.runs, rec.last_due, rec.active_job, rec.proto.execution_info.SerializeToString())
        made: JobRec | None = None
        if d.make_for is not None:
            made = self._make_job(rec)
            rec.last_due = d.make_for
        elif d.skip_to is not None:
            log.info("job schedule %s: due times up to %s skipped (start window passed)", rec.proto.id, d.skip_to)
            rec.last_due = d.skip_to
        if d.complete:
            self._set_state(rec, S.JOB_SCHEDULE_STATE_COMPLETED)
        else:
            self._show_next_run(rec, d.next_run_time)
            rec.wake_at = d.wake_at
        after = (rec.runs, rec.last_due, rec.active_job, rec.proto.execution_info.SerializeToString())
        if before != after:
            self._mark(rec)
        return made

    def _show_next_run(self, rec: ScheduleRec, when: datetime | None) -> None:
        info = rec.proto.execution_info
        if when is None or rec.state != S.JOB_SCHEDULE_STATE_ACTIVE:
            info.ClearField("next_run_time")
        else:
            info.next_run_time.CopyFrom(to_timestamp(when))

    def _make_job(self, rec: ScheduleRec) -> JobRec | None:
        """Make the schedule's next job from its job specification, in this change (None: it could not be
        made, say its pool is gone; the due time is skipped and the reason logged)."""
        spec = J.Job()
        spec.CopyFrom(rec.proto.job_specification)
        spec.id = scheduled_job_id(rec.proto.id, rec.runs + 1)
        spec.job_schedule_id = rec.proto.id
        spec.account = rec.proto.account
        try:
            job = self.k.job_life.make_job(spec)
        except Refused as e:
            log.warning("job schedule %s could not make job %s: %s", rec.proto.id, spec.id, e)
            return None
        rec.runs += 1
        if job.proto.state in _ENDED_JOB_STATES:
            # (Completed as it was made, its auto pool not made: the end hooks ran before it was the
            # active job. The schedule goes on as if it had ended at once: decided again next pass.)
            self._wake(rec)
        else:
            rec.active_job = job.key
        recent = rec.proto.execution_info.recent_job
        recent.id = job.proto.id
        recent.name = job.proto.name
        return job

    async def run_due(self) -> None:
        """Make the jobs that are due, skip what is past its window, complete what is over, go on deleting
        what is being deleted: every schedule whose wake-up time has come, or that changed, in one commit."""
        now = self.k.clock.now()
        due = set(self._due_now)
        self._due_now.clear()
        for rec in self.schedules.values():
            if rec.wake_at is not None and rec.wake_at <= now:
                due.add(rec.key)
        made: list[JobRec] = []
        deleting: list[ScheduleRec] = []
        for key in sorted(due):
            found = self.schedules.get(key)
            if found is None:
                continue
            if found.state == S.JOB_SCHEDULE_STATE_DELETING:
                deleting.append(found)
            elif found.state in (S.JOB_SCHEDULE_STATE_ACTIVE, S.JOB_SCHEDULE_STATE_DISABLED):
                job = self._apply(found, self._decide(found, now))
                if job is not None:
                    made.append(job)
        if self.k.has_changes():
            await self.k.flush()
        if any(job.has_queued() for job in made):
            self.k.kick_scheduler()
        for rec in deleting:
            await self._delete_jobs(rec)

    def usage(self, account: str) -> int:
        """How many of `account`'s schedules count as active (Batch's quota of active jobs and schedules)."""
        return sum(
            1
            for r in self.schedules.values()
            if (r.proto.account or DEFAULT_ACCOUNT) == account
            and r.state not in (S.JOB_SCHEDULE_STATE_COMPLETED, S.JOB_SCHEDULE_STATE_DELETING)
        )


__all__ = ["UPDATABLE_SCHEDULE_FIELDS", "ScheduleLifecycle", "ScheduleRec", "scheduled_job_id"]
