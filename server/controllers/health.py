"""Reconcile loops that run on the clock: node heartbeats and job wall-clock limits."""

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
            await cp.check_elasticity()
        except Exception:
            log.exception("health pass failed")
