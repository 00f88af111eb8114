"""The pure parts of application packages: ids and names, package states, references and their checks.

No I/O and no clock here: the registry (`registry.py`) applies what these decide.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shoal.server.domain.errors import FailedPrecondition, InvalidInput, invalid_input, shown
from shoal.v1 import application_pb2 as A
from shoal.v1 import common_pb2

#: An application id or a package version: 1..64 letters, digits, '-', '_' and '.' (not dots alone).
ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: The most application package references one pool (or task) may hold (as Batch).
MAX_REFERENCES = 10
#: The largest archive accepted.
MAX_ARCHIVE_BYTES = 4 * 1024**3
#: Batch's failure code for a package that cannot be deployed (a task's; a node error's too).
PACKAGE_ERROR = "ApplicationPackageError"
#: The reason of a pool whose references do not resolve (Batch's InvalidApplicationPackageReferences).
INVALID_REFERENCES = "INVALID_APPLICATION_PACKAGE_REFERENCES"

PENDING = A.PACKAGE_STATE_PENDING
ACTIVE = A.PACKAGE_STATE_ACTIVE

#: The package state machine. Uploading (again) makes a package PENDING; activating makes it ACTIVE.
#: Deleting is not a state: the package is gone.
TRANSITIONS: dict[int, frozenset[int]] = {
    PENDING: frozenset({PENDING, ACTIVE}),  # uploaded again; activated
    ACTIVE: frozenset({PENDING, ACTIVE}),  # uploaded again (allow_updates); activated again (a no-op)
}


def can_transition(old: int, new: int) -> bool:
    """Whether the table allows `old` → `new`."""
    return new in TRANSITIONS.get(old, frozenset())


def id_problem(value: str) -> str | None:
    """Why `value` is not an application id or version, or None."""
    if not ID_RE.match(value):
        return "must be 1..64 letters, digits, '-', '_' and '.'"
    if not value.strip("."):
        return "must not be dots alone"
    return None


def key(value: str) -> str:
    """Ids and versions are unique ignoring case."""
    return value.lower()


def app_name(app_id: str) -> str:
    """The resource name of an application."""
    return f"applications/{app_id}"


def package_name(app_id: str, version: str) -> str:
    """The resource name of a package."""
    return f"applications/{app_id}/versions/{version}"


def _checked(value: str, field: str) -> str:
    problem = id_problem(value)
    if problem:
        raise invalid_input("INVALID_NAME", [(field, f"{shown(value)} {problem}")])
    return value


def app_from_name(name: str, field: str = "name") -> str:
    """The application id of `applications/{id}` (or of a bare id)."""
    parts = name.split("/")
    if len(parts) == 2 and parts[0] == "applications":
        return _checked(parts[1], field)
    if len(parts) == 1 and name:
        return _checked(name, field)
    raise invalid_input("INVALID_NAME", [(field, "must look like 'applications/{id}' (or be the id)")])


def package_from_name(name: str, field: str = "name") -> tuple[str, str]:
    """The (application id, version) of `applications/{app}/versions/{version}`."""
    parts = name.split("/")
    if len(parts) == 4 and parts[0] == "applications" and parts[2] == "versions":
        return _checked(parts[1], field), _checked(parts[3], field)
    raise invalid_input("INVALID_NAME", [(field, "must look like 'applications/{app}/versions/{version}'")])


def check_application(app: A.Application) -> None:
    """Refuse an application to create whose fields are wrong (its default version cannot be set yet:
    it has no packages)."""
    violations = []
    problem = id_problem(app.id)
    if problem:
        violations.append(("application.id", f"{shown(app.id)} {problem}"))
    if len(app.display_name) > 1024:
        violations.append(("application.display_name", "must be at most 1024 characters"))
    if app.default_version:
        violations.append(("application.default_version", "must be empty: a new application has no packages yet"))
    if violations:
        raise invalid_input("INVALID_APPLICATION", violations)


def check_uploadable(state: int, allow_updates: bool) -> None:
    """Refuse an upload over an ACTIVE package of an application that does not allow updates."""
    if state == ACTIVE and not allow_updates:
        raise FailedPrecondition(
            "PACKAGE_UPDATES_NOT_ALLOWED",
            "the package is ACTIVE and its application does not allow updates (set allow_updates first)",
        )


def check_deletable(state: int, allow_updates: bool) -> None:
    """Refuse deleting an ACTIVE package of an application that does not allow updates."""
    if state == ACTIVE and not allow_updates:
        raise FailedPrecondition(
            "PACKAGE_UPDATES_NOT_ALLOWED",
            "the package is ACTIVE and its application does not allow updates (set allow_updates first)",
        )


@dataclass(frozen=True)
class PackageView:
    """What a reference check needs to know of a package."""

    version: str
    state: int


@dataclass(frozen=True)
class AppView:
    """What a reference check needs to know of an application."""

    id: str
    default_version: str
    #: key(version) → the package.
    packages: dict[str, PackageView]


@dataclass(frozen=True)
class Resolved:
    """A reference resolved to one ACTIVE package (or why it cannot be)."""

    reference: str
    application_id: str = ""
    version: str = ""
    default_version: bool = False
    error: str = ""


def describe(ref: common_pb2.ApplicationPackageReference) -> str:
    """`app` or `app:version`, as the CLI writes a reference."""
    return f"{ref.application_id}:{ref.version}" if ref.version else ref.application_id


def resolve(ref: common_pb2.ApplicationPackageReference, app: AppView | None) -> Resolved:
    """The ACTIVE package `ref` names now (its application's default version when it names none)."""
    text = describe(ref)
    if app is None:
        return Resolved(text, error=f"the account has no application {ref.application_id!r}")
    version = ref.version or app.default_version
    if not version:
        return Resolved(text, error=f"application {app.id!r} has no default version and the reference names none")
    pkg = app.packages.get(key(version))
    if pkg is None:
        return Resolved(text, error=f"application {app.id!r} has no version {version!r}")
    if pkg.state != ACTIVE:
        return Resolved(text, error=f"version {pkg.version!r} of application {app.id!r} is not ACTIVE")
    return Resolved(text, app.id, pkg.version, default_version=not ref.version)


def reference_form_problems(
    refs: Sequence[common_pb2.ApplicationPackageReference], field: str
) -> list[tuple[str, str]]:
    """Field violations of references as written, whatever the account holds: at most `MAX_REFERENCES`,
    well-formed ids and versions, each application and version once (checked when a task is added; whether they
    resolve is known only when it is placed, as in Batch)."""
    if len(refs) > MAX_REFERENCES:
        return [(field, f"must hold at most {MAX_REFERENCES} references")]
    violations: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, ref in enumerate(refs):
        where = f"{field}[{i}]"
        problem = id_problem(ref.application_id)
        if problem:
            violations.append((f"{where}.application_id", problem))
            continue
        if ref.version and id_problem(ref.version):
            violations.append((f"{where}.version", id_problem(ref.version) or ""))
            continue
        # (Two versions of one application may both be deployed: their variables differ by version.)
        ref_key = f"{key(ref.application_id)}#{key(ref.version)}"
        if ref_key in seen:
            violations.append((f"{where}.application_id", "names an application and version referenced already"))
        seen.add(ref_key)
    return violations


def reference_problems(
    refs: Sequence[common_pb2.ApplicationPackageReference],
    lookup: Callable[[str], AppView | None],
    field: str,
) -> list[tuple[str, str]]:
    """Field violations of a pool's references: at most `MAX_REFERENCES`, each naming an application of
    the account once, with an ACTIVE version (or, naming none, a default version)."""
    violations = reference_form_problems(refs, field)
    if violations:
        return violations
    for i, ref in enumerate(refs):
        where = f"{field}[{i}]"
        resolved = resolve(ref, lookup(ref.application_id))
        if resolved.error:
            violations.append((f"{where}.version" if ref.version else f"{where}.application_id", resolved.error))
    return violations


def invalid_references(violations: list[tuple[str, str]]) -> FailedPrecondition | InvalidInput:
    """The refusal of references with problems: too many is INVALID_ARGUMENT; ones that do not resolve
    are FAILED_PRECONDITION `INVALID_APPLICATION_PACKAGE_REFERENCES` (as Batch's 409)."""
    if any("at most" in d or "letters, digits" in d or "dots alone" in d for _f, d in violations):
        return invalid_input(INVALID_REFERENCES, violations)
    return FailedPrecondition(
        INVALID_REFERENCES,
        "; ".join(f"{f}: {d}" for f, d in violations),
        violations,
    )
