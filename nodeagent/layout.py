"""The node's directory tree (see DESIGN.md, "A task on a node")."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from shoal.nodeagent.certificates import NodeCertificates
from shoal.paths import UnsafePathError, check_relative_path

#: The variable every process of a task (and of the start task) carries: its node root. Orphans are
#: told by it (`state.RunningFile.kill_orphans`, `watchdog.kill_by_environment`).
NODE_ROOT_ENV = "SHOAL_NODE_ROOT_DIR"


def _component(value: str, what: str) -> str:
    """Check that `value` is one safe path component (an id used as a directory name)."""
    norm = check_relative_path(value)
    if "/" in norm or norm != value:
        raise UnsafePathError(f"{what} {value!r} is not a valid directory name")
    return norm


@dataclass
class NodeAccess:
    """How the node's tasks (and the agent's own storage calls) reach the control plane as its account.

    Filled in from the server's Welcome: the account of the node's pool, and a credential that acts for
    that account only while this node is in its pool (see `shoal.server.accounts.registry`).
    """

    account: str = ""
    credential: str = field(default="", repr=False)
    #: The cluster CA certificate (PEM file): tasks verify the server's TLS certificate with it.
    ca_file: str = ""
    #: False on a low-priority (preemptible) node (SHOAL_NODE_IS_DEDICATED).
    is_dedicated: bool = True

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The gRPC metadata that authenticates a call (none before the first Welcome)."""
        if not self.credential:
            return ()
        return (("shoal-account", self.account), ("authorization", f"Bearer {self.credential}"))


@dataclass(frozen=True)
class NodeLayout:
    """Paths under one node root directory (and the server's address, which every task is told)."""

    root: Path
    #: The control plane's address as this agent reaches it: `SHOAL_ADDRESS` for tasks, so that
    #: `shoal.Client.connect()` and the `shoal` CLI reach the server from inside any task.
    server_address: str = ""
    #: The node's account and credential (changes at Welcome: not part of the layout's identity).
    access: NodeAccess = field(default_factory=NodeAccess, compare=False, hash=False)
    #: The variables of the pool's application packages deployed on the node (SHOAL_ names), which every
    #: task of the node gets (changes at Welcome and DeployPackages: not part of the layout's identity).
    pool_packages: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def shared(self) -> Path:
        """Shared by all tasks on the node."""
        return self.root / "shared"

    @property
    def startup(self) -> Path:
        """The start task's directory."""
        return self.root / "startup"

    @property
    def volatile(self) -> Path:
        """The agent's own state."""
        return self.root / "volatile"

    @cached_property
    def workitems(self) -> Path:
        """All jobs' task directories (kept: every task's directory starts from it)."""
        return self.root / "workitems"

    @property
    def applications(self) -> Path:
        """Application packages."""
        return self.root / "applications"

    @property
    def certs(self) -> Path:
        """Certificates (the agent's own copies: see `certificates`)."""
        return self.root / "certs"

    @cached_property
    def certificates(self) -> NodeCertificates:
        """The certificates the node holds (installed at each Welcome; not part of the layout's identity)."""
        return NodeCertificates(self.root)

    @property
    def node_id_file(self) -> Path:
        """Where an assigned node id is kept."""
        return self.volatile / "node-id"

    @property
    def running_file(self) -> Path:
        """attempt → process group of running tasks."""
        return self.volatile / "running.json"

    @property
    def lock_file(self) -> Path:
        """Held by the agent of this root and its watchdog (see shoal.nodeagent.watchdog)."""
        return self.volatile / "agent.lock"

    @property
    def retention_file(self) -> Path:
        """Retention deadlines of completed task directories (a journal)."""
        return self.volatile / "retention.jsonl"

    @property
    def job_tasks_file(self) -> Path:
        """How each job's preparation and release task ended on this node (a journal)."""
        return self.volatile / "jobtasks.jsonl"

    @property
    def log_file(self) -> Path:
        """The agent's log."""
        return self.root / "agent.log"

    def job_dir(self, job_id: str) -> Path:
        """`workitems/<job>`; raises UnsafePathError for an id that is not a plain name."""
        return self.workitems / _component(job_id, "job id")

    def task_dir(self, job_id: str, task_id: str) -> Path:
        """`workitems/<job>/job-1/<task>`; raises UnsafePathError for ids that are not plain names."""
        return self.job_dir(job_id) / "job-1" / _component(task_id, "task id")

    def create(self) -> None:
        """Create the fixed directories."""
        for d in (self.root, self.shared, self.startup, self.volatile, self.workitems):
            d.mkdir(parents=True, exist_ok=True)

    def open_to_task_users(self) -> None:
        """Modes for tasks that run as users other than the agent's: the root and `workitems/` reachable by
        all (each task directory is its user's alone), `shared/` writable by all (sticky, as /tmp: a user
        cannot remove another's files), `volatile/` not listable by them (0711: what they must read there,
        such as a CA certificate, they open by name)."""
        for d, mode in ((self.root, 0o755), (self.workitems, 0o755), (self.shared, 0o1777), (self.volatile, 0o711)):
            os.chmod(d, mode)


def root_of_task_dir(task_dir: Path, job_id: str, task_id: str) -> Path | None:
    """The node root that task directory `task_dir` (`<root>/workitems/<job>/job-1/<task>`) is in,
    or None when `task_dir` is not such a path (a multi-instance task's shared directory is the
    primary's task directory, which may be on another local node's root)."""
    if len(task_dir.parts) > 4 and task_dir.parts[-4:] == ("workitems", job_id, "job-1", task_id):
        return task_dir.parents[3]
    return None


def working_dir(task_dir: Path) -> Path:
    """The working directory inside a task (or start task) directory."""
    return task_dir / "wd"
