"""Field checks for everything a client submits. Each returns the list of field violations."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePosixPath

from shoal.paths import UnsafePathError, check_relative_path
from shoal.server.domain.ids import id_problem
from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2

Violations = list[tuple[str, str]]
CONTAINER_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_SLOTS = 256
MAX_NODES_PER_POOL = 1000
MAX_COMMAND_LINE = 32_768
MAX_TASKS_PER_REQUEST = 200_000


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
    return out


def check_start_task(st: common_pb2.StartTask, field: str) -> Violations:
    out: Violations = []
    if not st.command_line.strip():
        out.append((f"{field}.command_line", "is required"))
    if st.max_task_retry_count < -1:
        out.append((f"{field}.max_task_retry_count", "must be -1 (unlimited) or more"))
    out += check_resource_files(st.resource_files, f"{field}.resource_files")
    out += check_env(st.environment_settings, f"{field}.environment_settings")
    return out


def check_pool(pool: pool_pb2.Pool) -> Violations:
    out: Violations = []
    p = id_problem(pool.id)
    if p:
        out.append(("pool.id", p))
    if len(pool.display_name) > 1024:
        out.append(("pool.display_name", "must be at most 1024 characters"))
    if not 0 <= pool.target_nodes <= MAX_NODES_PER_POOL:
        out.append(("pool.target_nodes", f"must be between 0 and {MAX_NODES_PER_POOL}"))
    if not 0 <= pool.task_slots_per_node <= MAX_SLOTS:
        out.append(("pool.task_slots_per_node", f"must be between 1 and {MAX_SLOTS}"))
    if pool.provider not in ("", "local", "join"):
        out.append(("pool.provider", "must be 'local' or 'join'"))
    if pool.HasField("start_task"):
        out += check_start_task(pool.start_task, "pool.start_task")
    return out


def check_job(job: job_pb2.Job) -> Violations:
    out: Violations = []
    p = id_problem(job.id)
    if p:
        out.append(("job.id", p))
    p = id_problem(job.pool_id)
    if p:
        out.append(("job.pool_id", p))
    if not -1000 <= job.priority <= 1000:
        out.append(("job.priority", "must be between -1000 and 1000"))
    if job.constraints.max_task_retry_count < -1:
        out.append(("job.constraints.max_task_retry_count", "must be -1 (unlimited) or more"))
    c = job.constraints
    if c.HasField("max_wall_clock_time") and c.max_wall_clock_time.ToTimedelta().total_seconds() <= 0:
        out.append(("job.constraints.max_wall_clock_time", "must be positive"))
    out += check_env(job.common_environment_settings, "job.common_environment_settings")
    return out


def check_task(spec: task_pb2.TaskSpec, field: str) -> Violations:
    out: Violations = []
    p = id_problem(spec.id)
    if p:
        out.append((f"{field}.id", p))
    if not spec.command_line.strip():
        out.append((f"{field}.command_line", "is required"))
    elif len(spec.command_line) > MAX_COMMAND_LINE:
        out.append((f"{field}.command_line", f"must be at most {MAX_COMMAND_LINE} characters"))
    if not 0 <= spec.required_slots <= MAX_SLOTS:
        out.append((f"{field}.required_slots", f"must be between 1 and {MAX_SLOTS}"))
    c = spec.constraints
    if c.HasField("max_task_retry_count") and c.max_task_retry_count < -1:
        out.append((f"{field}.constraints.max_task_retry_count", "must be -1 (unlimited) or more"))
    for name in ("max_wall_clock_time", "retention_time"):
        if c.HasField(name) and getattr(c, name).ToTimedelta().total_seconds() < 0:
            out.append((f"{field}.constraints.{name}", "must not be negative"))
    out += check_env(spec.environment_settings, f"{field}.environment_settings")
    out += check_resource_files(spec.resource_files, f"{field}.resource_files")
    out += check_output_files(spec.output_files, f"{field}.output_files")
    if spec.HasField("multi_instance_settings"):
        mis = spec.multi_instance_settings
        here = f"{field}.multi_instance_settings"
        if not 1 <= mis.number_of_instances <= MAX_NODES_PER_POOL:
            out.append((f"{here}.number_of_instances", f"must be between 1 and {MAX_NODES_PER_POOL}"))
        if len(mis.coordination_command_line) > MAX_COMMAND_LINE:
            out.append((f"{here}.coordination_command_line", f"must be at most {MAX_COMMAND_LINE} characters"))
        if spec.required_slots > 1:
            out.append((f"{field}.required_slots", "must be 1 for a multi-instance task (it takes whole nodes)"))
        out += check_resource_files(mis.common_resource_files, f"{here}.common_resource_files")
    return out
