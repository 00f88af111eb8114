"""Registry passwords: secrets kept apart from the pools, jobs and job schedules that gave them.

A pool's container configuration (CreatePool, or the auto pool specification of a job or of a job
schedule's job specification) may give a password for each of its registries. Records are stored and
returned as they are, so the password is taken out of the record before it is kept (`take_passwords`): the
record keeps the registry's server and user, and this table keeps the password, by (account, registry
server, user name), the latest given winning. The row is written in the same commit as the record that
brought it (the room marks it through the kernel), sealed under the server's secret where the server has one.

Nodes get the passwords back where they need them (`shoal.server.containers.agents`): in a Welcome's
container configuration, and in a container task's assignment (its registry's server and user name it).

The pure parts are the functions; `RegistryCredentials` is the room.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple, Protocol

from shoal.containers import registry_of
from shoal.server.domain.ids import DEFAULT_ACCOUNT
from shoal.server.store.base import StoredRow
from shoal.v1 import common_pb2, job_pb2, pool_pb2, schedule_pb2

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel

#: The store table (`server.store.base.TABLES`); a row's `parent` is the account.
TABLE = "credentials"


class Sealer(Protocol):
    """Authenticated encryption under the server's secret (`shoal.certs.secret.ServerSecret`)."""

    def seal(self, plaintext: bytes, associated: bytes = b"") -> bytes: ...

    def unseal(self, blob: bytes, associated: bytes = b"") -> bytes: ...


class Credential(NamedTuple):
    """A registry's password, as a pool's configuration gave it."""

    server: str
    user: str
    password: str


def server_key(server: str) -> str:
    """A registry server as the table keys it (host names are not case-sensitive)."""
    return server.lower()


def take_passwords(cfg: common_pb2.ContainerConfiguration) -> list[Credential]:
    """The passwords `cfg`'s registries give, taken out of it (each registry keeps its server and user)."""
    taken: list[Credential] = []
    for r in cfg.container_registries:
        if r.password:
            taken.append(Credential(server_key(r.registry_server), r.user_name, r.password))
            r.ClearField("password")
    return taken


def registry_server_of(settings: common_pb2.TaskContainerSettings) -> str:
    """The registry a task's image comes from: its registry's server, else the one its image name names."""
    return server_key(settings.registry.registry_server or registry_of(settings.image_name))


def row_key(account: str, server: str, user: str) -> str:
    """The row of one credential (unique per account, server and user; the parts are JSON-quoted, so no
    user name can make two credentials share a row)."""
    return json.dumps([account, server, user], separators=(",", ":"))


def encode(key: str, password: str, sealer: Sealer | None) -> bytes:
    """A row's data: the password sealed (bound to its row key), or, on a server without a secret (a bare
    control plane in tests), as it is."""
    if sealer is None:
        return json.dumps({"plain": password}).encode()
    sealed = sealer.seal(password.encode(), key.encode())
    return json.dumps({"sealed": base64.b64encode(sealed).decode()}).encode()


def decode(key: str, data: bytes, sealer: Sealer | None) -> str:
    """The password of a row (`encode`)."""
    blob = json.loads(data)
    if "sealed" in blob:
        if sealer is None:
            raise ValueError(f"credential row {key} is sealed and this control plane has no secret")
        return sealer.unseal(base64.b64decode(blob["sealed"]), key.encode()).decode()
    return str(blob["plain"])


def _auto_pool(job: job_pb2.Job) -> pool_pb2.Pool | None:
    if job.HasField("auto_pool_specification") and job.auto_pool_specification.HasField("pool"):
        return job.auto_pool_specification.pool
    return None


class RegistryCredentials:
    """The registry passwords of every account: taken out of the records that bring them, kept in the
    `credentials` table, given to nodes."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        #: (account, server, user) → password.
        self.passwords: dict[tuple[str, str, str], str] = {}
        #: Seals the rows (set by the server before loading; None: rows are kept unsealed).
        self.sealer: Sealer | None = None

    def load(self, rows: Iterable[StoredRow]) -> None:
        """Read the table (at start-up)."""
        for row in rows:
            account, server, user = json.loads(row.key)
            self.passwords[(account, server, user)] = decode(row.key, row.data, self.sealer)

    def keep(self, account: str, cfg: common_pb2.ContainerConfiguration) -> None:
        """Take the passwords out of `cfg`, a configuration of `account`'s being made or changed in this
        change; each is written with the caller's flush."""
        account = account or DEFAULT_ACCOUNT
        for c in take_passwords(cfg):
            k = (account, c.server, c.user)
            if self.passwords.get(k) == c.password:
                continue
            self.passwords[k] = c.password
            key = row_key(*k)
            self.k.mark(TABLE, key, (account, encode(key, c.password, self.sealer)))

    def keep_pool(self, pool: pool_pb2.Pool) -> None:
        """`keep` of a pool being made (its account's)."""
        if pool.HasField("container_configuration"):
            self.keep(pool.account, pool.container_configuration)

    def keep_job(self, job: job_pb2.Job, account: str = "") -> None:
        """`keep` of a job's auto pool specification (the job's account, or `account`)."""
        pool = _auto_pool(job)
        if pool is not None and pool.HasField("container_configuration"):
            self.keep(account or job.account, pool.container_configuration)

    def keep_schedule(self, schedule: schedule_pb2.JobSchedule) -> None:
        """`keep` of a job schedule's job specification's auto pool specification."""
        if schedule.HasField("job_specification"):
            self.keep_job(schedule.job_specification, schedule.account)

    def password(self, account: str, server: str, user: str) -> str:
        """The password kept for `user` at registry `server` of `account` ("" when none is)."""
        return self.passwords.get((account or DEFAULT_ACCOUNT, server_key(server), user), "")

    def configuration(self, account: str, cfg: common_pb2.ContainerConfiguration) -> common_pb2.ContainerConfiguration:
        """A copy of a pool's configuration with its registries' passwords."""
        out = common_pb2.ContainerConfiguration()
        out.CopyFrom(cfg)
        for r in out.container_registries:
            if r.user_name:
                r.password = self.password(account, r.registry_server, r.user_name)
        return out

    def fill(self, account: str, settings: common_pb2.TaskContainerSettings) -> None:
        """Give a task's container settings (a copy being sent) its registry's password, when its registry
        names a user for whom one is kept."""
        if settings.HasField("registry") and settings.registry.user_name:
            r = settings.registry
            r.password = self.password(account, registry_server_of(settings), r.user_name)
