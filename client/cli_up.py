"""``shoal up`` (a server and a local pool, in the foreground or with ``--detach`` in the background) and
``shoal down`` (which stops one). The process work is in ``daemon.py``."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .cli_common import _fail
from .cli_params import POSITIVE_DURATION
from .cli_serving import serving_options

if TYPE_CHECKING:
    from .daemon import Started

__all__ = ["down_cmd", "up_cmd"]


@click.command("up")
@serving_options
@click.option("--nodes", type=int, default=2, show_default=True, help="Nodes of the local pool.")
@click.option("--slots", type=int, default=1, show_default=True, help="Task slots per node.")
@click.option("--pool-id", default="local", show_default=True, help="Id of the local pool.")
@click.option(
    "-d",
    "--detach",
    is_flag=True,
    help="Run in the background (logs in DATA_DIR/shoal-up.log, pid in DATA_DIR/shoal-up.pid); return once the "
    "server answers. `shoal down` stops it.",
)
@click.option(
    "--timeout",
    type=POSITIVE_DURATION,
    default="60s",
    show_default=True,
    help="With --detach: how long to wait for the server to answer (then it is stopped, and the log shown).",
)
def up_cmd(
    data_dir: Path,
    listen: str,
    nodes: int,
    slots: int,
    pool_id: str,
    allow_non_loopback: bool,
    plaintext: bool,
    agent_listen: str,
    http_listen: str,
    log_format: str | None,
    detach: bool,
    timeout: timedelta,
) -> None:
    """Run a server and a local pool of NODES nodes, in the foreground (Ctrl-C stops both), or with --detach
    in the background.

    The default account's key and the administrator's are written to ~/.shoal/credentials.json (mode
    0600), where the CLI and shoal.Client.connect() find them. One `shoal up` runs on a data directory at a
    time.
    """
    from . import daemon

    if detach:
        args = ["--data-dir", str(data_dir.resolve()), "--listen", listen, "--nodes", str(nodes)]
        args += ["--slots", str(slots), "--pool-id", pool_id]
        args += ["--allow-non-loopback-without-authentication"] if allow_non_loopback else []
        args += ["--insecure-plaintext"] if plaintext else []
        args += ["--agent-listen", agent_listen] if agent_listen else []
        args += ["--http-listen", http_listen] if http_listen else []
        args += ["--log-format", log_format] if log_format else []
        try:
            started = daemon.start_detached(args, data_dir, pool_id, timeout=timeout.total_seconds())
        except daemon.DaemonError as e:
            _fail(f"error: {e}")
        _tell_started(started, data_dir.resolve(), pool_id, nodes, slots)
        return

    running = daemon.running_pid(data_dir)
    # (A detached start writes this process's pid before it runs.)
    if running is not None and running != os.getpid():
        _fail(f"error: shoal up is already running on {data_dir} (pid {running}): `shoal down` stops it")
    from shoal.server.app import main_up

    daemon.remember(data_dir)
    try:
        code = main_up(
            data_dir=data_dir,
            listen=listen,
            nodes=nodes,
            slots=slots,
            pool_id=pool_id,
            allow_non_loopback=allow_non_loopback,
            secure=not plaintext,
            agent_listen=agent_listen,
            http_listen=http_listen,
            log_format=log_format or "",
        )
    finally:
        daemon.forget(data_dir)
    raise click.exceptions.Exit(code)


def _tell_started(started: Started, data_dir: Path, pool_id: str, nodes: int, slots: int) -> None:
    from .credentials import shoal_home

    click.echo(f"shoal up: running in the background (pid {started.pid})")
    click.echo(f"  server:   {started.address}, local pool {pool_id!r} of {nodes} node(s) x {slots} slot(s)")
    click.echo(f"  use it:   shoal pool list   (credentials in {shoal_home() / 'credentials.json'})")
    click.echo(f"  logs:     {started.log}")
    click.echo(f"  stop it:  shoal down --data-dir {data_dir}")


def _last_data_dir() -> Path | None:
    """The data directory of the server started last by this user ($SHOAL_HOME/server.json)."""
    from .credentials import shoal_home

    try:
        return Path(json.loads((shoal_home() / "server.json").read_text())["data_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@click.command("down")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="The data directory of the `shoal up` to stop [default: that of the server started last].",
)
@click.option(
    "--timeout",
    type=POSITIVE_DURATION,
    default="30s",
    show_default=True,
    help="How long the server may take to stop before it is killed.",
)
def down_cmd(data_dir: Path | None, timeout: timedelta) -> None:
    """Stop the `shoal up` running on a data directory (in the background or not): SIGTERM, wait for it to
    exit, then end whatever of its local agents still runs.

    Exit code 0 when it stopped, and also when nothing was running (it says so): `shoal down` may be run
    whether or not a server runs. Exit code 1 when it could not be stopped."""
    from . import daemon

    where = data_dir if data_dir is not None else _last_data_dir()
    if where is None:
        click.echo("shoal down: nothing to stop (no server was started here; give --data-dir)")
        return
    try:
        stopped = daemon.stop(where, timeout=timeout.total_seconds())
    except OSError as e:
        _fail(f"error: could not stop shoal up on {where}: {e}")
    if stopped is None:
        click.echo(f"shoal down: nothing runs on {where.resolve()}")
        return
    how = "killed (it did not stop in time)" if stopped.killed else "stopped"
    click.echo(
        f"shoal down: {how} shoal up (pid {stopped.pid}) on {where.resolve()}, and {stopped.agents} "
        "process(es) it had started"
    )
