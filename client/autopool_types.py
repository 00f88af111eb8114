"""Auto pools: the pool a job has made for it (``client.jobs.create(auto_pool=...)``), and what the job
says when it could not be made."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from google.protobuf import duration_pb2

from shoal.v1 import common_pb2, job_pb2, pool_pb2

from .common_types import _metadata_from_proto, _metadata_to_proto
from .errors import InvalidArgument

if TYPE_CHECKING:
    from .types import StartTaskSpec

__all__ = ["AutoPoolSpecification", "JobSchedulingError", "PoolLifetime", "auto_pool_of", "scheduling_error_of"]


class PoolLifetime(enum.StrEnum):
    """How long an auto pool lives."""

    JOB = "job"
    """One pool per job, deleted when the job completes or is deleted."""
    JOB_SCHEDULE = "jobschedule"
    """One pool for all the jobs of a job schedule (only in a schedule's job specification)."""


_LIFETIMES = {
    PoolLifetime.JOB: job_pb2.POOL_LIFETIME_OPTION_JOB,
    PoolLifetime.JOB_SCHEDULE: job_pb2.POOL_LIFETIME_OPTION_JOB_SCHEDULE,
}
_POOL_FIELDS = (
    "target_nodes",
    "target_low_priority_nodes",
    "task_slots_per_node",
    "start_task",
    "auto_scale_formula",
    "auto_scale_evaluation_interval",
    "enable_inter_node_communication",
    "provider",
    "metadata",
)


@dataclass(frozen=True, kw_only=True)
class AutoPoolSpecification:
    """A pool the server makes for a job, instead of naming one (Batch's ``autoPoolSpecification``).

    The pool's id is ``auto_pool_id_prefix``, the job's id and a number (``render-frames-17``); it is made
    with the job, and deleted when the job completes or is deleted, unless ``keep_alive``. When it cannot
    be made (the account's quota, a formula that does not parse, certificates the account lacks), the
    job is still made, completed at once with :attr:`Job.scheduling_error` saying why.
    """

    auto_pool_id_prefix: str = ""
    """At most 20 letters, digits, ``-`` or ``_`` starting the pool's id."""
    lifetime: PoolLifetime | str = PoolLifetime.JOB
    """``job``, or ``jobschedule`` in a job schedule's job specification."""
    keep_alive: bool = False
    """Keep the pool when its job ends (it is then an ordinary pool to delete)."""
    target_nodes: int = 0
    """Dedicated nodes."""
    target_low_priority_nodes: int = 0
    """Low-priority (preemptible) nodes."""
    task_slots_per_node: int = 1
    """Tasks a node runs at once."""
    start_task: StartTaskSpec | None = None
    """What every node runs when it joins."""
    auto_scale_formula: str | None = None
    """Size the pool by this autoscale formula (give no targets then)."""
    auto_scale_evaluation_interval: float | timedelta | None = None
    """Seconds between evaluations of the formula (default 15)."""
    enable_inter_node_communication: bool = False
    """For multi-instance (MPI) tasks."""
    provider: str = ""
    """Where the nodes come from (default ``local``)."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Name/value pairs kept with the pool."""
    pool: pool_pb2.Pool | None = None
    """The whole pool as the API takes it (a ``shoal.v1.Pool`` without id, e.g. parsed from JSON with
    :func:`shoal.client.json_specs.parse_message`), instead of the pool fields above."""

    def to_proto(self) -> job_pb2.AutoPoolSpecification:
        """As a ``shoal.v1.AutoPoolSpecification``."""
        spec = job_pb2.AutoPoolSpecification(
            auto_pool_id_prefix=self.auto_pool_id_prefix,
            pool_lifetime_option=_LIFETIMES[_lifetime(self.lifetime)],  # type: ignore[arg-type]
            keep_alive=self.keep_alive,
        )
        spec.pool.CopyFrom(self._pool())
        return spec

    def _pool(self) -> pool_pb2.Pool:
        if self.pool is not None:
            defaults = AutoPoolSpecification()
            given = [f for f in _POOL_FIELDS if getattr(self, f) != getattr(defaults, f)]
            if given:
                raise InvalidArgument(
                    "give the pool whole (pool=) or by its fields, not both",
                    reason="INVALID_JOB",
                    field_violations=[(f"auto_pool.{f}", "not with pool=") for f in given],
                )
            return self.pool
        pool = pool_pb2.Pool(
            target_nodes=self.target_nodes,
            target_low_priority_nodes=self.target_low_priority_nodes,
            task_slots_per_node=self.task_slots_per_node,
            enable_inter_node_communication=self.enable_inter_node_communication,
            provider=self.provider,
            metadata=_metadata_to_proto(self.metadata),
        )
        if self.start_task is not None:
            pool.start_task.CopyFrom(self.start_task.to_proto())
        if self.auto_scale_formula is not None:
            pool.enable_auto_scale = True
            pool.auto_scale_formula = self.auto_scale_formula
        if self.auto_scale_evaluation_interval is not None:
            interval = self.auto_scale_evaluation_interval
            d = duration_pb2.Duration()
            d.FromTimedelta(interval if isinstance(interval, timedelta) else timedelta(seconds=interval))
            pool.auto_scale_evaluation_interval.CopyFrom(d)
        return pool

    @classmethod
    def from_proto(cls, msg: job_pb2.AutoPoolSpecification) -> AutoPoolSpecification:
        """Build from a ``shoal.v1.AutoPoolSpecification``: its pool by the fields above (the job's
        :attr:`Job.proto` holds the whole of it)."""
        from .types import StartTaskSpec

        pool = msg.pool
        shared = msg.pool_lifetime_option == job_pb2.POOL_LIFETIME_OPTION_JOB_SCHEDULE
        return cls(
            auto_pool_id_prefix=msg.auto_pool_id_prefix,
            lifetime=PoolLifetime.JOB_SCHEDULE if shared else PoolLifetime.JOB,
            keep_alive=msg.keep_alive,
            target_nodes=pool.target_nodes,
            target_low_priority_nodes=pool.target_low_priority_nodes,
            task_slots_per_node=pool.task_slots_per_node or 1,
            start_task=StartTaskSpec.from_proto(pool.start_task) if pool.HasField("start_task") else None,
            auto_scale_formula=pool.auto_scale_formula if pool.enable_auto_scale else None,
            auto_scale_evaluation_interval=(
                pool.auto_scale_evaluation_interval.ToTimedelta()
                if pool.HasField("auto_scale_evaluation_interval")
                else None
            ),
            enable_inter_node_communication=pool.enable_inter_node_communication,
            provider=pool.provider,
            metadata=_metadata_from_proto(pool.metadata),
        )


def _lifetime(value: PoolLifetime | str) -> PoolLifetime:
    """``job`` / ``jobschedule`` (any case, ``-`` and ``_`` ignored) as a :class:`PoolLifetime`."""
    key = value.lower().replace("_", "").replace("-", "")
    for lifetime in PoolLifetime:
        if lifetime.value == key:
            return lifetime
    choices = [t.value for t in PoolLifetime]
    raise InvalidArgument(
        f"lifetime must be one of {choices} (got {value!r})",
        reason="INVALID_JOB",
        field_violations=[("auto_pool.lifetime", f"one of {choices}")],
    )


_CATEGORIES = {common_pb2.ERROR_CATEGORY_USER_ERROR: "usererror", common_pb2.ERROR_CATEGORY_SERVER_ERROR: "servererror"}


@dataclass(frozen=True, kw_only=True)
class JobSchedulingError:
    """Why the server could not do what a job needs before its tasks run (its auto pool could not be
    made); the job is then completed."""

    code: str
    """Batch's code: ``AutoPoolCreationFailedWithQuotaReached``, ``InvalidAutoScaleFormulaInAutoPool``,
    ``InvalidCertificatesInAutoPool``, ``InvalidApplicationPackageReferencesInAutoPool`` or ``Unknown``."""
    category: str
    """``usererror`` or ``servererror``."""
    message: str
    """What went wrong, for people."""
    details: Mapping[str, str] = field(default_factory=dict)
    """Machine-readable facts (``reason``: the refusal's reason, e.g. ``POOL_QUOTA_REACHED``)."""

    @classmethod
    def from_proto(cls, msg: job_pb2.JobSchedulingError) -> JobSchedulingError:
        """Build from a ``shoal.v1.JobSchedulingError``."""
        return cls(
            code=msg.code,
            category=_CATEGORIES.get(msg.category, ""),
            message=msg.message,
            details=_metadata_from_proto(msg.details),
        )


def auto_pool_of(msg: job_pb2.Job) -> AutoPoolSpecification | None:
    """A job's auto pool spec, if it has one."""
    return (
        AutoPoolSpecification.from_proto(msg.auto_pool_specification)
        if msg.HasField("auto_pool_specification")
        else None
    )


def scheduling_error_of(msg: job_pb2.Job) -> JobSchedulingError | None:
    """A job's scheduling error, if it has one."""
    info = msg.execution_info
    return JobSchedulingError.from_proto(info.scheduling_error) if info.HasField("scheduling_error") else None
