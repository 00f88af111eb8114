"""Reconcile loops that run on the clock: node heartbeats, job wall-clock limits, autoscale and preemptions."""

from __future__ import annotations

import logging

from shoal.server.controlplane import ControlPlane

log = logging.getLogger("shoal.health")


async def run_health(cp: ControlPlane, *, heartbeat_timeout: float, period: float = 0.5) -> None:
    """Every `period`: mark silent nodes UNKNOWN (requeueing their tasks) and end overdue jobs."""
    while True:
        await cp.clock.sleep(period)
        try:
            await cp.check_health(heartbeat_timeout)
            await cp.check_job_deadlines()
            await cp.check_resize_timeouts()
        except Exception:
            log.exception("health pass failed")


async def run_elasticity(cp: ControlPlane, *, period: float = 0.5) -> None:
    """Autoscale samples and evaluations, on time (an evaluation is not put off to the next half second), and
    low-priority preemptions and recoveries, at least every `period`."""
    while True:
        wait = min(period, cp.autoscale.next_due() - cp.clock.monotonic())
        await cp.clock.sleep(max(0.005, wait))
        try:
            await cp.check_elasticity()
        except Exception:
            log.exception("elasticity pass failed")
