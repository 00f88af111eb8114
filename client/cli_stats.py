"""``shoal job stats JOB`` and ``shoal pool stats POOL`` (accounting, as Slurm's sacct), and the human
form of an attempt's statistics that ``shoal task get`` shows."""

from __future__ import annotations

from typing import Any

import click

from .cli_common import _OUTPUT, _client, _data_output, _emit_data, _emit_one, _plain
from .stats_types import TaskStatistics, UsageStatistics

__all__ = ["human_statistics", "human_usage", "job_stats", "pool_stats"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # (not reached)


def human_seconds(s: float) -> str:
    """12.3456 -> '12.35 s'; past a minute, also h:mm:ss."""
    if s < 60:
        return f"{s:.2f} s"
    whole = int(s)
    return f"{s:.0f} s ({whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d})"


def human_statistics(s: TaskStatistics) -> dict[str, str]:
    """One attempt's (or a roll-up's totals) in human units."""
    return {
        "wall clock": human_seconds(s.wall_clock_seconds),
        "cpu user": human_seconds(s.user_cpu_seconds),
        "cpu kernel": human_seconds(s.kernel_cpu_seconds),
        "peak memory": human_bytes(s.peak_memory_bytes),
        "read": f"{human_bytes(s.read_bytes)} in {s.read_ops} calls",
        "written": f"{human_bytes(s.write_bytes)} in {s.write_ops} calls",
    }


def human_usage(u: UsageStatistics) -> dict[str, str]:
    """A roll-up in human units."""
    out = {
        "attempts": str(u.attempts),
        "succeeded": str(u.tasks_succeeded),
        "failed": str(u.tasks_failed),
        "retries": str(u.task_retries),
        "requeues": str(u.task_requeues),
        "waited": human_seconds(u.wait_seconds),
    }
    out.update(human_statistics(u.totals))
    return out


def _show(output: str, result: Any, rows: dict[str, str], title: str) -> None:
    if _data_output(output):
        _emit_data(output, _plain(result))
    else:
        _emit_one(output, rows, title)


@click.command("stats")
@click.argument("job_id")
@_OUTPUT
@click.pass_context
def job_stats(ctx: click.Context, job_id: str, output: str) -> None:
    """What the tasks of job JOB_ID used: every attempt, deleted tasks included."""
    st = _client(ctx).jobs.statistics(job_id)
    _show(output, st, human_usage(st.usage), f"statistics of job {job_id}")


@click.command("stats")
@click.argument("pool_id")
@_OUTPUT
@click.pass_context
def pool_stats(ctx: click.Context, pool_id: str, output: str) -> None:
    """What ran on pool POOL_ID (the attempts that ended on its nodes) and its nodes' time."""
    st = _client(ctx).pools.statistics(pool_id)
    rows = human_usage(st.usage)
    rows["dedicated nodes"] = f"{human_seconds(st.dedicated_node_seconds)}, {st.dedicated_core_seconds:.0f} core s"
    rows["low-priority nodes"] = (
        f"{human_seconds(st.low_priority_node_seconds)}, {st.low_priority_core_seconds:.0f} core s"
    )
    _show(output, st, rows, f"statistics of pool {pool_id}")
