"""The agent's configuration, fixed for the life of the process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from shoal.nodeagent.usernames import DEFAULT_PREFIX

DEFAULT_ORPHAN_TIMEOUT = 300.0
DEFAULT_HEARTBEAT_INTERVAL = 5.0


#: The environment variable of `--metrics-listen`.
METRICS_LISTEN_ENV = "SHOAL_METRICS_LISTEN"


def default_metrics_listen() -> str:
    """`$SHOAL_METRICS_LISTEN`, else "" (no metrics endpoint)."""
    return os.environ.get(METRICS_LISTEN_ENV, "").strip()


def default_user_prefix() -> str:
    """`$SHOAL_USER_PREFIX`, else `shoal`: the prefix of the users the agent makes for tasks."""
    return os.environ.get("SHOAL_USER_PREFIX") or DEFAULT_PREFIX


@dataclass(frozen=True)
class AgentConfig:
    """Everything the agent is told on its command line."""

    #: `host:port` of the control plane's public API: tasks reach it there (SHOAL_ADDRESS), and an agent
    #: with a join token joins there.
    server: str
    #: The node root directory (SHOAL_NODE_ROOT_DIR).
    node_root: Path
    #: The address the NodeService listens on and that the node reports.
    ip: str
    #: Empty: read `<root>/volatile/node-id`, or let the server assign one.
    node_id: str = ""
    pool_id: str = ""
    #: `host:port` of the server's agent port (AgentService and StorageService, mutual TLS). Empty: the
    #: one the join recorded in the identity directory, or `server`'s host with the port the join gave.
    agent_server: str = ""
    #: Where the node's certificate, key and the cluster CA are kept (None: `<root>/volatile/tls`).
    tls_dir: Path | None = None
    #: A join token (`shoal pool join-token`): with no certificate yet, the agent joins with it.
    join_token: str = ""
    #: The cluster CA certificate, when the operator hands it over (the join then trusts it as well as
    #: the token's fingerprint; without it the agent fetches the CA and pins it by that fingerprint).
    ca_cert_file: Path | None = None
    #: Seconds without reaching the server after which tasks are killed and the agent exits.
    orphan_timeout: float = DEFAULT_ORPHAN_TIMEOUT
    allow_non_loopback: bool = False
    #: First and largest delay between reconnection attempts.
    reconnect_initial_backoff: float = 0.2
    reconnect_max_backoff: float = 2.0
    #: How long TaskEvents are collected before they are sent in one message.
    event_batch_window: float = 0.002
    #: How long reports that hold nothing but RUNNING may wait for more (a short attempt's
    #: COMPLETED then replaces its RUNNING, and the server gets one report instead of two).
    running_report_delay: float = 0.01
    #: How long reports may wait while attempts the server sent ahead still wait here for a slot:
    #: the node has its next work, so they go together when the last of it starts (or after this).
    busy_report_delay: float = 0.05
    #: Grace between SIGTERM and SIGKILL when a process group is killed.
    kill_grace_seconds: float = 2.0
    #: The longest the retention sweeper sleeps (it wakes at the earliest retention deadline).
    sweep_interval_seconds: float = 60.0
    #: Used when a task assignment carries no retention (0).
    default_retention_seconds: float = 7 * 24 * 3600.0
    #: Run a watchdog process that kills the tasks if the agent dies (see shoal.nodeagent.watchdog).
    watchdog: bool = True
    #: Put the agent, and so every process it starts, in a cgroup of its own that the watchdog kills,
    #: where cgroup v2 is writable. Moves the whole process: on for `shoal agent`, off for an agent
    #: embedded in another program.
    task_cgroup: bool = False
    #: How long a starting agent waits for the node root's lock (an earlier agent's watchdog ending
    #: its tasks takes milliseconds; a second agent on the same root gives up after this).
    root_lock_timeout: float = 30.0
    #: How often the agent samples its running tasks' process trees for their resident memory (and an
    #: Exec'd command's CPU and I/O), one pass over /proc for all of them (see `shoal.nodeagent.usage`).
    usage_sample_seconds: float = 1.0
    #: How often the agent checks the node's health (see `shoal.nodeagent.health`).
    health_interval_seconds: float = 5.0
    #: Free disk space under the node root below which the node is UNUSABLE (DiskFull).
    reserved_disk_bytes: int = 64 * 1024 * 1024
    #: As root, run each task as the user its identity names (see `shoal.nodeagent.users`); off: every task
    #: runs as the agent's user.
    task_users: bool = True
    #: The prefix of the users made for tasks (`shoal-<pool>-...`).
    user_prefix: str = field(default_factory=default_user_prefix)
    #: Where an SSH server is looked for at the node's address (GetRemoteLoginSettings); 0: not looked for.
    ssh_port: int = 22
    #: `host:port` where the agent serves its Prometheus metrics over HTTP (port 0: any free one; the agent
    #: tells the server which, for its service discovery); empty: none (see `shoal.nodeagent.metrics`).
    metrics_listen: str = field(default_factory=default_metrics_listen)
    #: How the agent logs (`shoal.logs.FORMATS`).
    log_format: str = "text"
