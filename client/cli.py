"""The ``shoal`` command line: ``shoal <resource> <verb>``.

Talks to the server through :class:`shoal.client.Client`; ``shoal server``,
``shoal up`` (``cli_up.py``) and ``shoal agent`` start processes. This file
holds the root, pools and the processes; storage is in ``cli_storage.py``, nodes in ``cli_nodes.py``
(commands and shells on them in ``cli_nodeexec.py``), jobs in ``cli_jobs.py``, tasks in ``cli_tasks.py``,
what they share in ``cli_common.py`` and ``cli_params.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shoal.pool_providers import DEFAULT_POOL_PROVIDER, POOL_PROVIDERS

from .cli_accounts import account
from .cli_applications import app, app_package_option, app_package_references
from .cli_autoscale import autoscale, formula_from_options, node_preempt
from .cli_certificates import certificate
from .cli_common import (
    _OUTPUT,
    _client,
    _emit,
    _emit_one,
    _fmt,
    _ShoalGroup,
    _State,
)
from .cli_containers import container_configuration_from_options, pool_container_options
from .cli_dashboard import dashboard_cmd
from .cli_jobs import job
from .cli_nodeexec import node_exec, node_shell
from .cli_nodes import NODE_STATE_CHOICE, list_nodes, node, pool_counts
from .cli_nodeusers import node_login, node_users
from .cli_params import DURATION, POSITIVE_DURATION, USER_ACCOUNT, UserAccountParam, seconds_of
from .cli_pools import pool_update, start_task_from_options, start_task_options
from .cli_queue import queue
from .cli_schedules import schedule
from .cli_serving import serving_options
from .cli_stats import job_stats, pool_stats
from .cli_storage import storage
from .cli_tasks import task
from .cli_up import down_cmd, up_cmd
from .cli_watch import list_or_watch, watch_option

if TYPE_CHECKING:
    from .identity_types import UserAccount

__all__ = ["cli", "main"]

# --------------------------------------------------------------------------- root


@click.group(cls=_ShoalGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--address",
    envvar="SHOAL_ADDRESS",
    default=None,
    metavar="HOST:PORT",
    help="Server address (default: $SHOAL_ADDRESS, $SHOAL_HOME/credentials.json, 127.0.0.1:7420).",
)
@click.option(
    "--account",
    default=None,
    metavar="NAME",
    help="Act as this account (default: $SHOAL_ACCOUNT_NAME, $SHOAL_HOME/credentials.json, 'default').",
)
@click.option(
    "--key",
    default=None,
    metavar="KEY",
    help="The account's key (default: $SHOAL_ACCOUNT_KEY, a task's $SHOAL_AUTHENTICATION_TOKEN, "
    "$SHOAL_HOME/credentials.json). For `shoal account`: the administrator's key ($SHOAL_ADMIN_KEY).",
)
@click.option(
    "--ca-cert",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="The CA certificate to check the server's TLS certificate with (default: $SHOAL_CA_CERT_FILE, "
    "the one saved with the server's credentials).",
)
@click.version_option(package_name="shoal", prog_name="shoal")
@click.pass_context
def cli(ctx: click.Context, address: str | None, account: str | None, key: str | None, ca_cert: Path | None) -> None:
    """Shoal: a self-hosted batch and HPC cluster manager.

    A DURATION is 90 (seconds), 90s, 15m, 1h30m, 2d, HH:MM:SS, D.HH:MM:SS or PT1H30M."""
    ctx.obj = _State(address, account, key, ca_cert)


# Each resource's commands live in a file of their own.
cli.add_command(account)
cli.add_command(certificate)
cli.add_command(app)
cli.add_command(job)
job.add_command(job_stats)
cli.add_command(node)
node.add_command(node_users)
node.add_command(node_login)
node.add_command(node_exec)
node.add_command(node_shell)
node.add_command(node_preempt)
cli.add_command(task)
cli.add_command(schedule)
cli.add_command(storage)
cli.add_command(up_cmd)
cli.add_command(down_cmd)
cli.add_command(queue)
cli.add_command(queue, "squeue")
cli.add_command(dashboard_cmd)


# --------------------------------------------------------------------------- pools and nodes

_POOL_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("id", lambda p: p.id),
    ("state", lambda p: p.state),
    ("allocation", lambda p: p.allocation_state),
    ("nodes", lambda p: f"{p.current_nodes}/{p.target_nodes}"),
    (
        "low-priority",
        lambda p: (
            f"{p.current_low_priority_nodes}/{p.target_low_priority_nodes}"
            if p.current_low_priority_nodes or p.target_low_priority_nodes
            else None
        ),
    ),
    ("autoscale", lambda p: f"every {p.autoscale.evaluation_interval.total_seconds():g}s" if p.autoscale else None),
    ("slots/node", lambda p: p.task_slots_per_node),
    ("fill", lambda p: p.node_fill_type),
    ("provider", lambda p: p.provider),
    ("start task", lambda p: p.start_task.command_line if p.start_task else None),
    ("created", lambda p: p.creation_time),
    ("resize errors", lambda p: ", ".join(e.code for e in p.resize_errors) or None),
]


@cli.group()
def pool() -> None:
    """Pools of compute nodes."""


@pool.command("create")
@click.argument("pool_id")
@click.option(
    "--nodes",
    "target_nodes",
    type=int,
    default=None,
    help="Target (dedicated) node count [default: 1; 0 with autoscale].",
)
@click.option(
    "--low-priority-nodes",
    "target_low_priority_nodes",
    type=int,
    default=0,
    help="Target low-priority (preemptible) node count.",
)
@click.option("--autoscale-formula", default=None, help="Size the pool by this formula (Batch's autoscale language).")
@click.option(
    "--autoscale-formula-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Read the autoscale formula from this file.",
)
@click.option(
    "--autoscale-interval", type=DURATION, default=None, help="Evaluate the formula this often (default 15s)."
)
@click.option("--slots", "task_slots_per_node", type=int, default=1, show_default=True, help="Task slots per node.")
@start_task_options
@click.option("--user-account", type=USER_ACCOUNT, multiple=True, help=UserAccountParam.HELP)
@click.option(
    "--certificate",
    "certificates",
    multiple=True,
    metavar="THUMBPRINT[:VIS[,VIS...]]",
    help="A certificate of the account (`shoal certificate add`) every node installs, for VIS: start_task, "
    "task, remote_user (none: all). Repeatable; `pool update` changes them.",
)
@app_package_option
@pool_container_options
@click.option("--inter-node", is_flag=True, help="Enable inter-node communication (multi-instance tasks).")
@click.option(
    "--fill-type",
    type=click.Choice(["spread", "pack"]),
    default=None,
    help="How tasks go to nodes: spread (default: the node with the most free slots) or pack (fill a node "
    "before the next).",
)
@click.option("--display-name", default="", help="A name for people (any text).")
@click.option(
    "--provider",
    type=click.Choice(POOL_PROVIDERS),
    default=None,
    help=f"Who makes the nodes: {DEFAULT_POOL_PROVIDER} (default: agents the server starts on its machine) "
    "or join (agents started elsewhere with `shoal agent --token`, see `shoal pool join-token`).",
)
@click.option(
    "--wait", "wait_timeout", type=DURATION, default=None, help="Wait up to this long for the nodes to be idle."
)
@_OUTPUT
@click.pass_context
def pool_create(
    ctx: click.Context,
    pool_id: str,
    target_nodes: int | None,
    target_low_priority_nodes: int,
    autoscale_formula: str | None,
    autoscale_formula_file: Path | None,
    autoscale_interval: timedelta | None,
    task_slots_per_node: int,
    start_task: str | None,
    start_task_env: tuple[str, ...],
    start_task_retries: int,
    no_wait_for_success: bool,
    start_task_run_as: str | None,
    start_task_elevation: str | None,
    start_task_image: str | None,
    user_account: tuple[UserAccount, ...],
    certificates: tuple[str, ...],
    app_packages: tuple[str, ...],
    container_images: tuple[str, ...],
    container_registry: str | None,
    pool_registry_user: str | None,
    registry_password_stdin: bool,
    allow_host_run_options: bool,
    inter_node: bool,
    fill_type: str | None,
    display_name: str,
    provider: str | None,
    wait_timeout: timedelta | None,
    output: str,
) -> None:
    """Create pool POOL_ID.

    With --container-image (or a --container-registry) it is a container pool: its nodes pull the images
    before they take tasks, and its tasks may run in containers (`shoal task add --image`)."""
    from ._certificates import CertificateReference

    st = start_task_from_options(
        start_task,
        start_task_env,
        start_task_retries,
        no_wait_for_success,
        start_task_run_as,
        start_task_elevation,
        start_task_image,
    )
    containers = container_configuration_from_options(
        container_images,
        container_registry,
        pool_registry_user,
        registry_password_stdin,
        allow_host_run_options,
        sys.stdin,
    )
    formula = formula_from_options(autoscale_formula, autoscale_formula_file)
    if target_nodes is None:
        target_nodes = 0 if formula is not None else 1
    client = _client(ctx)
    p = client.pools.create(
        id=pool_id,
        target_nodes=target_nodes,
        target_low_priority_nodes=target_low_priority_nodes,
        auto_scale_formula=formula,
        auto_scale_evaluation_interval=autoscale_interval,
        task_slots_per_node=task_slots_per_node,
        start_task=st,
        enable_inter_node_communication=inter_node,
        display_name=display_name,
        provider=provider or "",
        user_accounts=list(user_account),
        certificate_references=[CertificateReference.parse(c) for c in certificates],
        application_package_references=app_package_references(app_packages),
        node_fill_type=fill_type,
        container_configuration=containers,
    )
    if wait_timeout is not None:
        client.pools.wait_nodes_idle(pool_id, timeout=seconds_of(wait_timeout))
        p = client.pools.get(pool_id)
    _emit(output, [p], _POOL_COLUMNS, "pool created")


@pool.command("get")
@click.argument("pool_id")
@_OUTPUT
@click.pass_context
def pool_get(ctx: click.Context, pool_id: str, output: str) -> None:
    """Show pool POOL_ID."""
    _emit_one(output, _client(ctx).pools.get(pool_id), f"pools/{pool_id}")


pool.add_command(pool_get, "show")


@pool.command("list")
@_OUTPUT
@watch_option
@click.pass_context
def pool_list(ctx: click.Context, output: str, watch: bool) -> None:
    """List pools."""
    list_or_watch(output, watch, lambda: _client(ctx).pools.list(), _POOL_COLUMNS, "pools")


@pool.command("resize")
@click.argument("pool_id")
@click.option("--nodes", "target_nodes", type=int, required=True, help="New target (dedicated) node count.")
@click.option(
    "--low-priority-nodes",
    "target_low_priority_nodes",
    type=int,
    default=None,
    help="New target low-priority node count [default: unchanged].",
)
@click.option(
    "--deallocation",
    type=click.Choice(["requeue", "terminate", "taskcompletion", "retaineddata"]),
    default="requeue",
    show_default=True,
    help="What happens to running tasks on nodes that leave.",
)
@click.option("--wait", "wait_timeout", type=DURATION, default=None, help="Wait up to this long for the resize to end.")
@_OUTPUT
@click.pass_context
def pool_resize(
    ctx: click.Context,
    pool_id: str,
    target_nodes: int,
    target_low_priority_nodes: int | None,
    deallocation: str,
    wait_timeout: timedelta | None,
    output: str,
) -> None:
    """Resize pool POOL_ID (only while its allocation is steady; --wait before resizing it again)."""
    client = _client(ctx)
    p = client.pools.resize(
        pool_id,
        target_nodes=target_nodes,
        target_low_priority_nodes=target_low_priority_nodes,
        node_deallocation_option=deallocation,
    )
    if wait_timeout is not None:
        p = client.pools.wait_steady(pool_id, timeout=seconds_of(wait_timeout))
    _emit(output, [p], _POOL_COLUMNS, "pool resized")


@pool.command("delete")
@click.argument("pool_id")
@click.pass_context
def pool_delete(ctx: click.Context, pool_id: str) -> None:
    """Delete pool POOL_ID (its nodes leave)."""
    p = _client(ctx).pools.delete(pool_id)
    click.echo(f"pool {p.id or pool_id}: {_fmt(p.state) if p.id else 'deleted'}")


@pool.command("stop-resize")
@click.argument("pool_id")
@_OUTPUT
@click.pass_context
def pool_stop_resize(ctx: click.Context, pool_id: str, output: str) -> None:
    """Stop pool POOL_ID's resize where it is: nodes made stay, no more are made, nothing is rolled back."""
    p = _client(ctx).pools.stop_resize(pool_id)
    _emit(output, [p], _POOL_COLUMNS, "pool resize stopped")


@pool.command("join-token")
@click.argument("pool_id")
@click.option("--ttl", type=POSITIVE_DURATION, default="1h", show_default=True, help="How long the token admits nodes.")
@click.pass_context
def pool_join_token(ctx: click.Context, pool_id: str, ttl: timedelta) -> None:
    """Make a join token for pool POOL_ID: `shoal agent --server ADDRESS --token TOKEN ...` on another
    machine joins the pool with it. The token (on stdout) is a secret until it expires."""
    t = _client(ctx).pools.join_token(pool_id, ttl=ttl.total_seconds())
    click.echo(t.token)
    expires = t.expire_time.isoformat() if t.expire_time else "?"
    click.echo(f"pool {t.pool_id}: admits nodes until {expires} (CA sha256 {t.ca_fingerprint})", err=True)


@pool.command("nodes")
@click.argument("pool_id")
@click.option("--state", type=NODE_STATE_CHOICE, default=None, help="Only nodes in this state.")
@_OUTPUT
@watch_option
@click.pass_context
def pool_nodes(ctx: click.Context, pool_id: str, state: str | None, output: str, watch: bool) -> None:
    """List the nodes of pool POOL_ID."""
    list_nodes(ctx, pool_id, state, output, watch)


pool.add_command(pool_counts)
pool.add_command(pool_update)
pool.add_command(autoscale)
pool.add_command(pool_stats)


# --------------------------------------------------------------------------- processes


@cli.command("server")
@serving_options
@click.option(
    "--tls-cert",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="The public API's certificate chain (PEM) [default: one of the cluster CA].",
)
@click.option(
    "--tls-key", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None, help="Its key (PEM)."
)
@click.option(
    "--agent-advertise",
    default="",
    help="The agent port's address as agents on other machines reach it (told to joining agents).",
)
@click.option(
    "--dispatch-ahead",
    type=click.IntRange(min=0),
    default=16,  # shoal.server.controlplane.DEFAULT_DISPATCH_AHEAD (not imported: the CLI starts light)
    show_default=True,
    help="The most assignments per slot a busy node may hold for jobs of short tasks, about 0.1 s of "
    "their work (0: none).",
)
@click.option(
    "--spot-preemption-rate",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Local pools: preemptions per low-priority node per hour, at random (to try work against evictions).",
)
@click.option(
    "--spot-recovery-seconds",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Local pools: how long a preempted node waits before it starts again.",
)
@click.option("--spot-seed", type=int, default=None, help="Seeds the random preemptions (to repeat a run).")
@click.option(
    "--schedule-min-interval",
    "schedule_min_interval",
    type=POSITIVE_DURATION,
    default="1m",
    show_default=True,
    help="For tests: the shortest start window and recurrence interval a job schedule may have "
    "(Batch's minute; lower it only to try schedules quickly).",
)
def server_cmd(
    data_dir: Path,
    listen: str,
    allow_non_loopback: bool,
    plaintext: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    agent_listen: str,
    agent_advertise: str,
    http_listen: str,
    dispatch_ahead: int,
    spot_preemption_rate: float,
    spot_recovery_seconds: float,
    spot_seed: int | None,
    schedule_min_interval: timedelta,
    log_format: str | None,
) -> None:
    """Run the control plane in the foreground.

    It writes DATA_DIR/credentials.json (mode 0600; and ~/.shoal/credentials.json): the address, the
    default account's key and the administrator's key, where the CLI and shoal.Client.connect() find them.
    """
    from shoal.server.app import main_server

    raise click.exceptions.Exit(
        main_server(
            data_dir=data_dir,
            listen=listen,
            allow_non_loopback=allow_non_loopback,
            secure=not plaintext,
            tls_cert=tls_cert,
            tls_key=tls_key,
            agent_listen=agent_listen,
            agent_advertise=agent_advertise,
            http_listen=http_listen,
            dispatch_ahead=dispatch_ahead,
            spot_preemption_rate=spot_preemption_rate,
            spot_recovery_seconds=spot_recovery_seconds,
            spot_seed=spot_seed,
            schedule_min_seconds=schedule_min_interval.total_seconds(),
            log_format=log_format or "",
        )
    )


@cli.command(
    "agent",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def agent_cmd(args: tuple[str, ...]) -> None:
    """Run a node agent; ARGS go to the agent unchanged (`shoal agent --help` lists them)."""
    from shoal.nodeagent.__main__ import main as agent_main

    raise click.exceptions.Exit(agent_main(list(args)))


@cli.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--pool", "pool_id", required=True, help="Pool with inter-node communication enabled.")
@click.option("--nodes", type=int, default=2, show_default=True, help="Nodes (instances) to run on.")
@click.option("--ppn", type=int, default=1, show_default=True, help="MPI ranks per node.")
@click.option("--job", "job_id", default="shoal-run", show_default=True, help="Job for the task (created if new).")
@click.option("--id", "task_id", default=None, help="Task id (default: run-<random>).")
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file to stage into the ranks' working directory (repeatable).",
)
@click.option(
    "--flavor",
    type=click.Choice(["mpich", "openmpi"]),
    default="mpich",
    show_default=True,
    help="The MPI the program is built with: how its ranks are launched.",
)
@click.option("--mpiexec", "mpiexec", default="mpiexec", show_default=True, help="The launcher on the nodes (a path).")
@click.option("--wall-clock", "wall_clock", type=POSITIVE_DURATION, default=None, help="Kill the task past this long.")
@click.option("--retries", type=int, default=None, help="Retries of the whole task after a failure.")
@click.argument("program", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def run_cmd(
    ctx: click.Context,
    pool_id: str,
    nodes: int,
    ppn: int,
    job_id: str,
    task_id: str | None,
    files: tuple[Path, ...],
    flavor: str,
    wall_clock: timedelta | None,
    retries: int | None,
    mpiexec: str,
    program: tuple[str, ...],
) -> None:
    """Run PROGRAM with MPI on NODES nodes with PPN ranks each: `shoal run --pool P --nodes 2 --ppn 2 -- python app.py`.

    Builds the multi-instance task and its mpiexec line, streams the output, and
    exits with the program's exit code.
    """
    from .run import run_mpi

    def out(chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()

    task = run_mpi(
        _client(ctx),
        pool_id=pool_id,
        nodes=nodes,
        ppn=ppn,
        program=list(program),
        job_id=job_id,
        task_id=task_id,
        files=list(files),
        flavor="openmpi" if flavor == "openmpi" else "mpich",
        max_wall_clock_time=wall_clock,
        max_task_retry_count=retries,
        on_output=out,
        mpiexec=mpiexec,
    )
    if not task.succeeded:
        click.echo(f"shoal run: task {task.id} failed: {task.failure_code}: {task.failure_message}", err=True)
        raise click.exceptions.Exit(task.exit_code or 1)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``shoal`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="shoal")


if __name__ == "__main__":
    main(sys.argv[1:])
