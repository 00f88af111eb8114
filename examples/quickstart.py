"""Quickstart: run 100 tasks on a running Shoal and print what happened.

Start a cluster first (in another terminal)::

    shoal up --data-dir ./shoal-data --nodes 2 --slots 2

then::

    python examples/quickstart.py          # finds the server through $SHOAL_HOME/server.json
"""

from __future__ import annotations

import collections
import sys
import uuid

import shoal
from shoal.client import NotFound, TaskSpec


def main() -> int:
    client = shoal.Client.connect()
    try:
        pool = client.pools.get("local")
    except NotFound:
        print("no pool 'local': start one with `shoal up --data-dir ./shoal-data`", file=sys.stderr)
        return 1
    client.pools.wait_nodes_idle(pool.id, timeout=60)

    job = client.jobs.create(id=f"quickstart-{uuid.uuid4().hex[:6]}", pool_id=pool.id, max_task_retry_count=1)
    specs = (
        TaskSpec(id=f"t{i:03d}", command_line=f"/bin/sh -c 'echo task {i} on $SHOAL_NODE_ID; exit {int(i % 25 == 0)}'")
        for i in range(100)
    )
    results = client.tasks.add_many(job.id, specs)
    print(f"job {job.id}: added {sum(r.ok for r in results)} tasks")

    outcomes: collections.Counter[str] = collections.Counter()
    for task in client.tasks.wait(job.id, timeout=300):
        outcomes[task.result or "unknown"] += 1
        if task.failed:
            print(f"  {task.id} failed: exit {task.exit_code}, {task.failure and task.failure.code}, "
                  f"retried {task.retry_count}x")  # fmt: skip
    print(dict(outcomes), client.jobs.task_counts(job.id))
    print("stdout of t001:", client.tasks.read_file(job.id, "t001", "stdout.txt").decode().strip())
    client.jobs.delete(job.id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
