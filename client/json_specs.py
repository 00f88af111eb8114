"""Specs written in the API's own field names, as JSON (``shoal job create --json-file``).

Every field of the message is accepted by its proto name (``command_line``) or
its JSON name (``commandLine``), with the proto JSON mapping's values: enums by
name (``"JOB_ACTION_TERMINATE"``), durations as strings of seconds (``"90s"``),
64-bit integers as numbers or strings. Bad JSON and unknown fields raise
:class:`~shoal.client.InvalidArgument` naming the field, as the server would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from google.protobuf import descriptor_pool, json_format
from google.protobuf.message import Message

from .errors import InvalidArgument

__all__ = ["load_json", "parse_message"]

M = TypeVar("M", bound=Message)

_CHAIN = re.compile(r"Failed to parse (\S+) field: ")
_UNKNOWN = re.compile(r'Message type "([\w.]+)" has no field named "([^"]*)" at "([^"]*)"')
_AT = re.compile(r" at ([\w.\[\]]+?)\.*$")
_NOT_A_LIST = re.compile(r"^repeated field \S+ must be in \[\] which is (.*)$", re.DOTALL)


def load_json(text: str, *, source: str, reason: str) -> Any:
    """``text`` parsed as JSON; :class:`InvalidArgument` naming ``source`` and the line when it is not."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidArgument(
            f"{source} is not JSON", reason=reason, field_violations=[(f"line {e.lineno} column {e.colno}", e.msg)]
        ) from None


def parse_message(data: Any, message: type[M], *, path: str, reason: str) -> M:
    """``data`` (a JSON object) as a ``message``; unknown fields and bad values are field violations.

    ``path`` prefixes the field names in the violations (``tasks[3]``), so that a
    list of specs names the one at fault.
    """
    if not isinstance(data, Mapping):
        raise InvalidArgument(
            f"{path or 'the spec'} must be a JSON object, not {type(data).__name__}",
            reason=reason,
            field_violations=[(path or "spec", "a JSON object")],
        )
    msg = message()
    try:
        json_format.ParseDict(dict(data), msg)
    except json_format.ParseError as e:
        field, detail = _violation(str(e))
        name = ".".join(p for p in (path, field) if p) or message.DESCRIPTOR.name
        raise InvalidArgument(
            f"invalid {message.DESCRIPTOR.full_name}", reason=reason, field_violations=[(name, detail)]
        ) from None
    return msg


def _violation(text: str) -> tuple[str, str]:
    """The field at fault and what is wrong with it, from a ``ParseError``'s message."""
    chain: list[str] = []
    rest = text
    while m := _CHAIN.match(rest):
        chain.append(m.group(1))
        rest = rest[m.end() :]
    detail = rest.split("\n")[0].rstrip(".")
    unknown = _UNKNOWN.search(rest)
    if unknown:
        type_name, field_name, at = unknown.groups()
        # `at` is the path from the root message, whose name comes first: "TaskSpec.depends_on".
        parent = at.split(".", 1)[1] if "." in at else ""
        known = _field_names(type_name)
        detail = f'unknown field "{field_name}"' + (f" (known: {', '.join(known)})" if known else "")
        return ".".join(p for p in (parent, field_name) if p), detail
    # The chain names every field on the way but not list indices; the "at" path has the indices but may
    # stop at the parent of the field at fault.
    at_path = ""
    at_match = _AT.search(detail)
    if at_match:
        detail = detail[: at_match.start()]
        at_path = at_match.group(1).split(".", 1)[1] if "." in at_match.group(1) else ""
    field = ".".join(chain)
    if at_path:
        last = at_path.rsplit(".", 1)[-1].split("[", 1)[0]
        field = at_path if not chain or last == chain[-1] else f"{at_path}.{chain[-1]}"
    not_a_list = _NOT_A_LIST.match(detail)
    if not_a_list:
        detail = f"must be a list, not {not_a_list.group(1)}"
    return field, detail


def _field_names(type_name: str) -> list[str]:
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(type_name)
    except KeyError:
        return []
    return [f.name for f in descriptor.fields]
