"""``shoal pool autoscale enable|disable|evaluate`` and ``shoal node preempt``: elasticity from the terminal.

The ``autoscale`` group is added to ``pool`` and ``preempt`` to ``node`` in ``cli.py``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from .autoscale_types import AutoScaleRun
from .cli_common import _OUTPUT, _client, _emit, _emit_one
from .cli_nodes import NODE_COLUMNS
from .cli_params import DURATION

__all__ = ["autoscale", "formula_from_options", "node_preempt"]


def formula_from_options(formula: str | None, formula_file: Path | None) -> str | None:
    """The formula given inline or in a file (not both)."""
    if formula is not None and formula_file is not None:
        raise click.UsageError("give --formula or --formula-file, not both")
    if formula_file is not None:
        return formula_file.read_text()
    return formula


_FORMULA = click.option("--formula", default=None, help="The formula (Batch's autoscale language).")
_FORMULA_FILE = click.option(
    "--formula-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Read the formula from this file.",
)


@click.group("autoscale")
def autoscale() -> None:
    """Pools that size themselves by a formula."""


@autoscale.command("enable")
@click.argument("pool_id")
@_FORMULA
@_FORMULA_FILE
@click.option("--interval", type=DURATION, default=None, help="Evaluate this often (5s to 7d; default 15s).")
@_OUTPUT
@click.pass_context
def autoscale_enable(
    ctx: click.Context,
    pool_id: str,
    formula: str | None,
    formula_file: Path | None,
    interval: timedelta | None,
    output: str,
) -> None:
    """Let pool POOL_ID size itself by a formula (evaluated at once, then every --interval)."""
    text = formula_from_options(formula, formula_file)
    p = _client(ctx).pools.enable_auto_scale(pool_id, formula=text, evaluation_interval=interval)
    if output != "table":
        _emit_one(output, p, f"pools/{pool_id}")
        return
    click.echo(
        f"pool {pool_id}: autoscale enabled; {p.target_nodes} dedicated, {p.target_low_priority_nodes} "
        "low-priority nodes wanted"
    )
    if p.last_auto_scale_run is not None:
        _print_run(p.last_auto_scale_run)


@autoscale.command("disable")
@click.argument("pool_id")
@click.pass_context
def autoscale_disable(ctx: click.Context, pool_id: str) -> None:
    """Size pool POOL_ID by hand again (it keeps its current targets)."""
    p = _client(ctx).pools.disable_auto_scale(pool_id)
    click.echo(
        f"pool {pool_id}: autoscale disabled at {p.target_nodes} dedicated, "
        f"{p.target_low_priority_nodes} low-priority nodes"
    )


@autoscale.command("evaluate")
@click.argument("pool_id")
@_FORMULA
@_FORMULA_FILE
@_OUTPUT
@click.pass_context
def autoscale_evaluate(
    ctx: click.Context, pool_id: str, formula: str | None, formula_file: Path | None, output: str
) -> None:
    """Dry-run a formula (default: the pool's own) on pool POOL_ID's live metrics; nothing changes.

    Exits with status 1 when the evaluation fails."""
    run = _client(ctx).pools.evaluate_auto_scale(pool_id, formula_from_options(formula, formula_file))
    if output != "table":
        _emit_one(output, run, f"pools/{pool_id} autoscale run", name=lambda _run: pool_id)
    else:
        _print_run(run)
    if run.error is not None:
        raise click.exceptions.Exit(1)


def _print_run(run: AutoScaleRun) -> None:
    for name, value in run.values.items():
        click.echo(f"  {name} = {value}")
    if run.error is not None:
        where = f" (line {run.error.line}, column {run.error.column})" if run.error.line else ""
        click.echo(f"error: {run.error.code}{where}: {run.error.message}", err=True)


@click.command("preempt")
@click.argument("pool_id")
@click.argument("node_id")
@_OUTPUT
@click.pass_context
def node_preempt(ctx: click.Context, pool_id: str, node_id: str, output: str) -> None:
    """Take low-priority node NODE_ID of local pool POOL_ID back now, as a spot eviction would: its tasks
    are requeued; it starts again as new after the server's --spot-recovery-seconds."""
    n = _client(ctx).pools.preempt_node(pool_id, node_id)
    _emit(output, [n], NODE_COLUMNS, "node preempted")
