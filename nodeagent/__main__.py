"""`python -m shoal.nodeagent`: start one node agent (also what `shoal agent` calls)."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import sys
from pathlib import Path

from shoal import logs
from shoal.nodeagent.config import (
    DEFAULT_ORPHAN_TIMEOUT,
    METRICS_LISTEN_ENV,
    AgentConfig,
    default_metrics_listen,
    default_user_prefix,
)
from shoal.nodeagent.metrics import split_listen
from shoal.nodeagent.usernames import DEFAULT_PREFIX, BadPrefix, check_prefix


def build_parser() -> argparse.ArgumentParser:
    """The agent's command line."""
    p = argparse.ArgumentParser(prog="shoal agent", description="Run a Shoal node agent.")
    p.add_argument("--server", required=True, help="the control plane's API address, host:port")
    p.add_argument(
        "--agent-server",
        default="",
        help="the control plane's agent port, host:port (default: as the join told, or --server's host "
        "with the agent port)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("SHOAL_JOIN_TOKEN", ""),
        help="a join token (shoal pool join-token POOL) to join the pool with when the node has no "
        "certificate yet (default: $SHOAL_JOIN_TOKEN, which other users cannot see in the process list)",
    )
    p.add_argument(
        "--ca-cert",
        type=Path,
        default=None,
        help="the cluster CA certificate (PEM) to trust when joining, besides the token's fingerprint",
    )
    p.add_argument(
        "--tls-dir",
        type=Path,
        default=None,
        help="where the node's certificate and key are kept (default: <node root>/volatile/tls)",
    )
    p.add_argument("--node-root", required=True, type=Path, help="the node's root directory")
    p.add_argument("--ip", required=True, help="address the agent's NodeService listens on (e.g. 127.0.1.5)")
    p.add_argument("--node-id", default="", help="node id (default: kept one, or assigned by the server)")
    p.add_argument("--pool", default="", help="pool id")
    p.add_argument(
        "--orphan-timeout",
        type=float,
        default=DEFAULT_ORPHAN_TIMEOUT,
        help="seconds without reaching the server before tasks are killed and the agent exits",
    )
    p.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="allow the NodeService to listen on a non-loopback address",
    )
    p.add_argument(
        "--no-watchdog",
        action="store_true",
        help="run no watchdog process (tasks then outlive an agent that is killed, until it restarts)",
    )
    p.add_argument(
        "--no-task-cgroup",
        action="store_true",
        help="do not put the agent and its tasks in a cgroup of their own (the watchdog then ends "
        "tasks by process group and environment)",
    )
    p.add_argument(
        "--no-task-users",
        action="store_true",
        help="run every task as the agent's own user, even as root (by default a root agent runs each task "
        "as the user its identity names)",
    )
    p.add_argument(
        "--user-prefix",
        default=None,
        help=f"prefix of the users the agent makes for tasks (default: $SHOAL_USER_PREFIX or {DEFAULT_PREFIX!r})",
    )
    p.add_argument(
        "--reserved-disk-bytes",
        type=int,
        default=AgentConfig.reserved_disk_bytes,
        help="free disk space under the node root below which the node is unusable (DiskFull; default "
        f"{AgentConfig.reserved_disk_bytes})",
    )
    p.add_argument(
        "--health-interval",
        type=float,
        default=AgentConfig.health_interval_seconds,
        help="seconds between checks of the node's health (its root and disk)",
    )
    p.add_argument(
        "--ssh-port",
        type=int,
        default=22,
        help="the port an SSH server of this machine listens on, for remote login to the node (default 22; 0: none)",
    )
    p.add_argument(
        "--metrics-listen",
        default=None,
        metavar="HOST:PORT",
        help="serve Prometheus metrics over HTTP at http://HOST:PORT/metrics (port 0: any free port; the agent "
        f"tells the server, whose /metrics/targets lists it) [default: ${METRICS_LISTEN_ENV}, else none]",
    )
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    p.add_argument(
        "--log-format",
        default=None,
        choices=logs.FORMATS,
        help=f"log lines as text or as JSON objects, one per line [default: ${logs.FORMAT_ENV}, else text]",
    )
    return p


def parse_config(argv: list[str] | None = None) -> tuple[AgentConfig, str]:
    """Parse the command line into an AgentConfig and a log level; exits with status 2 on bad input."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ip = ipaddress.ip_address(args.ip)
    except ValueError:
        parser.error(f"--ip {args.ip!r} is not an IP address")
    if not ip.is_loopback and not args.allow_non_loopback:
        parser.error(
            f"--ip {args.ip} is not a loopback address; pass --allow-non-loopback to serve other hosts "
            "(files only to the server's certificate, Exec only with an attempt's secret)"
        )
    if args.orphan_timeout <= 0:
        parser.error("--orphan-timeout must be positive")
    try:
        prefix = check_prefix(args.user_prefix if args.user_prefix is not None else default_user_prefix())
    except BadPrefix as e:
        parser.error(str(e))
    metrics_listen = default_metrics_listen() if args.metrics_listen is None else args.metrics_listen.strip()
    if metrics_listen:
        try:
            split_listen(metrics_listen)
        except ValueError as e:
            parser.error(f"--metrics-listen: {e}")
    try:
        log_format = logs.check_format(args.log_format or logs.default_format())
    except logs.BadLogFormat as e:
        parser.error(f"${logs.FORMAT_ENV}: {e}")
    config = AgentConfig(
        server=args.server,
        node_root=args.node_root.absolute(),
        ip=str(ip),
        node_id=args.node_id,
        pool_id=args.pool,
        agent_server=args.agent_server,
        tls_dir=args.tls_dir.absolute() if args.tls_dir else None,
        join_token=args.token,
        ca_cert_file=args.ca_cert.absolute() if args.ca_cert else None,
        orphan_timeout=args.orphan_timeout,
        allow_non_loopback=args.allow_non_loopback,
        watchdog=not args.no_watchdog,
        task_cgroup=not args.no_task_cgroup,
        task_users=not args.no_task_users,
        user_prefix=prefix,
        reserved_disk_bytes=args.reserved_disk_bytes,
        health_interval_seconds=args.health_interval,
        ssh_port=args.ssh_port,
        metrics_listen=metrics_listen,
        log_format=log_format,
    )
    return config, args.log_level


def setup_logging(node_root: Path, level: str, log_format: str = "text") -> None:
    """Log to stderr and to `<node root>/agent.log`, as text or JSON lines (`shoal.logs`)."""
    node_root.mkdir(parents=True, exist_ok=True)
    logs.configure(log_format, level, stream=sys.stderr, files=[node_root / "agent.log"])


async def run_agent(config: AgentConfig) -> int:
    """Run an agent until it exits, stopping it cleanly on SIGTERM or SIGINT."""
    from shoal.nodeagent.agent import Agent

    agent = Agent(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.request_stop, f"signal {sig.name}")
    try:
        return await agent.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse `argv` (default sys.argv[1:]), run the agent, return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    config, level = parse_config(args)
    setup_logging(config.node_root, level, config.log_format)
    code = asyncio.run(run_agent(config))
    from shoal.nodeagent.agent import EXIT_RESTART

    if code == EXIT_RESTART:
        # RebootNode, ReimageNode: a new agent process of the same command line (the root is ready for it).
        from shoal.nodeagent.restart import exec_again

        logging.shutdown()
        exec_again(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
