"""The options ``shoal server`` and ``shoal up`` share: where the server keeps its state, the addresses it
listens on, whether it speaks TLS, and how it logs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = [
    click.option("--data-dir", type=click.Path(path_type=Path), required=True, help="State directory."),
    click.option("--listen", default="127.0.0.1:7420", show_default=True, help="Address to serve the API on."),
    click.option(
        "--allow-non-loopback-without-authentication",
        "allow_non_loopback",
        is_flag=True,
        help="Allow listening beyond loopback without authentication.",
    ),
    click.option(
        "--insecure-plaintext",
        "plaintext",
        is_flag=True,
        help="DANGEROUS: serve the API without TLS and without account keys; every caller acts as the default "
        "account and may administer accounts. Loopback only, unless --allow-non-loopback-without-authentication.",
    ),
    click.option(
        "--agent-listen",
        default="",
        help="Address of the agent port (mutual TLS) [default: the API's host, the next port].",
    ),
    click.option(
        "--http-listen",
        default="",
        help="Address of the HTTP port: /metrics and the dashboard [default: the API's host, two ports above; "
        "'off': none].",
    ),
    click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default=None,
        help="Log lines as text, or as JSON objects one per line (the local agents' too) "
        "[default: $SHOAL_LOG_FORMAT, else text].",
    ),
]


def serving_options(command: F) -> F:
    """Add the shared options (``data_dir``, ``listen``, ``allow_non_loopback``, ``plaintext``,
    ``agent_listen``, ``http_listen``, ``log_format``) to a command."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command
