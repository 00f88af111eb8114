"""The ``--auto-pool-...`` options of ``shoal job create``: a pool made for the job instead of ``--pool``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from shoal.v1 import pool_pb2

from .autopool_types import AutoPoolSpecification
from .cli_common import _read_json_file
from .errors import InvalidArgument
from .json_specs import parse_message

__all__ = ["AUTO_POOL_OPTIONS", "auto_pool_of", "auto_pool_options"]

F = TypeVar("F", bound=Callable[..., Any])

#: The parameter names of the options (any of them given: the job has an auto pool).
AUTO_POOL_OPTIONS = (
    "auto_pool_nodes",
    "auto_pool_slots",
    "auto_pool_prefix",
    "auto_pool_keep_alive",
    "auto_pool_json",
)
#: Those that describe the pool itself, which --auto-pool-json describes whole instead.
_POOL_OPTIONS = ("auto_pool_nodes", "auto_pool_slots")


def auto_pool_options(command: F) -> F:
    """Add the ``--auto-pool-...`` options to a command (their values reach it as keyword arguments)."""
    options = [
        click.option(
            "--auto-pool-nodes",
            type=click.IntRange(min=0),
            default=None,
            help="A pool of this many nodes is made for the job (instead of --pool), and deleted when it ends.",
        ),
        click.option(
            "--auto-pool-slots", type=click.IntRange(min=1), default=None, help="Task slots per node of the auto pool."
        ),
        click.option(
            "--auto-pool-prefix",
            default=None,
            metavar="PREFIX",
            help="Starts the auto pool's id (at most 20 characters); the job's id and a number follow.",
        ),
        click.option(
            "--auto-pool-keep-alive", is_flag=True, default=None, help="Keep the auto pool when the job ends."
        ),
        click.option(
            "--auto-pool-json",
            type=click.File("r"),
            default=None,
            help="The auto pool whole, as JSON in the API's field names (a shoal.v1.Pool without id; '-' for "
            "stdin), for what the flags cannot say: start_task, auto_scale_formula, user_accounts...",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def auto_pool_of(ctx: click.Context, flags: Mapping[str, Any]) -> AutoPoolSpecification | None:
    """The auto pool the options describe; None when none of them is given."""
    given = {name: value for name, value in flags.items() if name in AUTO_POOL_OPTIONS and value is not None}
    if not given:
        return None
    json_file = given.get("auto_pool_json")
    pool = None
    if json_file is not None:
        if any(name in given for name in _POOL_OPTIONS):
            raise click.UsageError(
                "--auto-pool-json describes the whole pool: no --auto-pool-nodes or --auto-pool-slots"
            )
        data = _read_json_file(json_file, reason="INVALID_JOB_FILE")
        name = getattr(json_file, "name", "<file>")
        try:
            pool = parse_message(data, pool_pb2.Pool, path="", reason="INVALID_POOL_SPEC")
        except InvalidArgument as e:
            raise InvalidArgument(
                f"{name}: {e.message}", reason=e.reason, field_violations=e.field_violations
            ) from None
    return AutoPoolSpecification(
        auto_pool_id_prefix=given.get("auto_pool_prefix", ""),
        keep_alive=bool(given.get("auto_pool_keep_alive")),
        target_nodes=given.get("auto_pool_nodes", 0),
        task_slots_per_node=given.get("auto_pool_slots", 1),
        pool=pool,
    )
