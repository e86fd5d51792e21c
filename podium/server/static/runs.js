// The runs list: filters by flow and status, pages with a cursor, live via the event stream of all runs.
import { api, badge, clear, debounce, h, seconds, short, stream, TERMINAL, when } from "./util.js";

const STATUSES = ["pending", "running", "waiting", "completed", "failed", "cancelled"];
const PAGE = 25;

export function runsPage({ main, params, setLive }) {
  const flow = params.get("flow") || "";
  const status = params.get("status") || "";
  const before = params.get("before") || "";
  const trail = (params.get("trail") || "").split(",").filter(Boolean); // cursors of the pages before
  let closed = false;
  const rows = new Map(); // run id -> <tr>
  const timers = new Set();

  const flowSelect = h("select", { id: "filter-flow", "aria-label": "flow" }, h("option", { value: "" }, "all flows"));
  const statusSelect = h("select", { id: "filter-status", "aria-label": "status" },
    h("option", { value: "" }, "any status"), STATUSES.map((st) => h("option", { value: st }, st)));
  statusSelect.value = status;
  const go = (changes) => {
    const q = new URLSearchParams({ flow, status, before, trail: trail.join(","), ...changes });
    for (const [k, v] of [...q.entries()]) if (!v) q.delete(k);
    const text = q.toString();
    location.hash = "#/runs" + (text ? "?" + text : "");
  };
  flowSelect.addEventListener("change", () => go({ flow: flowSelect.value, before: "", trail: "" }));
  statusSelect.addEventListener("change", () => go({ status: statusSelect.value, before: "", trail: "" }));

  const tbody = h("tbody", { id: "runs-body" });
  const note = h("p", { class: "muted", id: "runs-note" }, "Loading…");
  const newer = h("button", { type: "button", id: "page-newer", disabled: !before }, "← Newer");
  const older = h("button", { type: "button", id: "page-older", disabled: true }, "Older →");
  const newRuns = h("button", { type: "button", class: "link", id: "runs-new", hidden: true }, "");
  newer.addEventListener("click", () => {
    const prev = trail.slice(0, -1);
    go({ before: trail[trail.length - 1] === "-" ? "" : trail[trail.length - 1] || "", trail: prev.join(",") });
  });
  let nextCursor = null;
  older.addEventListener("click", () => {
    if (nextCursor) go({ before: nextCursor, trail: [...trail, before || "-"].join(",") });
  });

  clear(main,
    h("div", { class: "toolbar" }, h("h1", {}, "Runs"), h("span", { class: "spacer" }), flowSelect, statusSelect),
    h("table", { class: "runs" },
      h("thead", {}, h("tr", {}, ["run", "flow", "status", "created", "took", "output / error"].map((c) => h("th", {}, c)))),
      tbody),
    note,
    h("div", { class: "pager" }, newer, older, newRuns));

  api("/flows").then(({ flows }) => {
    const names = new Set(flows.map((f) => f.name));
    if (flow) names.add(flow);
    for (const name of [...names].sort()) flowSelect.append(h("option", { value: name }, name));
    flowSelect.value = flow;
  }).catch(() => {});

  function cells(run) {
    const took = run.ended_at ? seconds(run.ended_at - run.created_at) : "";
    let detail = "";
    if (run.status === "failed" && run.error) detail = h("span", { class: "error" }, short(`${run.error.type}: ${run.error.message}`, 70));
    else if (run.status === "completed") detail = short(run.output, 70);
    return [
      h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(run.id)}`, class: "mono run-link" }, run.id)),
      h("td", {}, run.flow),
      h("td", {}, badge(run.status, { "data-run": run.id })),
      h("td", { class: "nowrap" }, when(run.created_at)),
      h("td", { class: "nowrap" }, took),
      h("td", { class: "detail" }, detail),
    ];
  }

  function put(run) {
    const tr = rows.get(run.id);
    if (!tr) return;
    clear(tr, cells(run));
    tr.dataset.status = run.status;
  }

  async function load() {
    try {
      const data = await api("/runs", { params: { flow, status, before, limit: PAGE } });
      if (closed) return;
      rows.clear();
      clear(tbody, data.runs.map((run) => {
        const tr = h("tr", { "data-run": run.id, "data-status": run.status }, cells(run));
        rows.set(run.id, tr);
        return tr;
      }));
      nextCursor = data.next;
      older.disabled = !data.next;
      newer.disabled = !before;
      note.textContent = data.runs.length ? "" : "No runs match.";
      newRuns.hidden = true;
    } catch (err) {
      note.textContent = err.message;
      note.className = "error";
    }
  }

  // A run's status can change without a journal event (a run that goes to sleep becomes "waiting"), so a
  // run that is not finished is looked at again a little later.
  async function refresh(id, again = 3) {
    try {
      const run = await api(`/runs/${encodeURIComponent(id)}`);
      if (closed) return;
      if ((status && run.status !== status) || (flow && run.flow !== flow)) {
        rows.get(id)?.classList.add("stale");
      }
      put(run);
      if (!TERMINAL.has(run.status) && again > 0) {
        const t = setTimeout(() => {
          timers.delete(t);
          refresh(id, again - 1);
        }, 1000 * (4 - again));
        timers.add(t);
      }
    } catch {
      /* the next event tries again */
    }
  }

  const reload = debounce(load, 300);
  const stop = stream("/events", (ev) => {
    if (!ev.run_id) return;
    if (rows.has(ev.run_id)) refresh(ev.run_id);
    else if (ev.kind === "start") {
      if (!before) reload(); // the newest page shows new runs as they start
      else {
        newRuns.hidden = false;
        newRuns.textContent = "New runs started: show the newest";
        newRuns.onclick = () => go({ before: "", trail: "" });
      }
    }
  }, (on) => {
    setLive(on);
    if (on) reload(); // (re)connected: catch up on what happened before the stream was open
  });

  load();
  return () => {
    closed = true;
    stop();
    reload.cancel();
    for (const t of timers) clearTimeout(t);
  };
}
