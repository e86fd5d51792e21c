// The step timeline as a Gantt-like view: one line per position, a bar for its duration within the run,
// red ticks where attempts failed (retries), open (dashed, unfinished) bars for waits still waiting.
import { badge, h, s, seconds } from "./util.js";

const W = 1000; // the bars' coordinate width (the SVG stretches to its cell)

export function gantt(run, rows, { now, selected, onSelect }) {
  if (!rows.length) return h("p", { class: "muted", id: "timeline-empty" }, "No steps yet.");
  const t0 = run.created_at;
  let t1 = run.ended_at || now;
  for (const r of rows) t1 = Math.max(t1, r.ended || r.started || t0);
  const span = Math.max(t1 - t0, 1e-3);
  const x = (t) => Math.min(W, Math.max(0, ((t - t0) / span) * W));

  const axis = h("div", { class: "g-axis" });
  for (const f of [0, 0.5, 1]) {
    const label = h("span", {}, seconds(f * span) || "0");
    label.style.left = `${f * 100}%`;
    if (f === 1) label.classList.add("end");
    axis.append(label);
  }
  const lines = [
    h("div", { class: "g-row g-head" },
      h("span", {}, "pos"), h("span", {}, "step"), h("span", {}, "status"), h("span", {}, "tries"),
      h("span", {}, "took"), axis),
  ];
  for (const r of rows) {
    const key = `${r.position}|${r.kind}`;
    const open = r.started !== null && r.ended === null && r.started !== undefined;
    const bar = s("svg", { class: "g-bar", viewBox: `0 0 ${W} 16`, preserveAspectRatio: "none", "aria-hidden": "true" });
    if (r.started !== null && r.started !== undefined) {
      const a = x(r.started);
      const b = open ? W : x(r.ended);
      if (b - a < 2 && !open) {
        bar.append(s("rect", { x: Math.max(0, a - 1.5), y: 2, width: 3, height: 12, class: `bar status-${r.status}` }));
      } else {
        bar.append(s("rect", {
          x: a, y: 3, width: Math.max(2, b - a), height: 10, rx: 1,
          class: `bar status-${r.status}${open ? " open" : ""}`, "vector-effect": "non-scaling-stroke",
        }));
      }
      for (const e of r.errors || []) {
        bar.append(s("rect", { x: x(e.at) - 1.5, y: 0, width: 3, height: 16, class: "retry-tick" },
          s("title", {}, `failed attempt: ${e.type}: ${e.message}`)));
      }
    }
    const tries = r.attempts > 1 || (r.errors && r.errors.length) ? `${r.attempts}×` : "";
    const line = h("div", {
      class: `g-row${selected === key ? " selected" : ""}${open ? " waiting" : ""}`,
      role: "button", tabindex: "0", "data-position": r.position, "data-kind": r.kind, "data-status": r.status,
      title: `${r.kind} ${r.name} (${r.status})`,
      onclick: () => onSelect(r),
      onkeydown: (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          onSelect(r);
        }
      },
    },
    h("span", { class: "mono" }, r.position),
    h("span", { class: "g-name" }, h("span", { class: "kind" }, r.kind), " ", r.name),
    h("span", {}, badge(r.status)),
    h("span", { class: tries ? "retries" : "" }, tries),
    h("span", { class: "nowrap" }, open ? `${seconds(now - r.started)}…` : seconds(r.duration)),
    h("span", { class: "g-track" }, bar));
    lines.push(line);
  }
  return h("div", { class: "gantt", id: "gantt" }, lines);
}
