"""Autoscale: pools that size themselves by a formula of Batch's language, evaluated every few seconds.

The formula language is pure (`server.autoscale`): this room samples every pool's metrics into a bounded
history, evaluates each autoscale pool's formula when it is due, records the run on the pool and applies
its targets as a resize does (`PoolLifecycle.retarget`), committed before any node is started or
dismissed. It also serves EnableAutoScale, DisableAutoScale and EvaluateAutoScale (a dry run).

What survives a server SIGKILL: whether autoscale is on, the formula, the interval and the last run (all
on the pool's row). The metric history restarts empty, and the first evaluation runs at once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from shoal.agent.v1 import agent_pb2
from shoal.server.autoscale.evaluator import EvaluationInputs, Targets, evaluate
from shoal.server.autoscale.history import MetricHistory, PoolSample
from shoal.server.autoscale.pool_metrics import NodeMetrics, TaskTally, current_values, pool_sample
from shoal.server.autoscale.settings import (
    DEALLOCATION_OPTIONS,
    ENABLE_SPACING_SECONDS,
    MAX_TARGET,
    formula_violations,
    interval_seconds,
    interval_violations,
)
from shoal.server.domain.errors import FailedPrecondition, invalid_input
from shoal.server.domain.etags import check_etag
from shoal.server.domain.records import NodeRec, PoolRec
from shoal.v1 import common_pb2, job_pb2, task_pb2
from shoal.v1 import pool_pb2 as P

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel

log = logging.getLogger("shoal.server")

#: How often every pool's metrics are sampled (Batch: every 30 s).
SAMPLE_SECONDS = 5.0
#: Samples kept per pool: two hours.
HISTORY_SAMPLES = 1440
#: Jobs whose ACTIVE tasks may be scheduled (`$ActiveTasks` counts only theirs).
SCHEDULING_JOB_STATES = frozenset({job_pb2.JOB_STATE_ACTIVE, job_pb2.JOB_STATE_ENABLING})


class AutoScaling:
    """Metric histories, formula evaluations and the autoscale operations."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        #: Pool key -> its metric history.
        self.histories: dict[str, MetricHistory] = {}
        #: Node key -> its agent's last heartbeat.
        self._heartbeats: dict[str, agent_pb2.Heartbeat] = {}
        #: Pool key -> (node key -> its counters at the last sample), and its task tally then.
        self._counters: dict[str, dict[str, dict[str, float]]] = {}
        self._tallies: dict[str, TaskTally] = {}
        #: Pool key -> monotonic time of its next sample, and of its next evaluation (autoscale pools).
        self._next_sample: dict[str, float] = {}
        self._due: dict[str, float] = {}
        #: When what is kept of pools and nodes that are gone is next let go of.
        self._next_cleanup = 0.0
        #: Account -> how many more nodes (targets, of both kinds) its quota lets its pools have; None:
        #: no limit. Set by the server that knows the accounts (`server.app`); none: unlimited.
        self.nodes_allowed: Callable[[str], int | None] = lambda account: None
        #: Pool key -> monotonic time of its last EnableAutoScale.
        self._enabled_at: dict[str, float] = {}
        self.rng = random.Random()

    # ---------------------------------------------------------------- metrics

    def heartbeat(self, node: NodeRec, hb: agent_pb2.Heartbeat) -> None:
        """Keep the node's last heartbeat for the next sample."""
        self._heartbeats[node.key] = hb

    def _node_metrics(self, node: NodeRec) -> NodeMetrics:
        hb = self._heartbeats.get(node.key) if node.session is not None else None
        if hb is None:
            return NodeMetrics(node.key, node.state, node.proto.is_dedicated)
        return NodeMetrics(
            node.key,
            node.state,
            node.proto.is_dedicated,
            cpu_percent=hb.cpu_percent,
            memory_bytes=float(hb.memory_used_bytes),
            disk_bytes=float(hb.disk_used_bytes),
            counters={
                "disk_read_bytes": float(hb.disk_read_bytes),
                "disk_write_bytes": float(hb.disk_write_bytes),
                "disk_read_ops": float(hb.disk_read_ops),
                "disk_write_ops": float(hb.disk_write_ops),
                "network_in_bytes": float(hb.network_in_bytes),
                "network_out_bytes": float(hb.network_out_bytes),
            },
        )

    def _tally(self, pool: PoolRec) -> TaskTally:
        active = running = succeeded = failed = 0
        for job in self.k.jobs.values():
            if job.pool_key != pool.key:
                continue
            c = job.counts
            running += c[task_pb2.TASK_STATE_PREPARING] + c[task_pb2.TASK_STATE_RUNNING]
            succeeded += job.succeeded
            failed += job.failed
            if job.proto.state in SCHEDULING_JOB_STATES:
                waiting = job.deps.counts() if job.deps is not None else None
                held = waiting.waiting + waiting.blocked if waiting is not None else 0
                active += max(0, c[task_pb2.TASK_STATE_ACTIVE] - held)
        # A multi-instance task counts its instances (as Batch): the gangs waiting for nodes are those the
        # scheduler's last full pass left waiting (a handful; one placed at once is not pending long).
        for job_key, task_key in pool.waiting:
            gang_job = self.k.jobs.get(job_key)
            if gang_job is None or gang_job.proto.state not in SCHEDULING_JOB_STATES:
                continue
            t = gang_job.tasks.get(task_key)
            if t is not None and t.state == task_pb2.TASK_STATE_ACTIVE:
                active += t.shape().instances - 1
        return TaskTally(active=active, running=running, succeeded=succeeded, failed=failed)

    def _sample(self, pool: PoolRec) -> None:
        """Take the pool's sample of now; its next one is a sampling period later."""
        self._next_sample[pool.key] = self.k.clock.monotonic() + SAMPLE_SECONDS
        now = self.k.clock.now()
        nodes = [self._node_metrics(n) for n in pool.nodes.values()]
        tally = self._tally(pool)
        values = pool_sample(
            nodes,
            tally,
            task_slots_per_node=pool.proto.task_slots_per_node,
            interval_seconds=SAMPLE_SECONDS,
            counters_before=self._counters.get(pool.key),
            tasks_before=self._tallies.get(pool.key),
        )
        self._counters[pool.key] = {n.key: dict(n.counters) for n in nodes if n.counters is not None}
        self._tallies[pool.key] = tally
        history = self.histories.get(pool.key)
        if history is None:
            history = self.histories[pool.key] = MetricHistory(SAMPLE_SECONDS, HISTORY_SAMPLES)
        history.add(PoolSample(now, values))

    def _forget_gone(self) -> None:
        for key in [k for k in self._next_sample.keys() | self.histories.keys() if k not in self.k.pools]:
            self.histories.pop(key, None)
            self._counters.pop(key, None)
            self._tallies.pop(key, None)
            self._due.pop(key, None)
            self._enabled_at.pop(key, None)
            self._next_sample.pop(key, None)
        for key in [k for k in self._heartbeats if k not in self.k.nodes]:
            del self._heartbeats[key]

    # ---------------------------------------------------------------- evaluation

    def _run(self, pool: PoolRec, formula: str) -> tuple[P.AutoScaleRun, Targets | None]:
        """Evaluate `formula` on the pool's live metrics: the run to show, and the targets it sets."""
        now = self.k.clock.now()
        history = self.histories.get(pool.key) or MetricHistory(SAMPLE_SECONDS, HISTORY_SAMPLES)
        inputs = EvaluationInputs(
            now=now,
            history=history,
            current=current_values(
                [self._node_metrics(n) for n in pool.nodes.values()], pool.proto.task_slots_per_node
            ),
            target_dedicated=pool.proto.target_nodes,
            target_low_priority=pool.proto.target_low_priority_nodes,
            deallocation_option="requeue",
            random=self.rng,
        )
        result = evaluate(formula, inputs)
        run = P.AutoScaleRun(results=result.results)
        run.timestamp.CopyFrom(self.k.stamp())
        if result.error is not None:
            e = result.error
            run.error.CopyFrom(
                P.AutoScaleRunError(
                    code=e.code,
                    message=e.message,
                    values=[common_pb2.MetadataItem(name=n, value=v) for n, v in e.values],
                    line=e.line or 0,
                    column=e.column or 0,
                )
            )
        return run, result.targets

    def _evaluate_and_apply(self, pool: PoolRec) -> tuple[list[NodeRec], list[NodeRec]]:
        run, targets = self._run(pool, pool.proto.auto_scale_formula)
        pool.proto.auto_scale_run.CopyFrom(run)
        self.k.mark("pools", pool.key, pool)
        if run.HasField("error"):
            log.warning("pool %s: autoscale evaluation failed: %s", pool.key, run.error.message)
        if targets is None:
            return [], []
        dedicated = max(0, min(MAX_TARGET, targets.dedicated))
        low = max(0, min(MAX_TARGET, targets.low_priority))
        if (dedicated, low) == (pool.proto.target_nodes, pool.proto.target_low_priority_nodes):
            return [], []
        growth = dedicated + low - pool.proto.target_nodes - pool.proto.target_low_priority_nodes
        allowed = self.nodes_allowed(pool.proto.account) if growth > 0 else None
        if allowed is not None and growth > allowed:
            # The account's node quota caps what the formula asks: dedicated nodes first.
            room = pool.proto.target_nodes + pool.proto.target_low_priority_nodes + max(0, allowed)
            wanted = (dedicated, low)
            dedicated = min(dedicated, room)
            low = min(low, room - dedicated)
            error = P.AutoScaleRunError(
                code="AccountNodeQuotaReached",
                message=f"the account's node quota allows {room} nodes in this pool: the formula's "
                f"{wanted[0]} dedicated and {wanted[1]} low-priority nodes are cut to {dedicated} and {low}",
            )
            if not pool.proto.auto_scale_run.HasField("error"):
                pool.proto.auto_scale_run.error.CopyFrom(error)
            if (dedicated, low) == (pool.proto.target_nodes, pool.proto.target_low_priority_nodes):
                return [], []
        log.info(
            "pool %s: autoscale sets %d dedicated and %d low-priority nodes (was %d and %d)",
            pool.key,
            dedicated,
            low,
            pool.proto.target_nodes,
            pool.proto.target_low_priority_nodes,
        )
        pool.proto.target_nodes = dedicated
        pool.proto.target_low_priority_nodes = low
        del pool.proto.resize_errors[:]
        option = DEALLOCATION_OPTIONS.get(targets.deallocation_option.lower(), P.NODE_DEALLOCATION_OPTION_REQUEUE)
        changed = self.k.pool_life.retarget(pool, option)
        self.k.refresh_pool_now(pool)
        return changed

    def next_due(self) -> float:
        """The monotonic time of the next sample or evaluation (now for a pool never sampled, or an autoscale
        pool never evaluated)."""
        due = float("inf")
        for pool in self.k.pools.values():
            if pool.proto.state != P.POOL_STATE_ACTIVE:
                continue
            due = min(due, self._next_sample.get(pool.key, 0.0))
            if pool.proto.enable_auto_scale:
                due = min(due, self._due.get(pool.key, 0.0))
        return due

    async def check(self) -> None:
        """Evaluate the autoscale pools that are due, and sample the pools whose sample is due.

        An evaluation takes the pool's sample of the moment when its scheduled one is at most a second
        away (so that, with an interval that is a multiple of the sampling period, each evaluation sees the
        pool as it is, and the history keeps one sample per period); otherwise it reads the last one.
        """
        mono = self.k.clock.monotonic()
        if mono >= self._next_cleanup:
            self._next_cleanup = mono + SAMPLE_SECONDS
            self._forget_gone()
        changes = []
        for pool in list(self.k.pools.values()):
            if pool.proto.state != P.POOL_STATE_ACTIVE:
                continue
            due = pool.proto.enable_auto_scale and self._due.get(pool.key, 0.0) <= mono
            next_sample = self._next_sample.get(pool.key, 0.0)
            if next_sample <= mono or (due and next_sample - mono <= 1.0) or pool.key not in self.histories:
                self._sample(pool)
            if due:
                self._due[pool.key] = mono + interval_seconds(pool.proto)
                changes.append(self._evaluate_and_apply(pool))
        if not changes:
            return
        await self.k.flush()
        for leaving, added in changes:
            self.k.node_life.after_node_changes(leaving)
            self.k.pool_life.start_nodes(added)
        self.k.kick_scheduler()

    # ---------------------------------------------------------------- operations

    def _pool(self, pool_id: str, etag: str) -> PoolRec:
        pool = self.k.pool(pool_id)
        check_etag(f"pool {pool_id!r}", pool.proto, etag)
        if pool.proto.state != P.POOL_STATE_ACTIVE:
            raise FailedPrecondition("POOL_BEING_DELETED", f"pool {pool_id!r} is being deleted")
        return pool

    async def enable(self, pool_id: str, formula: str, interval: float | None, *, etag: str = "") -> P.Pool:
        """EnableAutoScale: from now on the pool sizes itself by `formula` (or its current one), evaluated
        at once and then every `interval` seconds (or its current interval)."""
        pool = self._pool(pool_id, etag)
        if pool.proto.provider == "join":
            raise FailedPrecondition(
                "AUTO_SCALE_NOT_SUPPORTED",
                f"pool {pool_id!r} is a join pool: its nodes are the agents that join it, not Shoal's to make",
            )
        self.k.refresh_pool_now(pool)
        if pool.proto.allocation_state != P.ALLOCATION_STATE_STEADY:
            raise FailedPrecondition(
                "POOL_RESIZING", f"pool {pool_id!r} is resizing: enable autoscale once its allocation state is steady"
            )
        mono = self.k.clock.monotonic()
        last = self._enabled_at.get(pool.key)
        if last is not None and mono - last < ENABLE_SPACING_SECONDS:
            raise FailedPrecondition(
                "TOO_MANY_ENABLE_AUTO_SCALE_REQUESTS",
                f"autoscale of pool {pool_id!r} was enabled {mono - last:.0f} s ago: wait "
                f"{ENABLE_SPACING_SECONDS - (mono - last):.0f} s more (calls are at least "
                f"{ENABLE_SPACING_SECONDS:g} s apart)",
            )
        if not formula and not pool.proto.enable_auto_scale:
            raise invalid_input(
                "INVALID_AUTO_SCALE_FORMULA", [("auto_scale_formula", "is required to enable autoscale")]
            )
        formula = formula or pool.proto.auto_scale_formula
        probe = P.Pool()
        if interval is not None:
            probe.auto_scale_evaluation_interval.FromNanoseconds(int(interval * 1e9))
        v = interval_violations(probe, "auto_scale_evaluation_interval")
        if v:
            raise invalid_input("INVALID_AUTO_SCALE_INTERVAL", v)
        v = formula_violations(formula, "auto_scale_formula")
        if v:
            raise invalid_input("INVALID_AUTO_SCALE_FORMULA", v)
        pool.proto.enable_auto_scale = True
        pool.proto.auto_scale_formula = formula
        if interval is not None:
            pool.proto.auto_scale_evaluation_interval.CopyFrom(probe.auto_scale_evaluation_interval)
        self._enabled_at[pool.key] = mono
        # (The sampling follows the evaluations from here: see `check`.)
        self._sample(pool)
        # (A new interval restarts the schedule: the next evaluation is this one.)
        self._due[pool.key] = mono + interval_seconds(pool.proto)
        leaving, added = self._evaluate_and_apply(pool)
        await self.k.flush()
        self.k.node_life.after_node_changes(leaving)
        self.k.pool_life.start_nodes(added)
        self.k.kick_scheduler()
        return pool.proto

    async def disable(self, pool_id: str, *, etag: str = "") -> P.Pool:
        """DisableAutoScale: the pool keeps its current targets and is resized by hand from now on."""
        pool = self._pool(pool_id, etag)
        if pool.proto.enable_auto_scale:
            pool.proto.enable_auto_scale = False
            self._due.pop(pool.key, None)
            self.k.mark("pools", pool.key, pool)
            await self.k.flush()
        return pool.proto

    def dry_run(self, pool_id: str, formula: str) -> P.AutoScaleRun:
        """EvaluateAutoScale: `formula` (or the pool's) on the pool's live metrics; nothing is applied."""
        pool = self.k.pool(pool_id)
        if not pool.proto.enable_auto_scale:
            raise FailedPrecondition(
                "AUTO_SCALE_NOT_ENABLED",
                f"pool {pool_id!r} does not have autoscale enabled: enable it first (as Batch, a dry run needs "
                "it; `$TargetDedicatedNodes = $CurrentDedicatedNodes` changes nothing)",
            )
        formula = formula or pool.proto.auto_scale_formula
        v = formula_violations(formula, "auto_scale_formula")
        if v:
            raise invalid_input("INVALID_AUTO_SCALE_FORMULA", v)
        if pool.key not in self.histories:
            self._sample(pool)
        run, _targets = self._run(pool, formula)
        return run
