"""The Shoal node agent: one process per compute node.

Entry points:

- ``python -m shoal.nodeagent --server HOST:PORT --node-root DIR --ip 127.0.1.N [--node-id ID]
  [--pool POOL] [--orphan-timeout SECONDS] [--allow-non-loopback] [--no-watchdog]
  [--no-task-cgroup] [--log-level LEVEL]``
- :func:`shoal.nodeagent.__main__.main` (``main(argv: list[str] | None = None) -> int``), what
  ``shoal agent`` calls with the same arguments.
- :class:`shoal.nodeagent.agent.Agent` (``await Agent(AgentConfig(...), clock=...).run() -> int``)
  to run an agent inside an existing event loop (tests, embedded use).

Modules: ``config`` (AgentConfig), ``layout`` (node directory tree), ``envvars`` (task
environments), ``process`` (spawn, reap, kill process groups), ``staging`` (resource files),
``outputs`` (output files), ``storage`` (StorageService client), ``runner`` (task attempts),
``starttask``, ``outbox`` (unacknowledged events), ``journal`` (append-only JSON-lines files),
``state`` (volatile/ files), ``retention`` (task directory deadlines and sweeper),
``watchdog`` (kills the tasks of an agent that dies), ``safeopen`` (opening node files without
following symlinks),
``fileservice`` (NodeService ListFiles/ReadFile), ``nodeexec`` (NodeService.ExecNode: commands and
shells on the node), ``execport`` and ``execservice`` (MPI proxies inside an instance), ``agent`` (the
session with the server).

Multi-instance tasks: each instance stages the common resource files into SHOAL_TASK_SHARED_DIR,
runs the coordination command (background processes it leaves live on with the instance),
reports COORDINATED; a subtask then waits to be killed, the primary waits for RunApplication and
runs the application command. MPI launchers reach other instances through `shoal-mpi-launch`,
which reaches the exec port of the target node's agent.

Exit codes: 0 after Shutdown, SIGTERM or SIGINT; 3 when the control plane was unreachable for
the orphan timeout; 4 when another agent holds the node root; 2 for a bad command line.
"""
