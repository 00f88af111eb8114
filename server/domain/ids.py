"""Resource ids and AIP-122 resource names."""

from __future__ import annotations

import re

from shoal.server.domain.errors import invalid_input, shown

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: The id of a job a job schedule made (`<schedule id>:job-<n>`): the one kind of job id with a ':', which
#: CreateJob refuses, so that no job made by hand can take a schedule's name.
SCHEDULED_JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}:job-[1-9][0-9]{0,17}$")
#: The account `shoal up` makes, that resources stored before accounts existed belong to, and that a
#: plaintext server's callers act as.
DEFAULT_ACCOUNT = "default"


def id_problem(value: str) -> str | None:
    """Why `value` is not a valid pool/job/task id, or None."""
    if not value:
        return "must not be empty"
    if not ID_RE.match(value):
        return "must be 1 to 64 letters, digits, '-' or '_'"
    return None


def job_id_problem(value: str) -> str | None:
    """Why `value` is not the id of an existing job (a plain id, or one a schedule made), or None."""
    return None if SCHEDULED_JOB_ID_RE.match(value) else id_problem(value)


def key(value: str) -> str:
    """Ids are unique ignoring case; this is the form they are indexed by."""
    return value.lower()


def parse_name(name: str, *collections: str, field: str = "name") -> tuple[str, ...]:
    """Split `pools/p1/nodes/n1` into ('p1', 'n1') given ('pools', 'nodes'), or refuse it (InvalidInput)."""
    parts = name.split("/")
    if len(parts) != 2 * len(collections) or any(parts[2 * i] != c for i, c in enumerate(collections)):
        pattern = "/".join(f"{c}/{{{c[:-1]}}}" for c in collections)
        raise invalid_input("INVALID_NAME", [(field, f"must look like {pattern!r}, got {shown(name)}")])
    ids = tuple(parts[2 * i + 1] for i in range(len(collections)))
    for i, v in enumerate(ids):
        problem = job_id_problem(v) if collections[i] == "jobs" else id_problem(v)
        if problem:
            raise invalid_input("INVALID_NAME", [(field, f"{collections[i][:-1]} id {problem}")])
    return ids


def check_id(value: str, field: str, reason: str = "INVALID_ID") -> None:
    """Refuse (InvalidInput naming `field`) a `value` that is not a valid id."""
    problem = id_problem(value)
    if problem:
        raise invalid_input(reason, [(field, problem)])


__all__ = ["DEFAULT_ACCOUNT", "check_id", "id_problem", "job_id_problem", "key", "parse_name"]
