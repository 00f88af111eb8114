"""Field checks for everything a client submits. Each returns the list of field violations."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePosixPath

from google.protobuf import duration_pb2, message
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from shoal.commandline import command_line_problem
from shoal.paths import UnsafePathError, check_relative_path
from shoal.pool_providers import POOL_PROVIDERS
from shoal.server.api.container_checks import check_container_configuration, check_container_settings_of
from shoal.server.api.identity_checks import PoolAccounts, check_identity_of, check_user_accounts, pool_accounts
from shoal.server.applications.model import reference_form_problems
from shoal.server.autoscale import settings as autoscale_settings
from shoal.server.domain.ids import id_problem
from shoal.server.scheduling import autopools
from shoal.server.scheduling.dependencies import dependencies_problems
from shoal.server.scheduling.exit_options import exit_conditions_problems
from shoal.server.scheduling.resizing import MIN_RESIZE_TIMEOUT_SECONDS
from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2

Violations = list[tuple[str, str]]
CONTAINER_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_SLOTS = 256
MAX_NODES_PER_POOL = 1000
MAX_COMMAND_LINE = 32_768
MAX_TASKS_PER_REQUEST = 200_000
MAX_DISPLAY_NAME = 1024
#: Bytes of a file path under a task or node directory, and of one name in it (Linux NAME_MAX).
MAX_FILE_PATH_BYTES = 1024
MAX_FILE_NAME_BYTES = 255
MAX_REASON = 1024
#: A request id is kept for as long as the server lives: a UUID is 36 characters.
MAX_REQUEST_ID = 256
#: Fields the server sets, ignored in a create request (AIP-203): what a client puts there is dropped.
POOL_OUTPUT_ONLY = (
    "name",
    "account",
    "state",
    "allocation_state",
    "current_nodes",
    "creation_time",
    "state_transition_time",
    "etag",
    "resize_errors",
    "allocation_state_transition_time",
    "current_low_priority_nodes",
    "auto_scale_run",
    "auto_pool_owner",
)
JOB_OUTPUT_ONLY = (
    "name",
    "account",
    "state",
    "creation_time",
    "state_transition_time",
    "execution_info",
    "etag",
    "previous_state",
    "previous_state_transition_time",
    "job_schedule_id",
)
#: Metadata of a job or pool: at most this many pairs, names and values at most so long.
MAX_METADATA_ITEMS = 64
MAX_METADATA_NAME = 256
MAX_METADATA_VALUE = 1024
#: The longest a job release task may run (and its default): Batch's 15 minutes.
MAX_RELEASE_SECONDS = 15 * 60
#: The protobuf Duration range (about 10,000 years either way), and nanos below one second.
DURATION_SECONDS_LIMIT = 315_576_000_000
NANOS_PER_SECOND = 1_000_000_000
#: The longest duration Shoal takes (100 years): a deadline this far ahead still fits a datetime.
MAX_DURATION_SECONDS = 36_500 * 24 * 3600


def check_duration(d: duration_pb2.Duration, field: str, *, positive: bool = False) -> Violations:
    """A Duration a client set: valid as protobuf defines it (seconds within about ±10,000 years,
    |nanos| below a second, seconds and nanos of the same sign), not negative (positive with
    `positive`), at most `MAX_DURATION_SECONDS`. Checked on the integers: converting an invalid one
    to a timedelta raises."""
    s, n = d.seconds, d.nanos
    if (
        not -DURATION_SECONDS_LIMIT <= s <= DURATION_SECONDS_LIMIT
        or not -NANOS_PER_SECOND < n < NANOS_PER_SECOND
        or (s > 0 and n < 0)
        or (s < 0 and n > 0)
    ):
        return [
            (
                field,
                f"is not a valid Duration (seconds={s}, nanos={n}): seconds must be within "
                f"±{DURATION_SECONDS_LIMIT}, |nanos| below {NANOS_PER_SECOND}, both of the same sign",
            )
        ]
    total = s * NANOS_PER_SECOND + n
    if total < 0 or (positive and total == 0):
        return [(field, "must be positive" if positive else "must not be negative")]
    if total > MAX_DURATION_SECONDS * NANOS_PER_SECOND:
        return [(field, f"must be at most {MAX_DURATION_SECONDS} seconds (100 years)")]
    return []


def clear_output_only(msg: message.Message, fields: Iterable[str]) -> None:
    """Drop the output-only `fields` a client set in a resource it creates."""
    for name in fields:
        msg.ClearField(name)


def check_enum(value: int, enum: EnumTypeWrapper, field: str, *, allow_unspecified: bool = True) -> Violations:
    """`value` must be one of `enum`'s values (proto3 enums take any int32 on the wire)."""
    if value in enum.DESCRIPTOR.values_by_number and (allow_unspecified or value != 0):
        return []
    names = [v.name for v in enum.DESCRIPTOR.values if allow_unspecified or v.number != 0]
    return [(field, f"must be one of {', '.join(names)} (got {value})")]


def check_file_path(path: str, field: str) -> Violations:
    """A path under a node's or a task's directory, checked before any agent is asked (the agent checks it
    again, and that no link leads out): relative, not climbing, short enough for the file system."""
    try:
        check_relative_path(path, allow_empty=True)
    except UnsafePathError as e:
        return [(field, str(e))]
    encoded = path.encode("utf-8")
    if len(encoded) > MAX_FILE_PATH_BYTES:
        return [(field, f"must be at most {MAX_FILE_PATH_BYTES} bytes of UTF-8")]
    if any(len(part) > MAX_FILE_NAME_BYTES for part in encoded.split(b"/")):
        return [(field, f"each '/'-separated part must be at most {MAX_FILE_NAME_BYTES} bytes of UTF-8")]
    return []


def check_command_line(command_line: str, field: str, *, required: bool = True) -> Violations:
    """A command line as the agent runs it: split as a POSIX shell would (`shoal.commandline`), at most
    `MAX_COMMAND_LINE` characters."""
    if not command_line.strip():
        return [(field, "is required")] if required else []
    if len(command_line) > MAX_COMMAND_LINE:
        return [(field, f"must be at most {MAX_COMMAND_LINE} characters")]
    problem = command_line_problem(command_line)
    return [(field, problem)] if problem else []


def check_env(settings: Iterable[common_pb2.EnvironmentSetting], field: str) -> Violations:
    out: Violations = []
    for i, e in enumerate(settings):
        if not ENV_NAME_RE.match(e.name):
            out.append((f"{field}[{i}].name", "must be a valid environment variable name"))
        if "\x00" in e.value:
            out.append((f"{field}[{i}].value", "must not contain NUL"))
    return out


def check_resource_files(files: Iterable[common_pb2.ResourceFile], field: str) -> Violations:
    out: Violations = []
    for i, f in enumerate(files):
        here = f"{field}[{i}]"
        sources = [bool(f.storage_container_name), bool(f.http_url)]
        if sum(sources) != 1:
            out.append((here, "set exactly one of storage_container_name or http_url"))
        if f.storage_container_name and not CONTAINER_RE.match(f.storage_container_name):
            out.append((f"{here}.storage_container_name", "must be 3-63 lowercase letters, digits or '-'"))
        if f.http_url:
            if not re.match(r"^https?://", f.http_url):
                out.append((f"{here}.http_url", "must be an http:// or https:// URL"))
            if not f.file_path:
                out.append((f"{here}.file_path", "is required with http_url"))
        if f.blob_prefix:
            try:
                check_relative_path(f.blob_prefix.rstrip("/"), allow_empty=True)
            except UnsafePathError as e:
                out.append((f"{here}.blob_prefix", str(e)))
        if f.file_path:
            try:
                check_relative_path(f.file_path, allow_empty=True)
            except UnsafePathError as e:
                out.append((f"{here}.file_path", str(e)))
        if f.file_mode and not re.match(r"^0?[0-7]{3}$", f.file_mode):
            out.append((f"{here}.file_mode", "must be an octal mode like 0755"))
    return out


def check_output_files(files: Iterable[common_pb2.OutputFile], field: str) -> Violations:
    out: Violations = []
    for i, f in enumerate(files):
        here = f"{field}[{i}]"
        pattern = f.file_pattern
        if not pattern:
            out.append((f"{here}.file_pattern", "is required"))
        elif pattern.startswith("/") or "\\" in pattern or "\x00" in pattern:
            out.append((f"{here}.file_pattern", "must be relative to the task working directory"))
        else:
            # Relative to <task dir>/wd: one '..' may reach the task directory's
            # own files (stdout.txt), never further.
            depth = 1
            for part in PurePosixPath(pattern).parts:
                depth += -1 if part == ".." else (0 if part == "." else 1)
                if depth < 0:
                    out.append((f"{here}.file_pattern", "must not escape the task directory"))
                    break
        if not CONTAINER_RE.match(f.container_name):
            out.append((f"{here}.container_name", "must be 3-63 lowercase letters, digits or '-'"))
        if f.path:
            try:
                check_relative_path(f.path.rstrip("/"))
            except UnsafePathError as e:
                out.append((f"{here}.path", str(e)))
        if f.upload_condition:
            out += check_enum(f.upload_condition, common_pb2.OutputFileUploadCondition, f"{here}.upload_condition")
    return out


def check_start_task(st: common_pb2.StartTask, field: str, accounts: PoolAccounts | None = None) -> Violations:
    out: Violations = []
    out += check_command_line(st.command_line, f"{field}.command_line")
    if st.max_task_retry_count < -1:
        out.append((f"{field}.max_task_retry_count", "must be -1 (unlimited) or more"))
    out += check_resource_files(st.resource_files, f"{field}.resource_files")
    out += check_env(st.environment_settings, f"{field}.environment_settings")
    out += check_identity_of(st, field, accounts)
    out += check_container_settings_of(st, field, accounts)
    return out


def check_metadata(items: Iterable[common_pb2.MetadataItem], field: str) -> Violations:
    """Name/value pairs: at most `MAX_METADATA_ITEMS`, names non-empty and unique, sizes bounded."""
    out: Violations = []
    seen: set[str] = set()
    items = list(items)
    if len(items) > MAX_METADATA_ITEMS:
        return [(field, f"at most {MAX_METADATA_ITEMS} items")]
    for i, m in enumerate(items):
        if not m.name:
            out.append((f"{field}[{i}].name", "is required"))
        elif len(m.name) > MAX_METADATA_NAME:
            out.append((f"{field}[{i}].name", f"must be at most {MAX_METADATA_NAME} characters"))
        elif m.name in seen:
            out.append((f"{field}[{i}].name", f"{m.name!r} is given twice"))
        seen.add(m.name)
        if len(m.value) > MAX_METADATA_VALUE:
            out.append((f"{field}[{i}].value", f"must be at most {MAX_METADATA_VALUE} characters"))
    return out


def check_task_constraints(c: common_pb2.TaskConstraints, field: str) -> Violations:
    """A task's constraints: retry count -1 or more, durations valid (0: unlimited / the default)."""
    out: Violations = []
    if c.HasField("max_task_retry_count") and c.max_task_retry_count < -1:
        out.append((f"{field}.max_task_retry_count", "must be -1 (unlimited) or more"))
    if c.HasField("max_wall_clock_time"):  # (0: unlimited)
        out += check_duration(c.max_wall_clock_time, f"{field}.max_wall_clock_time")
    if c.HasField("retention_time"):  # (0: the default)
        out += check_duration(c.retention_time, f"{field}.retention_time")
    return out


def check_optional_id(value: str, field: str) -> Violations:
    """An id that may be left empty (a default applies)."""
    p = id_problem(value) if value else None
    return [(field, p)] if p else []


def check_job_manager_task(jm: job_pb2.JobManagerTask, field: str, accounts: PoolAccounts | None = None) -> Violations:
    out = check_optional_id(jm.id, f"{field}.id")
    if len(jm.display_name) > MAX_DISPLAY_NAME:
        out.append((f"{field}.display_name", f"must be at most {MAX_DISPLAY_NAME} characters"))
    out += check_command_line(jm.command_line, f"{field}.command_line")
    out += check_resource_files(jm.resource_files, f"{field}.resource_files")
    out += check_output_files(jm.output_files, f"{field}.output_files")
    out += check_env(jm.environment_settings, f"{field}.environment_settings")
    out += check_task_constraints(jm.constraints, f"{field}.constraints")
    if not 0 <= jm.required_slots <= MAX_SLOTS:
        out.append((f"{field}.required_slots", f"must be between 1 and {MAX_SLOTS}"))
    out += check_identity_of(jm, field, accounts)
    out += reference_form_problems(jm.application_package_references, f"{field}.application_package_references")
    out += check_container_settings_of(jm, field, accounts)
    return out


def check_preparation_task(
    prep: job_pb2.JobPreparationTask, field: str, accounts: PoolAccounts | None = None
) -> Violations:
    out = check_optional_id(prep.id, f"{field}.id")
    out += check_command_line(prep.command_line, f"{field}.command_line")
    out += check_resource_files(prep.resource_files, f"{field}.resource_files")
    out += check_env(prep.environment_settings, f"{field}.environment_settings")
    out += check_task_constraints(prep.constraints, f"{field}.constraints")
    out += check_identity_of(prep, field, accounts)
    out += check_container_settings_of(prep, field, accounts)
    return out


def check_release_task(release: job_pb2.JobReleaseTask, field: str, accounts: PoolAccounts | None = None) -> Violations:
    out = check_optional_id(release.id, f"{field}.id")
    out += check_identity_of(release, field, accounts)
    out += check_command_line(release.command_line, f"{field}.command_line")
    out += check_resource_files(release.resource_files, f"{field}.resource_files")
    out += check_env(release.environment_settings, f"{field}.environment_settings")
    if release.HasField("max_wall_clock_time"):
        d = release.max_wall_clock_time
        v = check_duration(d, f"{field}.max_wall_clock_time", positive=True)
        if not v and d.seconds + d.nanos / 1e9 > MAX_RELEASE_SECONDS:
            v = [(f"{field}.max_wall_clock_time", f"must be at most {MAX_RELEASE_SECONDS // 60} minutes")]
        out += v
    if release.HasField("retention_time"):
        out += check_duration(release.retention_time, f"{field}.retention_time")
    out += check_container_settings_of(release, field, accounts)
    return out


def check_request_id(request_id: str) -> Violations:
    """An idempotency key (kept with what it made)."""
    if len(request_id) > MAX_REQUEST_ID:
        return [("request_id", f"must be at most {MAX_REQUEST_ID} characters")]
    return []


def check_pool(pool: pool_pb2.Pool) -> Violations:
    out: Violations = []
    p = id_problem(pool.id)
    if p:
        out.append(("pool.id", p))
    if len(pool.display_name) > MAX_DISPLAY_NAME:
        out.append(("pool.display_name", f"must be at most {MAX_DISPLAY_NAME} characters"))
    if not 0 <= pool.target_nodes <= MAX_NODES_PER_POOL:
        out.append(("pool.target_nodes", f"must be between 0 and {MAX_NODES_PER_POOL}"))
    out += check_low_priority_target(pool)
    if not 0 <= pool.task_slots_per_node <= MAX_SLOTS:
        out.append(("pool.task_slots_per_node", f"must be between 1 and {MAX_SLOTS}"))
    if pool.provider and pool.provider not in POOL_PROVIDERS:
        out.append(("pool.provider", "must be one of " + ", ".join(repr(p) for p in POOL_PROVIDERS)))
    out += check_user_accounts(pool.user_accounts, "pool.user_accounts")
    if pool.HasField("container_configuration"):
        out += check_container_configuration(pool.container_configuration, "pool.container_configuration")
    if pool.HasField("start_task"):
        # (A start task may run as one of the pool's own accounts, and in a container of its configuration.)
        out += check_start_task(pool.start_task, "pool.start_task", pool_accounts(pool))
    out += check_metadata(pool.metadata, "pool.metadata")
    if pool.HasField("resize_timeout"):
        out += check_resize_timeout(pool.resize_timeout, "pool.resize_timeout")
    out += check_enum(
        pool.task_scheduling_policy.node_fill_type,
        pool_pb2.NodeFillType,
        "pool.task_scheduling_policy.node_fill_type",
    )
    return out


def check_low_priority_target(pool: pool_pb2.Pool) -> Violations:
    """A pool's low-priority target (at creation and in an update)."""
    if not 0 <= pool.target_low_priority_nodes <= MAX_NODES_PER_POOL:
        return [("pool.target_low_priority_nodes", f"must be between 0 and {MAX_NODES_PER_POOL}")]
    if pool.target_low_priority_nodes and pool.provider == "join":
        return [("pool.target_low_priority_nodes", "a join pool's nodes are the agents that join it: no such target")]
    return []


def check_autoscale(pool: pool_pb2.Pool) -> Violations:
    """A new pool's autoscale settings (a pool's are changed by EnableAutoScale, not by an update)."""
    out: Violations = []
    if pool.enable_auto_scale and pool.provider == "join":
        out.append(("pool.enable_auto_scale", "a join pool's nodes are the agents that join it: it cannot autoscale"))
    elif pool.enable_auto_scale:
        out += autoscale_settings.formula_violations(pool.auto_scale_formula, "pool.auto_scale_formula")
        if pool.HasField("auto_scale_evaluation_interval"):
            bad = check_duration(pool.auto_scale_evaluation_interval, "pool.auto_scale_evaluation_interval")
            out += bad or autoscale_settings.interval_violations(pool, "pool.auto_scale_evaluation_interval")
        for name in ("target_nodes", "target_low_priority_nodes"):
            if getattr(pool, name):
                out.append((f"pool.{name}", "must not be set when autoscale is enabled: the formula sets it"))
    else:
        if pool.auto_scale_formula:
            out.append(("pool.auto_scale_formula", "must not be set unless enable_auto_scale is"))
        if pool.HasField("auto_scale_evaluation_interval"):
            out.append(("pool.auto_scale_evaluation_interval", "must not be set unless enable_auto_scale is"))
    return out


def check_resize_timeout(d: duration_pb2.Duration, field: str) -> Violations:
    """A resize timeout: a valid Duration of at least `MIN_RESIZE_TIMEOUT_SECONDS`."""
    bad = check_duration(d, field)
    if bad:
        return bad
    if d.seconds < MIN_RESIZE_TIMEOUT_SECONDS:
        return [(field, f"must be at least {MIN_RESIZE_TIMEOUT_SECONDS} seconds")]
    return []


def check_job(job: job_pb2.Job, accounts: PoolAccounts | None = None, *, on_schedule: bool = False) -> Violations:
    """A job; `accounts`: those of its pool, when it exists (a user name its tasks give must be one);
    `on_schedule`: a job schedule's job specification (see `check_pool_info`)."""
    out: Violations = []
    p = id_problem(job.id)
    if p:
        out.append(("job.id", p))
    out += check_pool_info(job, "job", on_schedule=on_schedule)
    if len(job.display_name) > MAX_DISPLAY_NAME:
        out.append(("job.display_name", f"must be at most {MAX_DISPLAY_NAME} characters"))
    if not -1000 <= job.priority <= 1000:
        out.append(("job.priority", "must be between -1000 and 1000"))
    out += check_enum(job.on_all_tasks_complete, job_pb2.OnAllTasksComplete, "job.on_all_tasks_complete")
    out += check_job_constraints(job.constraints, "job.constraints")
    out += check_env(job.common_environment_settings, "job.common_environment_settings")
    out += check_enum(job.on_task_failure, job_pb2.OnTaskFailure, "job.on_task_failure")
    out += check_enum(job.on_dependency_failure, job_pb2.OnDependencyFailure, "job.on_dependency_failure")
    out += check_max_parallel_tasks(job, "job.max_parallel_tasks")
    out += check_metadata(job.metadata, "job.metadata")
    if job.HasField("job_manager_task"):
        out += check_job_manager_task(job.job_manager_task, "job.job_manager_task", accounts)
        jm_id = (job.job_manager_task.id or "jobmanager").lower()
        for name, default in (("job_preparation_task", "jobpreparation"), ("job_release_task", "jobrelease")):
            if job.HasField(name) and (getattr(job, name).id or default).lower() == jm_id:
                out.append(("job.job_manager_task.id", f"must differ from the {name.replace('_', ' ')}'s id"))
    if job.HasField("job_preparation_task"):
        out += check_preparation_task(job.job_preparation_task, "job.job_preparation_task", accounts)
    if job.HasField("job_release_task"):
        out += check_release_task(job.job_release_task, "job.job_release_task", accounts)
        if not job.HasField("job_preparation_task"):
            out.append(("job.job_release_task", "needs a job_preparation_task (as in Batch)"))
        elif (job.job_release_task.id or "jobrelease").lower() == (
            job.job_preparation_task.id or "jobpreparation"
        ).lower():
            out.append(("job.job_release_task.id", "must differ from the job preparation task's id"))
    return out


def check_pool_info(job: job_pb2.Job, field: str, *, on_schedule: bool = False) -> Violations:
    """Where a job runs: exactly one of `pool_id` and `auto_pool_specification` (checked as below).
    `on_schedule`: a job schedule's job specification (the JOB_SCHEDULE lifetime is allowed)."""
    if not job.HasField("auto_pool_specification"):
        if not job.pool_id:
            return [(f"{field}.pool_id", "set pool_id or auto_pool_specification")]
        p = id_problem(job.pool_id)
        return [(f"{field}.pool_id", p)] if p else []
    if job.pool_id:
        return [(f"{field}.pool_id", "set exactly one of pool_id and auto_pool_specification")]
    return check_auto_pool_specification(
        job.auto_pool_specification, f"{field}.auto_pool_specification", on_schedule=on_schedule
    )


#: What an auto pool id prefix may hold (it starts a pool id).
AUTO_POOL_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]*$")


def check_auto_pool_specification(
    spec: job_pb2.AutoPoolSpecification, field: str, *, on_schedule: bool = False
) -> Violations:
    """An auto pool spec: a prefix of at most 20 id characters, a lifetime (JOB_SCHEDULE only `on_schedule`),
    and a pool as CreatePool checks one, without an id (field paths under `{field}.pool.`). The autoscale
    formula, the certificate and package references and the account's quotas are not checked here: a
    pool they keep from being made completes the job with a scheduling error (`lifecycle.autopools`)."""
    out: Violations = []
    prefix = spec.auto_pool_id_prefix
    if len(prefix) > autopools.MAX_PREFIX:
        out.append((f"{field}.auto_pool_id_prefix", f"must be at most {autopools.MAX_PREFIX} characters"))
    elif not AUTO_POOL_PREFIX_RE.match(prefix):
        out.append((f"{field}.auto_pool_id_prefix", "may hold only letters, digits, '-' and '_'"))
    v = check_enum(spec.pool_lifetime_option, job_pb2.PoolLifetimeOption, f"{field}.pool_lifetime_option")
    if not v and spec.pool_lifetime_option == job_pb2.POOL_LIFETIME_OPTION_JOB_SCHEDULE and not on_schedule:
        v = [(f"{field}.pool_lifetime_option", "JOB_SCHEDULE is only for a job schedule's job specification")]
    out += v
    if not spec.HasField("pool"):
        return [*out, (f"{field}.pool", "is required: the pool to make")]
    if spec.pool.id:
        out.append((f"{field}.pool.id", "must be empty: the server names the pool (auto_pool_id_prefix)"))
    pool = pool_pb2.Pool()
    pool.CopyFrom(spec.pool)
    pool.id = "auto"  # (checked apart, above)
    formula = "pool.auto_scale_formula"
    for path, problem in check_pool(pool) + check_autoscale(pool):
        if not (pool.enable_auto_scale and path == formula):
            out.append((f"{field}.{path}", problem))
    return out


def check_job_task_durations(job: job_pb2.Job, field: str = "job") -> Violations:
    """The Durations of a job's own tasks, alone: what UpdateJob checks of fields it does not change."""
    out: Violations = []
    for name in ("job_manager_task", "job_preparation_task"):
        if job.HasField(name):
            out += check_task_constraints(getattr(job, name).constraints, f"{field}.{name}.constraints")
    if job.HasField("job_release_task"):
        r = job.job_release_task
        for d in ("max_wall_clock_time", "retention_time"):
            if r.HasField(d):
                out += check_duration(getattr(r, d), f"{field}.job_release_task.{d}")
    return out


def check_max_parallel_tasks(job: job_pb2.Job, field: str) -> Violations:
    """-1 (unlimited) or at least 1, when set."""
    if job.HasField("max_parallel_tasks") and job.max_parallel_tasks != -1 and job.max_parallel_tasks < 1:
        return [(field, "must be -1 (unlimited) or at least 1")]
    return []


def check_job_constraints(c: job_pb2.JobConstraints, field: str) -> Violations:
    """A job's constraints: the retry count and the wall clock (positive when set)."""
    out: Violations = []
    if c.max_task_retry_count < -1:
        out.append((f"{field}.max_task_retry_count", "must be -1 (unlimited) or more"))
    if c.HasField("max_wall_clock_time"):
        out += check_duration(c.max_wall_clock_time, f"{field}.max_wall_clock_time", positive=True)
    return out


def check_task(
    spec: task_pb2.TaskSpec, field: str, *, job_action_allowed: bool = True, accounts: PoolAccounts | None = None
) -> Violations:
    """A task spec; `job_action_allowed`: its job performs exit options' job actions; `accounts`: those of
    its job's pool, when it exists (a user name it gives must be one)."""
    out: Violations = []
    p = id_problem(spec.id)
    if p:
        out.append((f"{field}.id", p))
    if len(spec.display_name) > MAX_DISPLAY_NAME:
        out.append((f"{field}.display_name", f"must be at most {MAX_DISPLAY_NAME} characters"))
    out += check_command_line(spec.command_line, f"{field}.command_line")
    if not 0 <= spec.required_slots <= MAX_SLOTS:
        out.append((f"{field}.required_slots", f"must be between 1 and {MAX_SLOTS}"))
    out += check_task_constraints(spec.constraints, f"{field}.constraints")
    if spec.HasField("depends_on"):
        d = spec.depends_on
        for i, task_id in enumerate(d.task_ids):
            p = id_problem(task_id)
            if p:
                out.append((f"{field}.depends_on.task_ids[{i}]", p))
                break
        out += dependencies_problems(
            list(d.task_ids), [(r.start, r.end) for r in d.task_id_ranges], prefix=f"{field}.depends_on"
        )
    if spec.HasField("exit_conditions"):
        out += exit_conditions_problems(
            spec.exit_conditions, prefix=f"{field}.exit_conditions", job_action_allowed=job_action_allowed
        )
    out += check_env(spec.environment_settings, f"{field}.environment_settings")
    out += check_resource_files(spec.resource_files, f"{field}.resource_files")
    out += check_output_files(spec.output_files, f"{field}.output_files")
    out += check_identity_of(spec, field, accounts)
    out += reference_form_problems(spec.application_package_references, f"{field}.application_package_references")
    out += check_container_settings_of(spec, field, accounts)
    if spec.HasField("multi_instance_settings"):
        mis = spec.multi_instance_settings
        here = f"{field}.multi_instance_settings"
        if not 1 <= mis.number_of_instances <= MAX_NODES_PER_POOL:
            out.append((f"{here}.number_of_instances", f"must be between 1 and {MAX_NODES_PER_POOL}"))
        out += check_command_line(mis.coordination_command_line, f"{here}.coordination_command_line", required=False)
        if spec.required_slots > 1:
            out.append((f"{field}.required_slots", "must be 1 for a multi-instance task (it takes whole nodes)"))
        out += check_resource_files(mis.common_resource_files, f"{here}.common_resource_files")
    return out
