"""`python -m shoal.server`: the control plane with every tuning knob (tests use this)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shoal import logs
from shoal.server.app import NON_LOOPBACK_FLAG, PLAINTEXT_FLAG, main_server
from shoal.server.controlplane import DEFAULT_DISPATCH_AHEAD


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="shoal-server")
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--listen", default="127.0.0.1:7420")
    ap.add_argument(NON_LOOPBACK_FLAG, dest="allow_non_loopback", action="store_true")
    ap.add_argument(PLAINTEXT_FLAG, dest="plaintext", action="store_true")
    ap.add_argument("--tls-cert", type=Path, default=None, help="the public API's certificate chain (PEM)")
    ap.add_argument("--tls-key", type=Path, default=None, help="its private key (PEM)")
    ap.add_argument("--agent-listen", default="", help="the agent port (default: the listen host, the next port)")
    ap.add_argument("--agent-advertise", default="", help="the agent port's address as joining agents reach it")
    ap.add_argument(
        "--http-listen", default="", help="the HTTP port: /metrics and the dashboard (default: two ports above; 'off')"
    )
    ap.add_argument("--heartbeat-interval", type=float, default=1.0)
    ap.add_argument("--heartbeat-timeout", type=float, default=10.0)
    ap.add_argument("--agent-orphan-timeout", type=float, default=60.0)
    ap.add_argument(
        "--dispatch-ahead",
        type=int,
        default=DEFAULT_DISPATCH_AHEAD,
        help="the most assignments per slot a busy node may hold for jobs of short tasks, about 0.1 s "
        "of their work (0: none)",
    )
    ap.add_argument("--spot-preemption-rate", type=float, default=0.0, help="preemptions per low-priority node-hour")
    ap.add_argument("--spot-recovery-seconds", type=float, default=30.0)
    ap.add_argument("--spot-seed", type=int, default=None)
    ap.add_argument(
        "--schedule-min-interval",
        type=float,
        default=60.0,
        help="for tests: the shortest start window and recurrence interval of a job schedule, in seconds",
    )
    ap.add_argument(
        "--log-format",
        default="",
        choices=("", *logs.FORMATS),
        help="log lines as text or JSON objects, one per line (default: $SHOAL_LOG_FORMAT, else text)",
    )
    a = ap.parse_args(argv)
    return main_server(
        data_dir=a.data_dir,
        listen=a.listen,
        allow_non_loopback=a.allow_non_loopback,
        secure=not a.plaintext,
        tls_cert=a.tls_cert,
        tls_key=a.tls_key,
        agent_listen=a.agent_listen,
        agent_advertise=a.agent_advertise,
        http_listen=a.http_listen,
        heartbeat_interval=a.heartbeat_interval,
        heartbeat_timeout=a.heartbeat_timeout,
        agent_orphan_timeout=a.agent_orphan_timeout,
        dispatch_ahead=a.dispatch_ahead,
        spot_preemption_rate=a.spot_preemption_rate,
        spot_recovery_seconds=a.spot_recovery_seconds,
        spot_seed=a.spot_seed,
        schedule_min_seconds=a.schedule_min_interval,
        log_format=a.log_format,
    )


if __name__ == "__main__":
    sys.exit(main())
