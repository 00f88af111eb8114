"""Parameter types the ``shoal`` commands share: durations, and the file and account options that take
either a packed form (``CONTAINER:PREFIX:PATH``) or a readable one (``container=C,prefix=P,path=D``).

Each type turns bad input into click's usage error, which names the option (exit code 2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Final

import click

from .durations import DURATION_FORMS, parse_duration
from .errors import InvalidArgument

__all__ = [
    "DURATION",
    "OUTPUT_FILE",
    "POSITIVE_DURATION",
    "RESOURCE_FILE",
    "UNLIMITED",
    "USER_ACCOUNT",
    "WALL_CLOCK_LIMIT",
    "DurationParam",
    "OutputFileParam",
    "ResourceFileParam",
    "UserAccountParam",
    "limit_of",
    "seconds_of",
    "split_keyed",
]

#: What ``DurationParam(unlimited=True)`` gives for ``unlimited`` (callers turn it into "no limit").
UNLIMITED: Final = timedelta.max


class DurationParam(click.ParamType):
    """A duration (see :data:`~shoal.client.durations.DURATION_FORMS`) as a ``timedelta``.

    ``positive``: zero is refused. ``unlimited``: the word ``unlimited`` is accepted too, as
    :data:`UNLIMITED`.
    """

    name = "duration"

    def __init__(self, *, positive: bool = False, unlimited: bool = False) -> None:
        self.positive = positive
        self.unlimited = unlimited

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "DURATION|unlimited" if self.unlimited else "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        text = str(value)
        if self.unlimited and text.strip().lower() == "unlimited":
            return UNLIMITED
        try:
            d = parse_duration(text)
        except ValueError as e:
            self.fail(f"{e} (durations: {DURATION_FORMS}{', or unlimited' if self.unlimited else ''})", param, ctx)
        if self.positive and d <= timedelta(0):
            self.fail(f"{text!r}: must be more than zero", param, ctx)
        return d


DURATION: Final = DurationParam()
POSITIVE_DURATION: Final = DurationParam(positive=True)
#: A limit that ``unlimited`` lifts (``limit_of`` turns the value into a timedelta or None).
WALL_CLOCK_LIMIT: Final = DurationParam(positive=True, unlimited=True)


def seconds_of(value: timedelta | None) -> float | None:
    """A duration option's value as seconds (None stays None), for the client's ``timeout=`` arguments."""
    return None if value is None else value.total_seconds()


def split_keyed(text: str, keys: Sequence[str], flags: Sequence[str] = ()) -> dict[str, str]:
    """``key=value,key=value`` as a dict, checking the keys; ValueError names what is wrong.

    A comma ends a value only where a word and ``=`` (or one of ``flags``, keys that may stand alone, as
    ``"true"``) follow it, so a value may hold other commas (a URL's ``?a=1,2``, a glob's ``{a,b}``); a
    value in double quotes may hold anything but a double quote.
    """
    alone = "|".join(re.escape(f) for f in flags) or "(?!)"
    boundary = re.compile(rf"\s*(?:[A-Za-z][\w-]*\s*=|(?:{alone})\s*(?:,|$))")
    parts: list[str] = []
    start = 0
    quoted = False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted and boundary.match(text, i + 1):
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    out: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep and key in flags:
            value = "true"
        elif not sep or key not in keys:
            raise ValueError(f"{part.strip()!r}: expected one of {', '.join(k + '=' for k in keys)}")
        if key in out:
            raise ValueError(f"{key} is given twice")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        out[key] = value
    return out


def _keyed(text: str, keys: Sequence[str]) -> bool:
    """Whether ``text`` is the readable form: it starts with one of ``keys`` and ``=``."""
    return re.match(rf"\s*(?:{'|'.join(map(re.escape, keys))})\s*=", text, re.IGNORECASE) is not None


def _required(fields: Mapping[str, str], *names: str) -> None:
    missing = [n for n in names if not fields.get(n)]
    if missing:
        raise ValueError(f"{' and '.join(n + '=' for n in missing)} missing")


_RESOURCE_KEYS: Final = ("container", "prefix", "path", "url", "mode")


class ResourceFileParam(click.ParamType):
    """A resource file: ``container=NAME[,prefix=P][,path=DIR][,mode=0750]`` or
    ``url=URL,path=FILE[,mode=0750]``; or packed, ``CONTAINER[:PREFIX[:PATH]]`` or ``URL=PATH``."""

    name = "resource"
    HELP: Final = (
        "container=NAME[,prefix=P][,path=DIR][,mode=M] stages the container's blobs under prefix P into directory "
        "DIR of the working directory; url=URL,path=FILE[,mode=M] downloads URL to FILE. Packed forms: "
        "CONTAINER[:PREFIX[:PATH]] and URL=PATH."
    )

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "RESOURCE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from .common_types import ResourceFileSpec

        if isinstance(value, ResourceFileSpec):
            return value
        text = str(value)
        try:
            if _keyed(text, _RESOURCE_KEYS):
                f = split_keyed(text, _RESOURCE_KEYS)
                if bool(f.get("container")) == bool(f.get("url")):
                    raise ValueError("give container= or url=, one of them")
                if f.get("url"):
                    _required(f, "path")
                    if "prefix" in f:
                        raise ValueError("prefix= goes with container=, not url=")
                    return ResourceFileSpec.from_url(f["url"], file_path=f["path"], file_mode=f.get("mode", ""))
                return ResourceFileSpec(
                    storage_container=f["container"],
                    blob_prefix=f.get("prefix", ""),
                    file_path=f.get("path", ""),
                    file_mode=f.get("mode", ""),
                )
            if text.startswith(("http://", "https://")):
                url, sep, path = text.rpartition("=")
                if not sep or not path:
                    raise ValueError("a URL resource file is URL=PATH (or url=URL,path=PATH)")
                return ResourceFileSpec.from_url(url, file_path=path)
            parts = text.split(":")
            if len(parts) > 3 or not parts[0]:
                raise ValueError("expected CONTAINER[:PREFIX[:PATH]] (or container=NAME,prefix=P,path=DIR)")
            return ResourceFileSpec.from_container(
                parts[0],
                blob_prefix=parts[1] if len(parts) > 1 else "",
                file_path=parts[2] if len(parts) > 2 else "",
            )
        except (ValueError, InvalidArgument) as e:
            self.fail(f"{text!r}: {getattr(e, 'message', e)}", param, ctx)


_OUTPUT_KEYS: Final = ("pattern", "container", "path", "condition")


def _condition_names() -> str:
    from .common_types import UPLOAD_CONDITION_NAMES

    return ", ".join(UPLOAD_CONDITION_NAMES)


class OutputFileParam(click.ParamType):
    """An output file: ``pattern=GLOB,container=NAME[,path=P][,condition=C]`` or packed,
    ``PATTERN:CONTAINER[:PATH[:CONDITION]]``."""

    name = "output-file"

    @staticmethod
    def help() -> str:
        """For the option's help: the forms and the conditions."""
        return (
            "pattern=GLOB,container=NAME[,path=P][,condition=C]: after the task, upload the files matching GLOB "
            "(relative to the working directory; ../stdout.txt for the task's stdout) to the container, under "
            f"blob name or prefix P, when C holds: {_condition_names()} (any case; default success). "
            "Packed form: PATTERN:CONTAINER[:PATH[:CONDITION]]."
        )

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "OUTPUT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from .common_types import OutputFileSpec

        if isinstance(value, OutputFileSpec):
            return value
        text = str(value)
        try:
            if _keyed(text, _OUTPUT_KEYS):
                f = split_keyed(text, _OUTPUT_KEYS)
                _required(f, "pattern", "container")
                fields = (f["pattern"], f["container"], f.get("path", ""), f.get("condition") or "success")
            else:
                parts = text.split(":")
                if len(parts) < 2 or len(parts) > 4 or not parts[0] or not parts[1]:
                    raise ValueError(
                        "expected PATTERN:CONTAINER[:PATH[:CONDITION]] (or pattern=GLOB,container=NAME,...)"
                    )
                parts += [""] * (4 - len(parts))
                fields = (parts[0], parts[1], parts[2], parts[3] or "success")
            pattern, container, path, condition = fields
            return OutputFileSpec(file_pattern=pattern, container=container, path=path, upload_condition=condition)
        except ValueError as e:
            self.fail(f"{text!r}: {e}", param, ctx)
        except InvalidArgument as e:
            self.fail(f"{text!r}: upload condition: one of {_condition_names()}" if "condition" in e.message
                      else f"{text!r}: {e.message}", param, ctx)  # fmt: skip


_ACCOUNT_KEYS: Final = ("name", "elevation", "uid", "gid")


class UserAccountParam(click.ParamType):
    """A pool's user account: ``name=NAME[,admin][,uid=N,gid=N]`` (or ``elevation=admin``), or packed,
    ``NAME[:admin][:UID:GID]``."""

    name = "user-account"
    HELP: Final = (
        "name=NAME[,admin][,uid=N,gid=N]: a user every node makes, for tasks run as user:NAME (admin: it may "
        "sudo; uid and gid together). Packed form: NAME[:admin][:UID:GID]. Repeatable."
    )

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "ACCOUNT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from .identity_types import ElevationLevel, UserAccount

        if isinstance(value, UserAccount):
            return value
        text = str(value)
        try:
            if not _keyed(text, _ACCOUNT_KEYS):
                return UserAccount.parse(text)
            f = split_keyed(text, _ACCOUNT_KEYS, flags=("admin",))
            _required(f, "name")
            if "admin" in f and "elevation" in f:
                raise ValueError("give admin or elevation=, not both")
            elevation = "admin" if "admin" in f else f.get("elevation", ElevationLevel.NON_ADMIN).lower()
            if elevation not in ("admin", "nonadmin"):
                raise ValueError("elevation= is admin or nonadmin")
            if ("uid" in f) != ("gid" in f) or not all(f[k].isdigit() for k in ("uid", "gid") if k in f):
                raise ValueError("uid= and gid= go together, as numbers")
            uid, gid = (int(f["uid"]), int(f["gid"])) if "uid" in f else (None, None)
            return UserAccount(name=f["name"], elevation_level=elevation, uid=uid, gid=gid)
        except ValueError as e:
            self.fail(f"{text!r}: {e}", param, ctx)
        except InvalidArgument as e:
            self.fail(e.message, param, ctx)


RESOURCE_FILE: Final = ResourceFileParam()
OUTPUT_FILE: Final = OutputFileParam()
USER_ACCOUNT: Final = UserAccountParam()


def limit_of(value: timedelta) -> timedelta | None:
    """A ``DurationParam(unlimited=True)`` value as a limit: None for ``unlimited``."""
    return None if value == UNLIMITED else value
