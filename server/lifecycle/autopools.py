"""Auto pools: the pool a job (or a job schedule) has made for it, made with the job and deleted with it.

A job that gives `auto_pool_specification` instead of `pool_id` gets a pool of its own, made in the same
change as the job (`JobLifecycle.make_job` asks `plan` first, then `make`), owned by ``jobs/{id}``
(`Pool.auto_pool_owner`, kept on the pool's row so that a restarted server still knows). With the
JOB_SCHEDULE lifetime on a schedule's job, the pool is the schedule's (``jobschedules/{id}``): made with
its first job, reused by the next ones. The pool goes, as DeletePool deletes it, when its owner ends
(the kernel's `job_end_hooks` and `schedule_end_hooks`), unless the spec keeps it alive.

A pool that cannot be made (the account's quota, a formula that does not parse, certificate or package
references that do not resolve) does not refuse the job: the job is made and completes at once with a
scheduling error saying why (Batch's behaviour; the decisions are in `shoal.server.scheduling.autopools`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from shoal.server.autoscale import settings as autoscale_settings
from shoal.server.domain.errors import FailedPrecondition, Refused, invalid_input
from shoal.server.domain.ids import DEFAULT_ACCOUNT
from shoal.server.domain.ids import key as idkey
from shoal.server.domain.records import JobRec, PoolRec
from shoal.server.scheduling import autopools as decide
from shoal.v1 import job_pb2, pool_pb2

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel

J = job_pb2

#: Checks a new auto pool against what its account may have, as CreatePool checks a pool: raises a
#: `Refused` (its reason becomes the job's scheduling error) and may normalise the pool (certificate
#: references). Set by the server (`shoal.server.app`): quotas, certificate references, and application
#: package references.
Admission = Callable[[str, pool_pb2.Pool], None]


def admit_nothing(account: str, pool: pool_pb2.Pool) -> None:
    """No account limits (a control plane without the server's registries: tests, tools)."""


class AutoPools:
    """Makes the auto pool of each job that asks for one, and deletes it when its owner ends."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        #: See `Admission`.
        self.admit: Admission = admit_nothing
        k.job_end_hooks.append(self.job_ended)
        k.schedule_end_hooks.append(self.schedule_ended)

    # ------------------------------------------------------------------ making

    def plan(self, spec: job_pb2.Job) -> decide.Plan | None:
        """Where the job `spec` runs if it has an auto pool spec (None: it names its pool). Nothing is made:
        `make` does, once the caller has made the job's record."""
        if not spec.HasField("auto_pool_specification"):
            return None
        owner = decide.owner_of(spec)
        if owner.startswith("jobschedules/"):
            existing = self.owned_by(owner, spec.account)
            if existing is not None:
                return decide.Plan(existing.proto.id, existing.proto.task_slots_per_node)
        auto = spec.auto_pool_specification
        serial = self.k.meta["job_seq"] + 1  # (the sequence number `make_job` gives this job)
        pool_id = decide.pool_id(auto.auto_pool_id_prefix, owner.split("/", 1)[1], serial, self._taken)
        pool = decide.new_pool(auto, pool_id, owner, spec.account)
        slots = pool.task_slots_per_node or 1
        try:
            self.check(spec.account, pool)
        except Refused as e:
            return decide.Plan("", slots, failure=decide.scheduling_error(e.reason, e.message))
        return decide.Plan(pool_id, slots, new_pool=pool)

    def check(self, account: str, pool: pool_pb2.Pool) -> None:
        """Refuse (a `Refused` whose reason tells the scheduling error) a pool that cannot be made."""
        if pool.enable_auto_scale:
            # (The formula is the one check of a pool's fields that Batch reports this way; the others
            # refuse the request: `shoal.server.api.validation.check_auto_pool_specification`.)
            v = autoscale_settings.formula_violations(pool.auto_scale_formula, "pool.auto_scale_formula")
            if v:
                raise invalid_input("INVALID_AUTO_SCALE_FORMULA", v)
        self.admit(account, pool)

    def make(self, plan: decide.Plan, job: JobRec) -> None:
        """Apply `plan` for `job`, just made: its pool is made in this change (started once committed), or,
        if it could not be, the job completes with the scheduling error."""
        if plan.failure is not None:
            job.proto.execution_info.scheduling_error.CopyFrom(plan.failure)
            self.k.job_life.set_state(job, J.JOB_STATE_COMPLETED)
        elif plan.new_pool is not None:
            try:
                self.k.pool_life.make_pool(plan.new_pool)
            except Refused as e:  # (An id taken meanwhile cannot happen in one change; kept as Batch's Unknown.)
                job.proto.execution_info.scheduling_error.CopyFrom(decide.scheduling_error(e.reason, e.message))
                self.k.job_life.set_state(job, J.JOB_STATE_COMPLETED)

    def check_keep_alive_change(self, job: JobRec) -> None:
        """Refuse (FAILED_PRECONDITION) an UpdateJob of `keep_alive` on a job without an auto pool of its
        own: only a JOB-lifetime auto pool's may change (as in Batch)."""
        if not job.proto.HasField("auto_pool_specification"):
            raise FailedPrecondition(
                "NO_AUTO_POOL", f"job {job.proto.id!r} has no auto pool: it has no keep_alive to change"
            )
        if decide.lifetime(job.proto.auto_pool_specification) != J.POOL_LIFETIME_OPTION_JOB:
            raise FailedPrecondition(
                "AUTO_POOL_OF_SCHEDULE",
                f"job {job.proto.id!r}'s auto pool lives as long as its job schedule: its keep_alive is the "
                "schedule's to change",
            )

    def owned_by(self, owner: str, account: str) -> PoolRec | None:
        """The live pool `owner` (``jobs/{id}`` or ``jobschedules/{id}``) of `account` had made, if any.
        (Ids are not per account: a pool kept alive by a deleted schedule of another account may carry
        the same owner.)"""
        account = account or DEFAULT_ACCOUNT
        for pool in self.k.pools.values():
            p = pool.proto
            if (
                p.auto_pool_owner == owner
                and p.state == pool_pb2.POOL_STATE_ACTIVE
                and (p.account or DEFAULT_ACCOUNT) == account
            ):
                return pool
        return None

    def _taken(self, pool_id: str) -> bool:
        return idkey(pool_id) in self.k.pools

    # ------------------------------------------------------------------ ending

    def job_ended(self, job: JobRec) -> None:
        """A job completed or was removed: its own auto pool goes, unless kept alive (called twice, it does
        nothing the second time: the pool is deleting or gone)."""
        pool = self.k.pools.get(job.pool_key)
        if pool is None or pool.proto.auto_pool_owner != f"jobs/{job.proto.id}":
            return
        if decide.goes_with_job(job.proto, pool.proto):
            self.k.pool_life.delete_now(pool)
        else:
            self._release(pool)

    def schedule_ended(self, schedule_id: str, spec: job_pb2.Job) -> None:
        """A job schedule completed or was deleted: its auto pool (JOB_SCHEDULE lifetime) goes, unless its
        job specification `spec` (as it is now) keeps it alive."""
        owner = f"jobschedules/{schedule_id}"
        pool = self.owned_by(owner, spec.account)
        keep_alive = spec.HasField("auto_pool_specification") and spec.auto_pool_specification.keep_alive
        if pool is None:
            return
        if decide.goes_with_schedule(schedule_id, pool.proto, keep_alive):
            self.k.pool_life.delete_now(pool)
        else:
            self._release(pool)

    def _release(self, pool: PoolRec) -> None:
        """A pool kept alive past its owner is an ordinary pool from now on: no longer its owner's, so that a
        job or schedule made later under the same id neither takes it over nor deletes it when it ends."""
        pool.proto.auto_pool_owner = ""
        self.k.mark("pools", pool.key, pool)
