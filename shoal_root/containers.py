"""What a container task may ask for: image names, registry servers and run options, checked the same way
by the server (at add, as field violations) and by the node agent (before it asks the engine).

Run options are an allow-list, not a deny-list: an option Shoal does not know might reach outside the
task tomorrow. Those below only shape the container itself (its environment, limits, labels, working
directory, entry point, network of its own). Everything else that `podman create` takes is refused unless
the pool's container configuration sets `allow_host_run_options`: `--privileged`, host namespaces
(`--pid host`, `--ipc host`, `--userns host`, ...), capabilities, devices, security options, mounts
(`-v`, `--mount`: the task's directories are mounted already), `--user` (a task runs as its own user),
`--name` (the agent names containers), files read on the node (`--env-file`), variables copied from the
engine's own environment (`-e NAME` without a value, `--env-host`), labels named `shoal.*` (the agent's
own, by which it finds its containers), and any option not listed.

Pure: no engine, no clock.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Final

#: Batch's failure codes for container tasks (`failureInfo.code`), and node errors of container pools.
CONTAINER_INVALID_IMAGE: Final = "ContainerInvalidImage"
CONTAINER_INVALID_REGISTRY: Final = "ContainerInvalidRegistry"
CONTAINER_INVALID_SETTINGS: Final = "ContainerInvalidSettings"
CONTAINER_MISC_ERROR: Final = "ContainerMiscError"

MAX_IMAGE_NAME: Final = 1024
MAX_RUN_OPTIONS: Final = 8192
#: Images a pool may prefetch.
MAX_POOL_IMAGES: Final = 100
MAX_POOL_REGISTRIES: Final = 20

_IMAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9._/:@+-]*$", re.IGNORECASE)
_REGISTRY_SERVER = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$", re.IGNORECASE)

#: Options that take a value (`--opt value`, `--opt=value`; short ones also `-oVALUE`) and only shape
#: the container itself.
_SAFE_WITH_VALUE: Final = frozenset(
    {
        "-e",
        "--env",
        "-w",
        "--workdir",
        "--entrypoint",
        "-m",
        "--memory",
        "--memory-reservation",
        "--memory-swap",
        "--cpus",
        "-c",
        "--cpu-shares",
        "--cpuset-cpus",
        "--shm-size",
        "-h",
        "--hostname",
        "-l",
        "--label",
        "--tmpfs",
        "--ulimit",
        "--pids-limit",
        "--stop-signal",
        "--stop-timeout",
        "--tz",
        "--add-host",
        "--dns",
        "--dns-search",
        "--umask",
    }
)
#: Flags (no value) that only shape the container itself.
_SAFE_FLAGS: Final = frozenset({"--read-only", "--init", "--no-hosts"})
#: Network modes a task may pick: a network of its own, or none. (Its default is the node's, as a task
#: outside a container has: see `shoal.nodeagent.containers`.)
_SAFE_NETWORKS: Final = frozenset({"none", "bridge", "private", "host"})
_SHORT_WITH_VALUE: Final = frozenset(o for o in _SAFE_WITH_VALUE if len(o) == 2)


@dataclass(frozen=True)
class RunOptions:
    """Run options as the engine gets them, or what is wrong with them."""

    args: tuple[str, ...] = ()
    problem: str = ""
    #: The options set a working directory of their own (`-w`, `--workdir`).
    sets_workdir: bool = False


def image_name_problem(name: str) -> str:
    """What is wrong with an image name ("" when nothing is)."""
    if not name:
        return "must name an image"
    if len(name) > MAX_IMAGE_NAME:
        return f"must be at most {MAX_IMAGE_NAME} characters"
    if not _IMAGE_NAME.fullmatch(name):
        return "must be an image reference ([registry/]name[:tag][@digest]): letters, digits and . _ / : @ + -"
    return ""


def registry_server_problem(server: str) -> str:
    """What is wrong with a registry server (`host[:port]`; "" when nothing is, or it is empty)."""
    if server and not _REGISTRY_SERVER.fullmatch(server):
        return "must be a host name or address with an optional port (host[:port])"
    port = server.rpartition(":")[2] if ":" in server else ""
    if port and not 1 <= int(port) <= 65535:
        return "must be a host name or address with an optional port (host[:port]) from 1 to 65535"
    return ""


def registry_of(image: str) -> str:
    """The registry server an image reference names (`host[:port]` before its first '/'), "" for none
    (a name such as `busybox` or `library/busybox`, which the engine's own search list resolves)."""
    first, sep, _rest = image.partition("/")
    if not sep:
        return ""
    if "." in first or ":" in first or first == "localhost":
        return first
    return ""


def parse_run_options(text: str, *, allow_host: bool) -> RunOptions:
    """Split and check a task's `container_run_options`: the engine's arguments, or the problem (the first
    option that is not allowed, or that the engine could not parse)."""
    if len(text) > MAX_RUN_OPTIONS:
        return RunOptions(problem=f"must be at most {MAX_RUN_OPTIONS} characters")
    if "\0" in text:
        return RunOptions(problem="must not contain a NUL character")
    try:
        words = shlex.split(text)
    except ValueError as e:
        return RunOptions(problem=f"cannot be split into words: {e}")
    args: list[str] = []
    sets_workdir = False
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("-") or word in ("-", "--"):
            return RunOptions(problem=f"{word!r} is not an option (the image and command come from the task)")
        if not word.startswith("--") and len(word) > 2 and word[:2] in _SHORT_WITH_VALUE:
            # -eNAME=value, and -e=NAME=value as podman reads it (the '=' is not part of the value)
            name, eq, value = word[:2], "=", word[3:] if word[2] == "=" else word[2:]
        else:
            name, eq, value = word.partition("=")
        takes_value = name in _SAFE_WITH_VALUE or name in ("--network", "--net")
        if takes_value and not eq:
            if i + 1 >= len(words):
                return RunOptions(problem=f"{name} needs a value")
            value = words[i + 1]
            i += 1
        i += 1
        if name in ("--network", "--net"):
            if value not in _SAFE_NETWORKS and not allow_host:
                return RunOptions(problem=f"{name} {value}: only none, bridge, private or host networks are allowed")
            args += [name, value]
            continue
        if name in ("-e", "--env") and "=" not in value and not allow_host:
            # (`-e NAME` and `-e 'PREFIX*'` copy from the engine's own environment: the node's, not the task's.)
            return RunOptions(problem=f"{name} {value}: give a value (NAME=value); the task's variables are there")
        if name in ("-l", "--label") and value.lower().startswith("shoal.") and not allow_host:
            return RunOptions(problem=f"{name} {value}: labels named shoal.* are the agent's")
        if name in _SAFE_WITH_VALUE:
            sets_workdir = sets_workdir or name in ("-w", "--workdir")
            args += [name, value]
            continue
        if name in _SAFE_FLAGS and not eq:
            args.append(name)
            continue
        if not allow_host:
            return RunOptions(
                problem=f"{name} is not allowed: it reaches outside the task's container "
                "(a pool's container configuration may allow such options: allow_host_run_options)"
            )
        # Allowed by the pool: passed on as given; a next word that is not an option is its value.
        args.append(word)
        if not eq and i < len(words) and not words[i].startswith("-"):
            args.append(words[i])
            i += 1
    return RunOptions(args=tuple(args), sets_workdir=sets_workdir)
