"""Field checks for job schedules: the schedule itself, and its job specification checked as CreateJob checks
a job (`validation.check_job`), with field paths under `job_schedule.job_specification.`."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import timestamp_pb2

from shoal.server.api.identity_checks import PoolAccounts
from shoal.server.api.validation import (
    JOB_OUTPUT_ONLY,
    MAX_DISPLAY_NAME,
    Violations,
    check_duration,
    check_job,
    check_metadata,
)
from shoal.server.domain.ids import id_problem
from shoal.server.scheduling.schedules import cron_problem
from shoal.v1 import job_pb2, schedule_pb2

#: Fields the server sets, ignored in a create request (AIP-203).
SCHEDULE_OUTPUT_ONLY = (
    "name",
    "account",
    "state",
    "creation_time",
    "state_transition_time",
    "previous_state",
    "previous_state_transition_time",
    "execution_info",
    "etag",
    "last_modified",
)
#: Fields of a job specification the schedule sets on each job it makes (or the server does): left empty.
SPEC_SET_BY_SCHEDULE = ("id", "job_schedule_id", *JOB_OUTPUT_ONLY)
#: The range of a protobuf Timestamp: 0001-01-01 to 9999-12-31.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799
_PREFIX = "job_schedule"


def _check_timestamp(t: timestamp_pb2.Timestamp, field: str) -> Violations:
    if not MIN_TIMESTAMP_SECONDS <= t.seconds <= MAX_TIMESTAMP_SECONDS or not 0 <= t.nanos < 1_000_000_000:
        return [(field, "is not a valid Timestamp (between 0001-01-01 and 9999-12-31)")]
    return []


def check_schedule(s: schedule_pb2.Schedule, min_seconds: float, field: str = f"{_PREFIX}.schedule") -> Violations:
    """A schedule's times: valid, `start_window` and `recurrence_interval` at least `min_seconds`, `cron`
    (with its `time_zone`) instead of an interval, never both."""
    out: Violations = []
    for name in ("do_not_run_until", "do_not_run_after"):
        if s.HasField(name):
            out += _check_timestamp(getattr(s, name), f"{field}.{name}")
    both = not out and s.HasField("do_not_run_until") and s.HasField("do_not_run_after")
    if both and s.do_not_run_after.ToNanoseconds() < s.do_not_run_until.ToNanoseconds():
        out.append((f"{field}.do_not_run_after", "must not be before do_not_run_until"))
    for name in ("start_window", "recurrence_interval"):
        if s.HasField(name):
            d = getattr(s, name)
            bad = check_duration(d, f"{field}.{name}", positive=True)
            if not bad and d.ToNanoseconds() < min_seconds * 1e9:
                bad = [(f"{field}.{name}", f"must be at least {min_seconds:g} seconds")]
            out += bad
    if s.cron:
        if s.HasField("recurrence_interval"):
            out.append((f"{field}.cron", "set cron or recurrence_interval, not both"))
        out += [(f"{field}.{f}", d) for f, d in cron_problem(s.cron, s.time_zone)]
    elif s.time_zone:
        out.append((f"{field}.time_zone", "applies to cron only: set it with cron"))
    return out


def check_job_specification(
    spec: job_pb2.Job, accounts: PoolAccounts | None, field: str = f"{_PREFIX}.job_specification"
) -> Violations:
    """A schedule's job specification, as CreateJob checks a job; the fields the schedule sets must be empty."""
    out: Violations = []
    for name in SPEC_SET_BY_SCHEDULE:
        descriptor = spec.DESCRIPTOR.fields_by_name[name]
        is_set = spec.HasField(name) if descriptor.message_type is not None else bool(getattr(spec, name))
        if is_set:
            out.append((f"{field}.{name}", "must be empty: the schedule sets it on each job it makes"))
    probe = job_pb2.Job()
    probe.CopyFrom(spec)
    probe.id = "schedule-job"  # (the id each job gets is checked by the schedule's)
    for f, d in check_job(probe, accounts, on_schedule=True):
        out.append((field + f[len("job") :] if f.startswith("job.") or f == "job" else f, d))
    return out


def check_job_schedule(js: schedule_pb2.JobSchedule, accounts: PoolAccounts | None, min_seconds: float) -> Violations:
    """A schedule to create."""
    out: Violations = []
    p = id_problem(js.id)
    if p:
        out.append((f"{_PREFIX}.id", p))
    out += check_display_name(js.display_name)
    out += check_schedule(js.schedule, min_seconds)
    if not js.HasField("job_specification"):
        out.append((f"{_PREFIX}.job_specification", "is required"))
    else:
        out += check_job_specification(js.job_specification, accounts)
    out += check_metadata(js.metadata, f"{_PREFIX}.metadata")
    return out


def check_display_name(name: str) -> Violations:
    if len(name) > MAX_DISPLAY_NAME:
        return [(f"{_PREFIX}.display_name", f"must be at most {MAX_DISPLAY_NAME} characters")]
    return []


def check_update(
    js: schedule_pb2.JobSchedule, mask: Iterable[str], accounts: PoolAccounts | None, min_seconds: float
) -> Violations:
    """The fields of an UpdateJobSchedule in its mask."""
    out: Violations = []
    fields = set(mask)
    if "schedule" in fields:
        out += check_schedule(js.schedule, min_seconds)
    if "job_specification" in fields:
        if not js.HasField("job_specification"):
            out.append((f"{_PREFIX}.job_specification", "is required"))
        else:
            out += check_job_specification(js.job_specification, accounts)
    if "metadata" in fields:
        out += check_metadata(js.metadata, f"{_PREFIX}.metadata")
    if "display_name" in fields:
        out += check_display_name(js.display_name)
    return out
