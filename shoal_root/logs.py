"""How Shoal's processes log: plain text or JSON lines, request fields from context, and no secret ever.

`configure` sets up the root logger of a process (`shoal server`, `shoal up`, the node agent) in one of
`FORMATS`: ``text`` (the historical ``time LEVEL logger: message`` lines) or ``json`` (one JSON object
per line: ``timestamp``, ``level``, ``logger``, ``message``, and any fields). ``$SHOAL_LOG_FORMAT`` and
``$SHOAL_LOG_LEVEL`` give the defaults.

Fields: what is bound with `bind` (a context variable: set where a request is handled, it follows the
request's task and nothing else) and what is set with `set_static` (the whole process: a node agent's
node and pool) is added to every record as attributes, which the JSON lines carry as fields. Ids are
welcome there (they are fields, not metric labels).

Secrets: every line, whatever its format, goes through `redact` just before it is written: Shoal's own
secrets by their shape (account and administrator keys, task credentials, join tokens, bearer headers,
private keys, password hashes, ``password=...`` pairs) and any value registered with `register_secret`
(passwords users hand in: registry passwords, node users', certificates'). Shoal's code does not log
secrets in the first place; this is the net under it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TextIO

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

#: The formats `configure` knows.
FORMATS = ("text", "json")
#: The environment variables that give the defaults of `--log-format` and the level.
FORMAT_ENV = "SHOAL_LOG_FORMAT"
LEVEL_ENV = "SHOAL_LOG_LEVEL"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[REDACTED]"

#: Fields of a request (or of a message an agent gets) that hold a secret (`register_message_secrets`).
SECRET_FIELDS = frozenset({"password", "credential", "exec_secret", "password_hash"})
#: Values shorter than this are not registered: redacting every "abc" would garble the logs (Shoal's own
#: secrets are long; a user's password this short is no secret).
MIN_SECRET_CHARS = 4
#: The most values `register_secret` keeps (the oldest go first).
MAX_SECRETS = 4096
#: Elements of a repeated field looked at by `register_message_secrets` (an AddTasks of 100,000 tasks is
#: not walked whole; a task's registry may carry no password anyway).
MAX_REPEATED = 64

# Shoal's secrets by their shape (see `shoal.server.accounts.model.new_key`, `registry.task_credential`,
# `shoal.certs.jointokens`): replaced wherever they appear. Each pattern runs only on a line that holds
# one of its words (lower case), or a run of 40 base64 characters: most lines hold neither.
_LONG_RUN = re.compile(r"[A-Za-z0-9+/]{40}")
_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str], str], ...] = (
    (
        ("private key",),
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
        "[REDACTED PRIVATE KEY]",
    ),
    # Authorization headers, whatever the credential.
    (("bearer", "basic"), re.compile(r"(?i)\b(bearer|basic)(\s+|%20)[^\s\"',;]+"), r"\1 " + REDACTED),
    # ``password=...``, ``"password": "..."``, ``secret: ...`` pairs.
    (
        ("passw", "secret", "credential", "token"),
        re.compile(r"(?i)(\b[\w-]*(?:password|passwd|secret|credential|token)[\"']?\s*[=:]\s*[\"']?)[^\s\"',;}]+"),
        r"\1" + REDACTED,
    ),
    # Task credentials (st1.ACCOUNT.POOL.NODE.MAC) and join tokens (shoal1.PAYLOAD.TAG).
    (("st1.",), re.compile(r"\bst1\.[\w-]+\.[\w-]+\.[\w-]+\.[\w-]{16,}"), REDACTED),
    (("shoal1.",), re.compile(r"\bshoal1\.[\w-]{8,}\.[\w-]{8,}"), REDACTED),
    # crypt(3) hashes of node users' passwords.
    (("$",), re.compile(r"\$(?:1|5|6|2[aby]?|y)\$[^\s\"',;]+"), REDACTED),
)
# Base64 keys (account and administrator keys: 64 random bytes, 88 characters with their padding), and
# long unpadded runs that mix digits and both cases (a key cut short): only on a line with a long run.
_KEY_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?<![\w+/=])[A-Za-z0-9+/]{40,}={1,2}"),
    re.compile(r"(?<![\w+/])(?=[A-Za-z0-9+/]*\d)(?=[A-Za-z0-9+/]*[a-z])(?=[A-Za-z0-9+/]*[A-Z])[A-Za-z0-9+/]{64,}"),
)


class _Secrets:
    """Values to redact, registered at run time; one alternation of all of them, made when first needed."""

    def __init__(self) -> None:
        self._values: dict[str, None] = {}
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        if len(value) < MIN_SECRET_CHARS or value in self._values:
            return
        with self._lock:
            self._values[value] = None
            while len(self._values) > MAX_SECRETS:
                del self._values[next(iter(self._values))]
            self._pattern = None

    def pattern(self) -> re.Pattern[str] | None:
        pattern = self._pattern
        if pattern is None and self._values:
            with self._lock:
                forms: set[str] = set()
                for v in self._values:
                    forms.add(v)
                    # As a JSON line writes it (quotes, backslashes, non-ASCII escaped).
                    forms.add(_json_inner(v))
                alternatives = sorted(forms, key=len, reverse=True)
                pattern = self._pattern = re.compile("|".join(re.escape(f) for f in alternatives))
        return pattern

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None


def _json_inner(value: str) -> str:
    import json

    return json.dumps(value)[1:-1]


_SECRETS = _Secrets()


def register_secret(value: str) -> None:
    """Never let `value` reach a log line from now on (in this process)."""
    if value:
        _SECRETS.add(value)


def forget_secrets() -> None:
    """Drop every registered value (for tests)."""
    _SECRETS.clear()


def redact(text: str) -> str:
    """`text` with every secret Shoal knows of, by value or by shape, replaced by ``[REDACTED]``."""
    known = _SECRETS.pattern()
    if known is not None:
        text = known.sub(REDACTED, text)
    lower = text.lower()
    for words, pattern, replacement in _PATTERNS:
        if any(w in lower for w in words):
            text = pattern.sub(replacement, text)
    if _LONG_RUN.search(text):
        for pattern in _KEY_PATTERNS:
            text = pattern.sub(REDACTED, text)
    return text


# -- secrets in messages ----------------------------------------------------------------------------

_LEADS_TO_SECRET: dict[str, bool] = {}


def _leads_to_secret(descriptor: Descriptor, seen: frozenset[str] = frozenset()) -> bool:
    """Whether a message of this type can hold a `SECRET_FIELDS` field (at any depth); cached by type."""
    name = descriptor.full_name
    found = _LEADS_TO_SECRET.get(name)
    if found is not None:
        return found
    if name in seen:
        return False
    result = False
    for f in descriptor.fields:
        if f.type == FieldDescriptor.TYPE_STRING and f.name in SECRET_FIELDS:
            result = True
        elif f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type is not None:
            result = _leads_to_secret(f.message_type, seen | {name}) or result
    if not seen:
        _LEADS_TO_SECRET[name] = result
    return result


def holds_secrets(descriptor: Descriptor) -> bool:
    """Whether messages of this type may carry a secret field (`SECRET_FIELDS`, at any depth)."""
    return _leads_to_secret(descriptor)


def register_message_secrets(message: Message) -> None:
    """Register the values of every `SECRET_FIELDS` field set in `message` (see `register_secret`)."""
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            if field.name in SECRET_FIELDS:
                for v in value if is_repeated(field) else (value,):
                    register_secret(v)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            kind = field.message_type
            if kind is None or kind.GetOptions().map_entry or not _leads_to_secret(kind):
                continue
            items = list(value)[:MAX_REPEATED] if is_repeated(field) else [value]
            for item in items:
                register_message_secrets(item)


def is_repeated(field: FieldDescriptor) -> bool:
    """Whether `field` is a repeated one."""
    return bool(field.is_repeated)


# -- fields from context --------------------------------------------------------------------------------

_NO_FIELDS: Mapping[str, object] = MappingProxyType({})
_fields: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar("shoal_log_fields", default=_NO_FIELDS)
_static: dict[str, object] = {}


def bind(**fields: object) -> contextvars.Token[Mapping[str, object]]:
    """Add `fields` to every record logged in this context from now on (empty values are left out);
    `unbind` with the token returned puts the previous fields back."""
    current = _fields.get()
    merged = {**current, **{k: v for k, v in fields.items() if v not in ("", None)}}
    return _fields.set(merged)


def unbind(token: contextvars.Token[Mapping[str, object]]) -> None:
    """Undo a `bind` (quietly, if the context changed since: a generator closed elsewhere)."""
    with contextlib.suppress(ValueError):
        _fields.reset(token)


@contextlib.contextmanager
def bound(**fields: object) -> Iterator[None]:
    """`bind` for the body of a ``with``."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def current_fields() -> dict[str, object]:
    """The fields records logged here get (the process's, then the context's)."""
    return {**_static, **_fields.get()}


def set_static(**fields: object) -> None:
    """Fields every record of this process gets (a node agent's node and pool); empty values remove them."""
    for k, v in fields.items():
        if v in ("", None):
            _static.pop(k, None)
        else:
            _static[k] = v


class ContextFilter(logging.Filter):
    """Puts the context's fields on each record (as attributes; the record's own, `extra`, win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for k, v in current_fields().items():
            if k not in record.__dict__:
                record.__dict__[k] = v
        return True


# -- formats --------------------------------------------------------------------------------------------


class RedactingTextFormatter(logging.Formatter):
    """The text lines, secrets redacted."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


#: Record attributes that are not fields of a JSON line (``taskName`` is 3.12's).
_NOT_FIELDS = [*RESERVED_ATTRS, "taskName"]


class RedactingJsonFormatter(JsonFormatter):
    """One JSON object per record: timestamp (UTC, ISO 8601), level, logger, message, then the fields;
    secrets redacted."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
            reserved_attrs=_NOT_FIELDS,
            timestamp=True,
            json_default=str,
        )

    def format(self, record: logging.LogRecord) -> str:
        # (A traceback's lines, or a message's, stay inside one JSON string: one line per record.)
        return redact(super().format(record))


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of `fmt` (one of `FORMATS`)."""
    check_format(fmt)
    return RedactingJsonFormatter() if fmt == "json" else RedactingTextFormatter()


class BadLogFormat(ValueError):
    """A log format that is not one of `FORMATS`."""


def check_format(fmt: str) -> str:
    """`fmt` if it is one of `FORMATS`, else `BadLogFormat` saying which are."""
    if fmt not in FORMATS:
        raise BadLogFormat(f"unknown log format {fmt!r}: use one of {', '.join(FORMATS)}")
    return fmt


def default_format(environ: Mapping[str, str] | None = None) -> str:
    """``$SHOAL_LOG_FORMAT`` (lower case), else ``text``."""
    env = os.environ if environ is None else environ
    return (env.get(FORMAT_ENV) or "text").strip().lower()


def default_level(environ: Mapping[str, str] | None = None) -> str:
    """``$SHOAL_LOG_LEVEL``, else ``INFO``."""
    env = os.environ if environ is None else environ
    return (env.get(LEVEL_ENV) or "INFO").strip().upper()


_configured = ""


def configured_format() -> str:
    """The format `configure` set up in this process (else `default_format`): what its children log in."""
    return _configured or default_format()


def configure(
    fmt: str | None = None,
    level: str | None = None,
    *,
    stream: TextIO | None = None,
    files: Iterable[Path] = (),
) -> None:
    """Log to `stream` (stderr) and to `files`, in format `fmt` (default: `default_format`) at `level`
    (default: `default_level`), with the context's fields and no secrets. Replaces the root logger's
    handlers (called once per process, at its start)."""
    global _configured
    fmt = check_format(default_format() if fmt is None else fmt)
    _configured = fmt
    root = logging.getLogger()
    root.setLevel((level or default_level()).upper())
    for old in list(root.handlers):
        root.removeHandler(old)
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    handlers.extend(logging.FileHandler(path) for path in files)
    for handler in handlers:
        handler.setFormatter(formatter(fmt))
        # (On the handler, not the logger: records of every logger pass through it.)
        handler.addFilter(ContextFilter())
        root.addHandler(handler)
