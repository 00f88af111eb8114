// A pool, a job and its tasks from Node.js, and two refusals: prints a JSON
// report of what it saw (tests/e2e/test_node_client.py checks it).
//
//   node pool_job_tasks.js CREDENTIALS_JSON PROTOS_DIR RPC_PROTOS_DIR POOL_ID JOB_ID
"use strict";

const shoal = require("./shoal");

const [credentialsFile, protosDir, rpcProtosDir, poolId, jobId] = process.argv.slice(2);

async function expectRefusal(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error("the call was expected to be refused");
}

async function main() {
  const api = shoal.connect({ credentialsFile, protosDir, rpcProtosDir });
  const report = { tls: api.tls };
  try {
    const pool = await api.call(api.pools, "CreatePool", {
      pool: { id: poolId, target_nodes: 1, task_slots_per_node: 2, provider: "local" },
    });
    report.pool = { id: pool.id, state: pool.state };
    const job = await api.call(api.jobs, "CreateJob", { job: { id: jobId, pool_id: poolId } });
    report.job = { id: job.id, state: job.state };

    const specs = [
      { id: "hello", command_line: "/bin/sh -c 'echo hello from node'" },
      { id: "fails", command_line: "/bin/sh -c 'exit 3'" },
      {
        id: "env",
        command_line: "/bin/sh -c 'echo $GREETING'",
        environment_settings: [{ name: "GREETING", value: "hi" }],
      },
    ];
    const added = await api.call(api.tasks, "AddTasks", { parent: `jobs/${jobId}`, tasks: specs });
    report.added = added.results.map((r) => ({ id: r.task_id, status: r.status }));

    // Follow WatchTasks until every task has completed (no polling).
    const latest = {};
    await api.stream(
      api.tasks,
      "WatchTasks",
      { parent: `jobs/${jobId}` },
      (msg) => {
        for (const t of msg.tasks) latest[t.spec.id] = t;
        const ids = Object.keys(latest);
        return (
          (msg.initial_complete || !msg.initial) &&
          ids.length === specs.length &&
          ids.every((id) => latest[id].state === "TASK_STATE_COMPLETED")
        );
      },
      { deadlineSeconds: 90 },
    );
    report.completed = Object.fromEntries(
      Object.values(latest).map((t) => [t.spec.id, { state: t.state, exit_code: t.execution_info.exit_code }]),
    );

    const task = await api.call(api.tasks, "GetTask", { name: `jobs/${jobId}/tasks/hello` });
    report.task = {
      name: task.name,
      state: task.state,
      exit_code: task.execution_info.exit_code,
      result: task.execution_info.result,
      node_id: task.node_info.node_id,
      pool_id: task.node_info.pool_id,
    };
    const chunks = [];
    await api.stream(api.tasks, "ReadTaskFile", { name: `jobs/${jobId}/tasks/hello`, path: "stdout.txt" }, (c) => {
      chunks.push(Buffer.from(c.data));
      return false;
    });
    report.stdout = Buffer.concat(chunks).toString("utf8");

    // A wrong key: UNAUTHENTICATED.
    const stranger = shoal.connect({ credentialsFile, protosDir, rpcProtosDir, key: "not-the-key" });
    try {
      report.wrong_key = await expectRefusal(stranger.call(stranger.pools, "GetPool", { name: `pools/${poolId}` }));
    } finally {
      stranger.close();
    }
    // A bad request: INVALID_ARGUMENT with an ErrorInfo reason and a field violation.
    report.bad_request = await expectRefusal(
      api.call(api.pools, "CreatePool", { pool: { id: "no spaces allowed!", target_nodes: 1 } }),
    );
    report.missing = await expectRefusal(api.call(api.jobs, "GetJob", { name: "jobs/no-such-job" }));
  } finally {
    api.close();
  }
  process.stdout.write(JSON.stringify(report) + "\n");
}

main().catch((e) => {
  process.stderr.write(`${e && e.stack ? e.stack : JSON.stringify(e)}\n`);
  process.exit(1);
});
