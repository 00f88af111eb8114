"""Who may run a command inside a running multi-instance instance (MPI proxies), and where it runs.

The agent's exec port (`execport`, the framed protocol `shoal-mpi-launch` speaks) admits a command
through `exec_admission`. Only the attempt's own processes may: the hello must carry the attempt's
secret (`SHOAL_EXEC_SECRET` in its environment); without it, or with another, the call is refused
(PERMISSION_DENIED, reason EXEC_SECRET_MISMATCH) and nothing runs.

The command runs in the instance's working directory and environment (plus the request's
variables), as the instance's user, in its own process group that the agent kills when the
instance ends, so the instance's wall clock and KillTasks reach it.
"""

from __future__ import annotations

import hmac
import logging

from shoal import agenterrors
from shoal.nodeagent.execport import Admit, Admitted, ExecHello, ExecRefusal
from shoal.nodeagent.runner import Attempt, TaskRunner

log = logging.getLogger(__name__)


def check_attempt(runner: TaskRunner, job_id: str, task_id: str, attempt: int, secret: str) -> Attempt | ExecRefusal:
    """The running attempt an Exec may enter, or why not: it is not running here
    (FAILED_PRECONDITION), or `secret` is not its secret (PERMISSION_DENIED, compared in constant time)."""
    found = runner.find(job_id, task_id, attempt)
    if found is None or found.env is None or found.wd is None or found.killed:
        return ExecRefusal(
            "FAILED_PRECONDITION", "", f"attempt {attempt} of {job_id}/{task_id} is not running on this node"
        )
    if not found.exec_secret or not hmac.compare_digest(secret.encode(), found.exec_secret.encode()):
        log.warning("refused an Exec into %s/%s/%d without its secret", job_id, task_id, attempt)
        return ExecRefusal(
            "PERMISSION_DENIED",
            agenterrors.EXEC_SECRET_MISMATCH,
            "Exec needs the attempt's secret (SHOAL_EXEC_SECRET of its environment)",
        )
    return found


def exec_admission(runner: TaskRunner) -> Admit:
    """The exec port's admission: `check_attempt`, then the attempt's directory, environment and
    process groups (which the attempt's end kills)."""

    def admit(hello: ExecHello) -> Admitted | ExecRefusal:
        verdict = check_attempt(runner, hello.job_id, hello.task_id, hello.attempt, hello.secret)
        if isinstance(verdict, ExecRefusal):
            return verdict
        attempt = verdict
        assert attempt.env is not None and attempt.wd is not None
        name, containers = attempt.instance_container, runner.containers
        wrap = None
        if name is not None and containers is not None:
            wd, owner, extra = attempt.wd, attempt.owner, dict(hello.env)

            def wrap(argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
                # (The container has the instance's variables; the engine gets the agent's own, never these.)
                return containers.exec_command(name, argv, extra=extra, working_dir=wd, user=owner, interactive=True)

        return Admitted(
            wrap=wrap,
            cwd=str(attempt.wd),
            env=dict(attempt.env),
            owner=attempt.owner,
            started=lambda pgid: runner.add_group(attempt, pgid),
            ended=lambda pgid: runner.remove_group(attempt, pgid),
        )

    return admit
