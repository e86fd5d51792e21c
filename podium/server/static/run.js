// One run: header, the step timeline (Gantt), the flow's path as a graph, a step's details, live updates.
import { api, badge, clear, debounce, dollars, h, pretty, seconds, stream, TERMINAL, when } from "./util.js";
import { gantt } from "./gantt.js";
import { graph } from "./graph.js";

export function runPage({ main, setLive }, runId) {
  let closed = false;
  let selected = null; // a row's position + kind
  let state = null; // {run, rows, usage, pending}
  let poll = null;

  const header = h("section", { class: "card run-head", id: "run-head" }, h("p", { class: "muted" }, "Loading…"));
  const timelineBox = h("section", { class: "card" }, h("h2", {}, "Timeline"), h("div", { id: "timeline" }));
  const graphBox = h("section", { class: "card" }, h("h2", {}, "Path"), h("div", { id: "graph", class: "graph" }));
  const detailBox = h("section", { class: "card", id: "step-detail" },
    h("p", { class: "muted" }, "Click a step in the timeline or the graph to see its input, output and errors."));
  clear(main,
    h("div", { class: "toolbar" }, h("a", { href: "#/runs" }, "← Runs"), h("h1", { class: "mono" }, runId)),
    header,
    h("div", { class: "split" }, timelineBox, graphBox),
    detailBox);

  function select(row) {
    selected = row ? `${row.position}|${row.kind}` : null;
    draw();
    if (row) detailBox.scrollIntoView({ block: "nearest" });
  }

  function drawHeader({ run, usage, pending }) {
    const fields = [
      ["status", badge(run.status, { id: "run-status" })],
      ["flow", run.flow],
      ["created", when(run.created_at)],
    ];
    if (run.tenant && run.tenant !== "default") fields.splice(2, 0, ["tenant", run.tenant]);
    if (run.ended_at) fields.push(["took", seconds(run.ended_at - run.created_at)]);
    else if (run.status === "waiting" && run.wake_at) fields.push(["wakes", when(run.wake_at)]);
    if (run.key) fields.push(["key", h("span", { class: "mono" }, run.key)]);
    if (run.parent_id) fields.push(["parent", h("a", { class: "mono", href: `#/runs/${encodeURIComponent(run.parent_id)}` }, run.parent_id)]);
    fields.push(["cost", h("span", { id: "run-cost" }, usage.calls
      ? `${dollars(usage.cost)} · ${usage.calls} model call(s), ${usage.cached} cached, ` +
        `${usage.input_tokens.toLocaleString()} tokens in, ${usage.output_tokens.toLocaleString()} out`
      : "$0 · no model calls")]);
    const blocks = [h("dl", { class: "fields" }, fields.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))];
    blocks.push(h("div", { class: "io" },
      h("div", {}, h("h3", {}, "input"), h("pre", { id: "run-input" }, pretty(run.input))),
      run.status === "completed" ? h("div", {}, h("h3", {}, "output"), h("pre", { id: "run-output" }, pretty(run.output))) : null,
      run.error ? h("div", {}, h("h3", {}, "error"), h("pre", { id: "run-error", class: "error" },
        `${run.error.type}: ${run.error.message}` + (run.error.traceback ? `\n\n${run.error.traceback}` : ""))) : null));
    for (const p of pending) {
      blocks.push(h("p", { class: "pending" }, "Waiting for approval ", h("b", {}, p.name), " — ",
        h("a", { href: `#/inbox?run=${encodeURIComponent(run.id)}`, class: "to-inbox" }, "decide in the inbox")));
    }
    clear(header, blocks);
  }

  function draw() {
    if (!state) return;
    const { run, rows } = state;
    drawHeader(state);
    const now = Date.now() / 1000;
    clear(document.getElementById("timeline"), gantt(run, rows, { now, selected, onSelect: select }));
    clear(document.getElementById("graph"), graph(run, rows, { selected, onSelect: select }));
    const row = rows.find((r) => `${r.position}|${r.kind}` === selected);
    clear(detailBox, row ? details(row) : h("p", { class: "muted" },
      "Click a step in the timeline or the graph to see its input, output and errors."));
  }

  async function load() {
    try {
      const [run, tl, inbox] = await Promise.all([
        api(`/runs/${encodeURIComponent(runId)}`),
        api(`/runs/${encodeURIComponent(runId)}/timeline`),
        api("/approvals", { params: { run_id: runId } }),
      ]);
      if (closed) return;
      state = { run, rows: tl.rows, usage: tl.usage, pending: inbox.approvals };
      draw();
      // A run that goes to sleep changes status without a journal event: look again while it is active.
      clearTimeout(poll);
      if (!TERMINAL.has(run.status)) poll = setTimeout(load, run.status === "waiting" ? 15000 : 1000);
    } catch (err) {
      if (closed) return;
      clear(header, h("p", { class: "error", id: "run-missing" }, err.message));
    }
  }

  const reload = debounce(load, 100);
  const stop = stream(`/runs/${encodeURIComponent(runId)}/events`, () => reload(), (on) => {
    setLive(on);
    if (on) reload();
  });
  load();
  return () => {
    closed = true;
    stop();
    reload.cancel();
    clearTimeout(poll);
  };
}

function details(row) {
  const items = [
    ["position", h("span", { class: "mono" }, row.position)],
    ["kind", row.kind],
    ["name", row.name || "—"],
    ["status", badge(row.status)],
    ["started", when(row.started)],
    ["ended", row.ended ? when(row.ended) : row.started ? "not yet" : ""],
    ["took", seconds(row.duration)],
    ["attempts", String(row.attempts)],
  ];
  const parts = [h("h2", {}, `${row.kind} ${row.name || ""} at ${row.position}`),
    h("dl", { class: "fields" }, items.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))];
  const section = (title, value, cls) => h("div", {}, h("h3", {}, title), h("pre", { class: cls || "", "data-part": title }, pretty(value)));
  const d = row.detail;
  if (row.kind === "step" && row.status === "failed") {
    parts.push(section("error", d, "error"));
  } else if (row.kind === "step") {
    parts.push(h("p", { class: "muted" }, "A step's arguments are not journaled (only its outcome is); its output:"));
    parts.push(section("output", d));
  } else if (row.kind === "approval") {
    if (d && typeof d === "object" && "by" in d) {
      parts.push(section("payload", d.payload));
      parts.push(section("decision", { approved: row.status === "approved", by: d.by, comment: d.comment, edited: d.edited }));
    } else {
      parts.push(section("payload (proposed)", d));
    }
  } else if (row.kind === "child" && d && d.run_id) {
    parts.push(h("p", {}, "child run ", h("a", { class: "mono", href: `#/runs/${encodeURIComponent(d.run_id)}` }, d.run_id)));
  } else if (d !== null && d !== undefined) {
    parts.push(section(row.kind === "signal" ? "payload" : "detail", d));
  }
  if (row.errors && row.errors.length) {
    parts.push(h("h3", {}, `failed attempts (${row.errors.length})`));
    parts.push(h("ol", { class: "attempts" }, row.errors.map((e) =>
      h("li", {}, h("span", { class: "muted" }, when(e.at)), " ", h("span", { class: "error" }, `${e.type}: ${e.message}`)))));
  }
  return parts;
}
