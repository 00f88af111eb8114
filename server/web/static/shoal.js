// Shoal's dashboard: one page, views by the URL's hash, data from /api (the public API, as the signed-in
// account), live views from server-sent events that follow the API's watch streams.
"use strict";

const view = () => document.getElementById("view");
let streams = [];   // EventSources and timers of the current view, closed when it changes
let generation = 0; // bumps on every route change, so late answers of a left view are dropped

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "style") el.style.cssText = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const enumName = (v) => (v ? String(v).split("_STATE_").pop().replace(/^(TASK_EXECUTION_RESULT|SCHEDULING_STATE|ALLOCATION_STATE)_/, "") : "");
const stateBadge = (v, kind) => h("span", { class: `state ${enumName(v)} ${kind || ""}` }, enumName(v).toLowerCase().replace(/_/g, " "));
const link = (href, text) => h("a", { href }, text);
// A node's scheduling: the API leaves it unset while it is enabled.
const scheduling = (v) => (enumName(v) === "UNSPECIFIED" || !v ? "enabled" : enumName(v).toLowerCase());
const enc = encodeURIComponent;
const idOf = (name) => String(name || "").split("/").pop();

function when(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  return isNaN(d) ? String(ts) : d.toLocaleString();
}

function duration(from, to) {
  if (!from) return "";
  const ms = (to ? new Date(to) : new Date()) - new Date(from);
  if (!(ms >= 0)) return "";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

async function api(path) {
  const r = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (r.status === 401) {
    location.href = "/login?next=" + enc("/" + location.hash);
    throw new Error("signed out");
  }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error ? `${body.reason}: ${body.error}` : `HTTP ${r.status}`);
  return body;
}

function live(path, handlers, indicator) {
  const source = new EventSource(path);
  for (const [event, fn] of Object.entries(handlers)) {
    source.addEventListener(event, (e) => fn(JSON.parse(e.data)));
  }
  source.addEventListener("error", (e) => {
    if (e.data) {
      const body = JSON.parse(e.data);
      setLive(indicator, false, body.error);
    } else if (source.readyState === EventSource.CLOSED) setLive(indicator, false);
  });
  source.addEventListener("end", () => { source.close(); setLive(indicator, false, "ended"); });
  source.addEventListener("open", () => setLive(indicator, true));
  streams.push({ close: () => source.close() });
  return source;
}

function setLive(el, on, why) {
  for (const x of [].concat(el || [])) {
    x.className = on ? "live" : "live off";
    x.textContent = on ? "● live" : `○ ${why || "not live"}`;
  }
}

function every(ms, fn) {
  const t = setInterval(fn, ms);
  streams.push({ close: () => clearInterval(t) });
}

function fields(pairs) {
  return h("dl", { class: "fields" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "").map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function table(headers, rows, attrs) {
  return h("table", attrs || {},
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { class: x.num ? "num" : "" }, x.label || x)))),
    h("tbody", {}, rows));
}

function show(...children) {
  const v = view();
  v.replaceChildren(...children);
}

function failed(err) {
  show(h("p", { class: "error", role: "alert" }, String(err.message || err)));
}

// ---------------------------------------------------------------------------------------------- nodes

const NODE_STATES = ["IDLE", "RUNNING", "STARTING", "WAITING_FOR_START_TASK", "START_TASK_FAILED", "UNUSABLE", "OFFLINE", "REBOOTING", "REIMAGING", "LEAVING_POOL", "PREEMPTED", "CREATING", "UNKNOWN"];

function nodeTracker() {
  const nodes = new Map();
  return {
    nodes,
    apply(msg) {
      if (msg.initial && !this.started) { nodes.clear(); this.started = true; }
      for (const n of msg.nodes || []) nodes.set(n.id, n);
      for (const id of msg.removed_node_ids || []) nodes.delete(id);
    },
  };
}

function heatmap(poolId, nodes, large) {
  const sorted = [...nodes.values()].sort((a, b) => a.id.localeCompare(b.id));
  return h("div", { class: `heatmap${large ? " large" : ""}`, "data-pool": poolId, "data-nodes": sorted.length },
    sorted.map((n) => h("a", {
      class: `node ${enumName(n.state)}`, "data-node": n.id, "data-state": enumName(n.state),
      href: `#/pools/${enc(poolId)}/nodes/${enc(n.id)}`, title: `${n.id}: ${enumName(n.state).toLowerCase()}`,
    })));
}

function legend(nodes) {
  const counts = {};
  for (const n of nodes.values()) counts[enumName(n.state)] = (counts[enumName(n.state)] || 0) + 1;
  return h("div", { class: "legend" }, NODE_STATES.filter((s) => counts[s]).map((s) => h("span", { style: `--c: var(--${colorOf(s)})` }, `${s.toLowerCase().replace(/_/g, " ")} ${counts[s]}`)));
}

function colorOf(state) {
  if (state === "IDLE") return "idle";
  if (state === "RUNNING") return "running";
  if (["START_TASK_FAILED", "UNUSABLE"].includes(state)) return "bad";
  if (["CREATING", "STARTING", "WAITING_FOR_START_TASK", "REBOOTING", "REIMAGING"].includes(state)) return "starting";
  return "offline";
}

async function poolsView(gen) {
  const data = await api("/api/pools");
  if (gen !== generation) return;
  const views = new Map();
  const cards = data.pools.map((p) => {
    const tracker = nodeTracker();
    const map = h("div", {}, heatmap(p.id, tracker.nodes));
    const indicator = h("span", { class: "live off" });
    const render = () => map.replaceChildren(heatmap(p.id, tracker.nodes), legend(tracker.nodes));
    views.set(p.id, { tracker, render, indicator });
    return h("section", { class: "card pool-card", "data-pool": p.id },
      h("h2", {}, link(`#/pools/${enc(p.id)}`, p.id), " ", stateBadge(p.allocation_state), " ", indicator),
      h("div", { class: "muted" }, `${p.current_nodes + p.current_low_priority_nodes} of ${p.target_nodes + p.target_low_priority_nodes} nodes · ${p.task_slots_per_node} slot(s) each${p.enable_auto_scale ? " · autoscale" : ""}`),
      map);
  });
  show(h("h1", {}, "Pools"), cards.length ? h("div", { class: "cards", id: "pools" }, cards) : h("p", { class: "muted" }, "No pools yet: shoal pool create …"));
  // One stream for the first 30 pools: a browser opens only six connections to a server at once.
  const watched = data.pools.slice(0, 30).map((p) => p.id);
  if (watched.length) {
    live("/api/watch/nodes?" + watched.map((id) => `pool=${enc(id)}`).join("&"), {
      nodes: (m) => { const v = views.get(m.pool); if (v) { v.tracker.apply(m); v.render(); } },
      pool_error: (m) => { const v = views.get(m.pool); if (v) setLive(v.indicator, false, m.error); },
    }, watched.map((id) => views.get(id).indicator));
  }
}

async function poolView(gen, poolId) {
  const p = await api(`/api/pools/${enc(poolId)}`);
  if (gen !== generation) return;
  const tracker = nodeTracker();
  const indicator = h("span", { class: "live off" });
  const mapBox = h("div", {});
  const rows = h("tbody", {});
  const render = () => {
    mapBox.replaceChildren(heatmap(poolId, tracker.nodes, true), legend(tracker.nodes));
    rows.replaceChildren(...[...tracker.nodes.values()].sort((a, b) => a.id.localeCompare(b.id)).map((n) => h("tr", { "data-node": n.id },
      h("td", {}, link(`#/pools/${enc(poolId)}/nodes/${enc(n.id)}`, n.id)), h("td", {}, stateBadge(n.state)),
      h("td", {}, scheduling(n.scheduling_state)), h("td", {}, n.ip_address), h("td", { class: "num" }, (n.cpu_percent || 0).toFixed(0) + "%"),
      h("td", {}, n.is_dedicated ? "dedicated" : "low priority"))));
  };
  show(h("h1", {}, `Pool ${p.id} `, stateBadge(p.state), " ", indicator),
    fields([["Allocation", enumName(p.allocation_state).toLowerCase()], ["Nodes", `${p.current_nodes} dedicated, ${p.current_low_priority_nodes} low priority (target ${p.target_nodes} + ${p.target_low_priority_nodes})`],
      ["Slots per node", p.task_slots_per_node], ["Autoscale", p.enable_auto_scale ? p.auto_scale_formula : "off"], ["Created", when(p.creation_time)],
      ["Resize errors", (p.resize_errors || []).map((e) => e.message).join("; ")]]),
    h("h2", {}, "Nodes"), mapBox,
    h("table", { id: "nodes" }, h("thead", {}, h("tr", {}, ["Node", "State", "Scheduling", "Address", "CPU", "Kind"].map((x) => h("th", {}, x)))), rows));
  live(`/api/watch/pools/${enc(poolId)}/nodes`, { nodes: (m) => { tracker.apply(m); render(); } }, indicator);
}

async function nodeView(gen, poolId, nodeId) {
  const base = `/api/pools/${enc(poolId)}/nodes/${enc(nodeId)}`;
  const n = await api(base);
  if (gen !== generation) return;
  const content = h("pre", { class: "output", id: "node-file", hidden: true });
  const listing = h("div", { id: "node-files-box" });
  const open = async (path) => {
    const r = await fetch(`${base}/file?path=${enc(path)}`, { credentials: "same-origin" });
    content.hidden = false;
    content.textContent = r.ok ? await r.text() : `could not read ${path}: HTTP ${r.status}`;
  };
  // A directory's entries; a directory's name opens it, ".." goes up.
  const list = async (dir) => {
    const files = await api(`${base}/files?path=${enc(dir)}`).catch((e) => ({ error: e.message }));
    const full = (p) => (dir ? `${dir}/${p}` : p);
    const up = dir ? [h("tr", {}, h("td", {}, h("a", { href: "#", onclick: (e) => { e.preventDefault(); list(dir.split("/").slice(0, -1).join("/")); } }, "..")), h("td", {}), h("td", {}))] : [];
    listing.replaceChildren(h("p", { class: "muted" }, `/${dir}`), files.error ? h("p", { class: "error" }, files.error) : table(["Path", { label: "Size", num: true }, "Modified"], [...up, ...(files.files || []).map((f) => h("tr", {},
      h("td", {}, h("a", { href: "#", "data-dir": f.is_directory ? "1" : null, onclick: (e) => { e.preventDefault(); f.is_directory ? list(full(f.path)) : open(full(f.path)); } }, f.is_directory ? f.path + "/" : f.path)),
      h("td", { class: "num" }, f.is_directory ? "" : f.size), h("td", {}, when(f.modify_time))))], { id: "node-files" }));
  };
  const st = n.start_task_info || {};
  show(h("h1", {}, `Node ${n.id} `, stateBadge(n.state)),
    fields([["Pool", link(`#/pools/${enc(poolId)}`, poolId)], ["Scheduling", scheduling(n.scheduling_state)], ["Address", n.ip_address],
      ["Kind", n.is_dedicated ? "dedicated" : "low priority"], ["CPU", `${(n.cpu_percent || 0).toFixed(0)}%`], ["Agent", n.agent_version],
      ["Containers", n.container_engine], ["Metrics", n.metrics_address ? `http://${n.metrics_address}/metrics` : ""], ["Last heartbeat", when(n.last_heartbeat_time)], ["Allocated", when(n.allocation_time)],
      ["Start task", st.state ? enumName(st.state).toLowerCase() + (st.exit_code !== undefined ? ` (exit ${st.exit_code})` : "") : ""],
      ["Errors", (n.errors || []).map((e) => `${e.code}: ${e.message}`).join("; ")]]),
    h("h2", {}, "Files"), listing, content);
  await list("");
}

// ----------------------------------------------------------------------------------------------- jobs

function progress(counts, attrs) {
  const c = counts || {};
  const total = (c.active || 0) + (c.running || 0) + (c.completed || 0);
  const pct = (x) => (total ? (100 * x) / total : 0);
  const ok = c.succeeded || 0, bad = c.failed || 0, run = c.running || 0;
  return h("div", Object.assign({ class: "progress", title: `${c.completed || 0} of ${total} completed, ${run} running, ${bad} failed`, "data-completed": c.completed || 0, "data-total": total, "data-running": run, "data-failed": bad }, attrs || {}),
    h("div", { class: "done", style: `width:${pct(ok)}%` }),
    h("div", { class: "failed", style: `left:${pct(ok)}%;width:${pct(bad)}%` }),
    h("div", { class: "running", style: `left:${pct(ok + bad)}%;width:${pct(run)}%` }));
}

async function jobsView(gen) {
  const render = async () => {
    const data = await api("/api/jobs");
    if (gen !== generation) return;
    const rows = data.jobs.map((j) => h("tr", { "data-job": j.id },
      h("td", {}, link(`#/jobs/${enc(j.id)}`, j.id)), h("td", {}, stateBadge(j.state, "job")), h("td", {}, j.pool_id ? link(`#/pools/${enc(j.pool_id)}`, j.pool_id) : ""),
      h("td", {}, progress(j.task_counts)),
      ...["active", "running", "completed", "failed"].map((k) => h("td", { class: "num" }, (j.task_counts || {})[k] || 0)),
      h("td", {}, when(j.creation_time))));
    show(h("h1", {}, "Jobs"), data.jobs.length ? table(["Job", "State", "Pool", "Progress", { label: "Active", num: true }, { label: "Running", num: true }, { label: "Completed", num: true }, { label: "Failed", num: true }, "Created"], rows, { id: "jobs" }) : h("p", { class: "muted" }, "No jobs yet: shoal job create …"),
      data.truncated ? h("p", { class: "muted" }, "Showing the first jobs only.") : "");
  };
  await render();
  // (The job list has no watch stream: it is read again every ten seconds; a job's own page is live.)
  every(10000, () => render().catch(() => {}));
}

function taskCounts(tasks) {
  const c = { active: 0, running: 0, completed: 0, succeeded: 0, failed: 0 };
  for (const t of tasks.values()) {
    const s = enumName(t.state);
    if (s === "ACTIVE") c.active++;
    else if (s === "RUNNING" || s === "PREPARING") c.running++;
    else if (s === "COMPLETED") {
      c.completed++;
      if (enumName((t.execution_info || {}).result) === "FAILURE") c.failed++; else c.succeeded++;
    }
  }
  return c;
}

const taskResult = (t) => {
  const e = t.execution_info || {};
  if (enumName(t.state) !== "COMPLETED") return "";
  return enumName(e.result) === "FAILURE" ? `failed${e.exit_code !== undefined ? ` (exit ${e.exit_code})` : ""}` : `exit ${e.exit_code ?? 0}`;
};

async function jobView(gen, jobId) {
  const j = await api(`/api/jobs/${enc(jobId)}`);
  if (gen !== generation) return;
  const tasks = new Map();
  const indicator = h("span", { class: "live off" });
  const bar = h("div", { id: "job-progress-box" }, progress(j.task_counts, { id: "job-progress" }));
  const countsLine = h("p", { class: "muted", id: "job-counts" });
  const stateSel = h("select", { id: "task-state" }, ["all", "active", "preparing", "running", "completed", "failed"].map((s) => h("option", { value: s }, s)));
  const text = h("input", { id: "task-filter", placeholder: "task id contains…", type: "search" });
  const rows = h("tbody", {});
  const note = h("p", { class: "muted" });
  let pending = false;
  const render = () => {
    pending = false;
    const c = taskCounts(tasks);
    bar.replaceChildren(progress(c, { id: "job-progress" }));
    countsLine.textContent = `${c.completed} of ${tasks.size} completed (${c.succeeded} succeeded, ${c.failed} failed), ${c.running} running, ${c.active} waiting`;
    const want = stateSel.value, q = text.value.trim();
    const shown = [...tasks.values()].filter((t) => {
      const s = enumName(t.state).toLowerCase();
      if (want === "failed") { if (!(s === "completed" && enumName((t.execution_info || {}).result) === "FAILURE")) return false; }
      else if (want !== "all" && s !== want) return false;
      return !q || t.spec.id.includes(q);
    }).sort((a, b) => a.spec.id.localeCompare(b.spec.id, undefined, { numeric: true }));
    note.textContent = shown.length > 500 ? `Showing 500 of ${shown.length} tasks.` : "";
    rows.replaceChildren(...shown.slice(0, 500).map((t) => {
      const e = t.execution_info || {}, ni = t.node_info || {};
      return h("tr", { "data-task": t.spec.id, "data-state": enumName(t.state) },
        h("td", {}, link(`#/jobs/${enc(jobId)}/tasks/${enc(t.spec.id)}`, t.spec.id)), h("td", {}, stateBadge(t.state)), h("td", {}, taskResult(t)),
        h("td", {}, ni.node_id ? link(`#/pools/${enc(ni.pool_id)}/nodes/${enc(ni.node_id)}`, ni.node_id) : t.waiting_reason || ""),
        h("td", {}, duration(e.start_time, e.end_time)), h("td", { class: "num" }, e.retry_count || 0));
    }));
  };
  const soon = () => { if (!pending) { pending = true; setTimeout(render, 200); } };
  stateSel.addEventListener("change", render);
  text.addEventListener("input", render);
  show(h("h1", {}, `Job ${j.id} `, stateBadge(j.state, "job"), " ", indicator),
    fields([["Pool", j.pool_id ? link(`#/pools/${enc(j.pool_id)}`, j.pool_id) : "(auto pool)"], ["Priority", j.priority], ["Schedule", j.job_schedule_id ? link(`#/schedules/${enc(j.job_schedule_id)}`, j.job_schedule_id) : ""],
      ["Created", when(j.creation_time)], ["When all tasks complete", String(j.on_all_tasks_complete || "").replace(/^ON_ALL_TASKS_COMPLETE_/, "").toLowerCase().replace(/_/g, " ")], ["Scheduling error", ((j.execution_info || {}).scheduling_error || {}).message]]),
    h("h2", {}, "Progress"), bar, countsLine,
    h("h2", {}, "Tasks"), h("div", { class: "filters" }, "State ", stateSel, text),
    h("table", { id: "tasks" }, h("thead", {}, h("tr", {}, ["Task", "State", "Result", "Node / waiting for", "Ran", "Retries"].map((x) => h("th", {}, x)))), rows), note);
  live(`/api/watch/jobs/${enc(jobId)}/tasks`, {
    tasks: (m) => { for (const t of m.tasks || []) tasks.set(t.spec.id, t); soon(); },
  }, indicator);
}

async function taskView(gen, jobId, taskId) {
  const base = `/api/jobs/${enc(jobId)}/tasks/${enc(taskId)}`;
  const t = await api(base);
  if (gen !== generation) return;
  const indicator = h("span", { class: "live off" });
  const info = h("div", {});
  const render = (t) => {
    const e = t.execution_info || {}, ni = t.node_info || {}, f = e.failure_info || {};
    info.replaceChildren(h("p", {}, stateBadge(t.state), " ", taskResult(t)), fields([["Command", h("code", {}, t.spec.command_line)],
      ["Node", ni.node_id ? link(`#/pools/${enc(ni.pool_id)}/nodes/${enc(ni.node_id)}`, `${ni.pool_id} / ${ni.node_id}`) : ""],
      ["Waiting for", enumName(t.state) === "ACTIVE" ? t.waiting_reason : ""], ["Started", when(e.start_time)], ["Ended", when(e.end_time)],
      ["Ran", duration(e.start_time, e.end_time)], ["Exit code", e.exit_code], ["Retries", e.retry_count], ["Failure", f.message ? `${f.code}: ${f.message}` : ""],
      ["Created", when(t.creation_time)]]));
  };
  const out = h("pre", { class: "output", id: "stdout" });
  const err = h("pre", { class: "output", id: "stderr" });
  show(h("h1", {}, link(`#/jobs/${enc(jobId)}`, jobId), ` / ${taskId} `, indicator), info,
    h("div", { class: "panes" }, h("section", {}, h("h2", {}, "stdout"), out), h("section", {}, h("h2", {}, "stderr"), err)),
    h("h2", {}, "Files"), h("div", { id: "task-files" }, h("p", { class: "muted" }, "…")));
  render(t);
  live(`/api/watch/jobs/${enc(jobId)}/tasks?task=${enc(taskId)}`, { tasks: (m) => { for (const x of m.tasks || []) render(x); } }, indicator);
  const follow = (path, pre) => {
    let started = false;
    const open = () => {
      if (started) return;
      started = true;
      live(`${"/api/follow/jobs/" + enc(jobId) + "/tasks/" + enc(taskId)}?path=${enc(path)}`, {
        text: (m) => {
          const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.append(m.text);
          if (stick) pre.scrollTop = pre.scrollHeight;
        },
        error: () => { started = false; },
      });
    };
    open();
  };
  const s = enumName(t.state);
  if (s === "RUNNING" || s === "COMPLETED" || s === "PREPARING") {
    follow("stdout.txt", out);
    follow("stderr.txt", err);
  } else {
    out.textContent = "(the task has not started)";
    // Started later: follow then.
    every(3000, async () => {
      if (out.dataset.following) return;
      const now = await api(base).catch(() => null);
      if (now && enumName(now.state) !== "ACTIVE") {
        out.dataset.following = "1";
        out.textContent = "";
        follow("stdout.txt", out);
        follow("stderr.txt", err);
      }
    });
  }
  api(`${base}/files`).then((files) => {
    document.getElementById("task-files")?.replaceChildren(table(["Path", { label: "Size", num: true }, "Modified"], (files.files || []).map((f) => h("tr", {},
      h("td", {}, f.path + (f.is_directory ? "/" : "")), h("td", { class: "num" }, f.is_directory ? "" : f.size), h("td", {}, when(f.modify_time))))));
  }).catch((e) => document.getElementById("task-files")?.replaceChildren(h("p", { class: "muted" }, e.message)));
}

// ------------------------------------------------------------------------------------------ schedules

async function schedulesView(gen) {
  const data = await api("/api/schedules");
  if (gen !== generation) return;
  const rows = data.job_schedules.map((s) => {
    const x = s.execution_info || {};
    return h("tr", { "data-schedule": s.id }, h("td", {}, link(`#/schedules/${enc(s.id)}`, s.id)), h("td", {}, stateBadge(s.state)),
      h("td", {}, when(x.next_run_time)), h("td", {}, x.recent_job && x.recent_job.id ? link(`#/jobs/${enc(x.recent_job.id)}`, x.recent_job.id) : ""));
  });
  show(h("h1", {}, "Job schedules"), rows.length ? table(["Schedule", "State", "Next run", "Recent job"], rows, { id: "schedules" }) : h("p", { class: "muted" }, "No job schedules."));
}

async function scheduleView(gen, id) {
  const s = await api(`/api/schedules/${enc(id)}`);
  if (gen !== generation) return;
  const sc = s.schedule || {}, x = s.execution_info || {};
  show(h("h1", {}, `Schedule ${s.id} `, stateBadge(s.state)),
    fields([["Recurrence", sc.recurrence_interval || sc.cron || ""], ["Do not run until", when(sc.do_not_run_until)], ["Do not run after", when(sc.do_not_run_after)],
      ["Start window", sc.start_window], ["Next run", when(x.next_run_time)], ["Ended", when(x.end_time)]]),
    h("h2", {}, "Jobs"), table(["Job", "State", "Created"], (s.jobs || []).map((j) => h("tr", {}, h("td", {}, link(`#/jobs/${enc(j.id)}`, j.id)), h("td", {}, stateBadge(j.state, "job")), h("td", {}, when(j.creation_time))))));
}

// -------------------------------------------------------------------------------------------- metrics

// Charts of the server's metrics over the last hour: a counter (…_total) is drawn as its rate per second.
const CHARTS = [
  ["Tasks running", /^shoal_tasks\{state=running\}$/],
  ["Tasks waiting for a node", /^shoal_tasks_queued$/],
  ["Tasks dispatched per second", /^shoal_tasks_dispatched_total$/],
  ["Tasks completed per second", /^shoal_tasks_completed_total$/],
  ["Nodes idle", /^shoal_nodes\{state=idle\}$/],
  ["Nodes running", /^shoal_nodes\{state=running\}$/],
  ["API calls per second", /^shoal_grpc_server_handled_total$/],
  ["Store commits per second", /^shoal_store_commits_total$/],
  ["Server memory (MiB)", /^process_resident_memory_bytes$/, 1 / 1048576],
];

function chart(title, times, values, isCounter, scale) {
  let pts = [];
  for (let i = 0; i < times.length; i++) {
    if (values[i] === null || values[i] === undefined) continue;
    if (isCounter) {
      if (i === 0 || values[i - 1] === null || values[i - 1] === undefined) continue;
      const dt = times[i] - times[i - 1];
      pts.push([times[i], dt > 0 ? Math.max(0, values[i] - values[i - 1]) / dt : 0]);
    } else pts.push([times[i], values[i] * (scale || 1)]);
  }
  const W = 600, H = 160, P = 34;
  // The last hour at most; while the server is younger, the time it has run (ten minutes at least).
  const t1 = times.length ? times[times.length - 1] : 1;
  const span = Math.min(3600, Math.max(600, times.length ? t1 - times[0] : 0));
  const t0 = t1 - span;
  const max = Math.max(1, ...pts.map((p) => p[1]));
  const x = (t) => P + ((t - t0) / (t1 - t0 || 1)) * (W - P - 4), y = (v) => H - 16 - (v / max) * (H - 26);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const el = (tag, attrs, text) => { const e = document.createElementNS(svg.namespaceURI, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text) e.textContent = text; svg.append(e); };
  el("line", { class: "axis", x1: P, y1: H - 16, x2: W, y2: H - 16 });
  el("text", { class: "label", x: 2, y: 12 }, max.toPrecision(3));
  el("text", { class: "label", x: 2, y: H - 18 }, "0");
  el("text", { class: "label", x: P, y: H - 3 }, `-${Math.round(span / 60)} min`);
  el("text", { class: "label", x: W - 30, y: H - 3 }, "now");
  if (pts.length) el("polyline", { class: "line", points: pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ") });
  // A point alone draws no line: each sample gets a dot while there are few.
  if (pts.length < 30) for (const p of pts) el("circle", { class: "dot", cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: 3 });
  const last = pts.length ? pts[pts.length - 1][1] : null;
  return h("section", { class: "chart", "data-chart": title, "data-points": pts.length }, h("h2", {}, title, " ", h("span", { class: "muted" }, last === null ? "no data yet" : `now ${Number(last.toPrecision(3))}`)), svg);
}

async function metricsView(gen) {
  const render = async () => {
    const data = await api("/api/metrics/history");
    if (gen !== generation) return;
    const names = Object.keys(data.series);
    const charts = [];
    for (const [title, pattern, scale] of CHARTS) {
      const name = names.find((n) => pattern.test(n));
      if (name) charts.push(chart(title, data.times, data.series[name], name.endsWith("_total"), scale));
    }
    show(h("h1", {}, "Metrics, the last hour"),
      h("p", { class: "muted" }, `One sample every ${data.interval} s; ${data.times.length} so far. Prometheus reads them all at /metrics.`),
      charts.length ? h("div", { class: "cards", id: "charts" }, charts) : h("p", { class: "muted" }, "No samples yet."));
  };
  await render();
  every(15000, () => render().catch(() => {}));
}

// --------------------------------------------------------------------------------------------- router

const ROUTES = [
  [/^#\/pools\/([^/]+)\/nodes\/([^/]+)$/, nodeView, "pools"],
  [/^#\/pools\/([^/]+)$/, poolView, "pools"],
  [/^#\/jobs\/([^/]+)\/tasks\/([^/]+)$/, taskView, "jobs"],
  [/^#\/jobs\/([^/]+)$/, jobView, "jobs"],
  [/^#\/jobs$/, jobsView, "jobs"],
  [/^#\/schedules\/([^/]+)$/, scheduleView, "schedules"],
  [/^#\/schedules$/, schedulesView, "schedules"],
  [/^#\/metrics$/, metricsView, "metrics"],
  [/^(#\/pools)?$|^#\/?$/, poolsView, "pools"],
];

function route() {
  for (const s of streams) s.close();
  streams = [];
  const gen = ++generation;
  const hash = location.hash || "#/pools";
  for (const [pattern, fn, nav] of ROUTES) {
    const m = hash.match(pattern);
    if (!m) continue;
    let ids;
    try {
      ids = m.slice(1).filter((x) => x !== undefined && !x.startsWith("#")).map(decodeURIComponent);
    } catch (e) {
      break; // (an address with a malformed %-escape: no such page)
    }
    for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.dataset.nav === nav);
    show(h("p", { class: "muted" }, "Loading…"));
    fn(gen, ...ids).catch((e) => { if (gen === generation) failed(e); });
    return;
  }
  show(h("p", {}, "No such page. ", link("#/pools", "Pools")));
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  api("/api/whoami").then((w) => { document.getElementById("who").textContent = w.account; }).catch(() => {});
  route();
});
