"""Task dependencies, measured: `python -m bench.dependencies handoff|dag|store [options]` (issue 13).

- `handoff`: a chain of `/bin/true` tasks on an idle pool with a real agent; a parent's completion
  to its dependent's start, p50 / p99 (bench/deps_handoff.py).
- `dag`: simulated agents on 1,000 nodes; a 100,000-task DAG's dispatch rate against independent
  tasks' in the same run, and the cost of the cycle check (bench/deps_dag.py).
- `store`: 1,000,000 stored tasks with dependencies: memory per task, and their dependency state
  after a SIGKILL and a restart (bench/deps_store.py).
"""

from __future__ import annotations

import sys

from bench import deps_dag, deps_handoff, deps_store

COMMANDS = {"handoff": deps_handoff.main, "dag": deps_dag.main, "store": deps_store.main}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        print(__doc__)
        return 0 if args and args[0] in ("-h", "--help") else 2
    return COMMANDS[args[0]](args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
