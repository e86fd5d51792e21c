// Cost and latency per flow and per model over time, from GET /api/stats, drawn as SVG line charts.
import { api, clear, dollars, h, PALETTE, s, seconds } from "./util.js";

const RANGES = {
  hour: [["6h", "6 hours"], ["24h", "24 hours"], ["72h", "3 days"], ["168h", "7 days"]],
  day: [["7d", "7 days"], ["30d", "30 days"], ["90d", "90 days"], ["365d", "a year"]],
};

export function chartsPage({ main, params }) {
  const bucket = params.get("bucket") === "day" ? "day" : "hour";
  const since = params.get("since") || (bucket === "day" ? "30d" : "24h");
  let closed = false;
  const bucketSelect = h("select", { id: "chart-bucket", "aria-label": "bucket" },
    h("option", { value: "hour" }, "per hour"), h("option", { value: "day" }, "per day"));
  bucketSelect.value = bucket;
  const rangeSelect = h("select", { id: "chart-since", "aria-label": "since" },
    RANGES[bucket].map(([v, label]) => h("option", { value: v }, `last ${label}`)));
  if (!RANGES[bucket].some(([v]) => v === since)) rangeSelect.append(h("option", { value: since }, `since ${since}`));
  rangeSelect.value = since;
  const go = (b, r) => {
    location.hash = `#/charts?bucket=${b}&since=${encodeURIComponent(r)}`;
  };
  bucketSelect.addEventListener("change", () => go(bucketSelect.value, bucketSelect.value === "day" ? "30d" : "24h"));
  rangeSelect.addEventListener("change", () => go(bucket, rangeSelect.value));
  const body = h("div", { id: "charts" }, h("p", { class: "muted" }, "Loading…"));
  clear(main, h("div", { class: "toolbar" }, h("h1", {}, "Cost and latency"), h("span", { class: "spacer" }),
    bucketSelect, rangeSelect), body);

  api("/stats", { params: { bucket, since } }).then((st) => {
    if (closed) return;
    const note = h("p", { class: "muted" },
      `${st.runs} run(s) since ${new Date(st.since * 1000).toLocaleString()}, in UTC ${st.bucket}s` +
      (st.truncated ? " (only the newest runs were read)" : "") + ".");
    if (!st.runs) {
      clear(body, note, h("p", { id: "charts-empty" }, "No runs in this period."));
      return;
    }
    const pick = (group, field) => Object.fromEntries(Object.entries(st[group]).map(([name, pts]) =>
      [name, pts.filter((p) => p[field] !== null && p[field] !== undefined).map((p) => [p.t, p[field]])]));
    clear(body, note, h("div", { class: "charts" },
      chart("Cost per flow", st, pick("flows", "cost"), dollars, "chart-flow-cost"),
      chart("Run latency per flow (average)", st, pick("flows", "latency_avg"), seconds, "chart-flow-latency"),
      chart("Cost per model", st, pick("models", "cost"), dollars, "chart-model-cost"),
      chart("Model call latency per model (average)", st, pick("models", "latency_avg"), seconds, "chart-model-latency")),
    totals(st));
  }).catch((err) => {
    if (!closed) clear(body, h("p", { class: "error" }, err.message));
  });
  return () => {
    closed = true;
  };
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function tick(t, bucket) {
  const d = new Date(t * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return bucket === "day" ? `${d.getMonth() + 1}/${d.getDate()}` : `${pad(d.getHours())}:00`;
}

function chart(title, st, series, fmt, id) {
  const names = Object.keys(series).filter((n) => series[n].length);
  const box = h("figure", { class: "card chart", id }, h("figcaption", {}, title));
  if (!names.length) {
    box.append(h("p", { class: "muted" }, "No data."));
    return box;
  }
  const W = 520;
  const H = 220;
  const L = 64;
  const R = 12;
  const T = 10;
  const B = 28;
  const t0 = st.buckets[0];
  const t1 = st.buckets[st.buckets.length - 1];
  const tspan = Math.max(t1 - t0, st.size);
  let max = 0;
  for (const n of names) for (const [, v] of series[n]) max = Math.max(max, v);
  max = niceMax(max);
  const x = (t) => L + ((t - t0) / tspan) * (W - L - R);
  const y = (v) => T + (1 - v / max) * (H - T - B);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img", "aria-label": title });
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(s("line", { x1: L, x2: W - R, y1: y(f * max), y2: y(f * max), class: "grid" }));
    svg.append(s("text", { x: L - 6, y: y(f * max) + 4, class: "axis", "text-anchor": "end" }, fmt(f * max) || "0"));
  }
  const every = Math.max(1, Math.ceil(st.buckets.length / 6));
  st.buckets.forEach((t, i) => {
    if (i % every) return;
    svg.append(s("text", { x: x(t), y: H - B + 16, class: "axis", "text-anchor": "middle" }, tick(t, st.bucket)));
  });
  svg.append(s("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis-line" }));
  const legend = h("ul", { class: "legend" });
  names.forEach((name, i) => {
    const color = PALETTE[i % PALETTE.length];
    const pts = series[name];
    if (pts.length > 1) {
      svg.append(s("polyline", {
        points: pts.map(([t, v]) => `${x(t)},${y(v)}`).join(" "), fill: "none", stroke: color, "stroke-width": 2,
      }));
    }
    for (const [t, v] of pts) {
      svg.append(s("circle", { cx: x(t), cy: y(v), r: 3.5, fill: color },
        s("title", {}, `${name} · ${new Date(t * 1000).toLocaleString()} · ${fmt(v)}`)));
    }
    const sw = h("span", { class: "swatch" });
    sw.style.background = color;
    legend.append(h("li", { "data-series": name }, sw, name));
  });
  box.append(svg, legend);
  return box;
}

function totals(st) {
  const flows = Object.entries(st.totals.flows);
  const models = Object.entries(st.totals.models);
  const table = (head, rows) => h("table", { class: "totals" },
    h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))));
  return h("div", { class: "split" },
    h("section", { class: "card" }, h("h2", {}, "Flows"), table(
      ["flow", "runs", "completed", "failed", "cost", "avg latency", "max latency"],
      flows.map(([n, t]) => [n, t.runs, t.completed, t.failed, dollars(t.cost), seconds(t.latency_avg), seconds(t.latency_max)]))),
    h("section", { class: "card" }, h("h2", {}, "Models"), models.length ? table(
      ["model", "calls", "cached", "tokens in", "tokens out", "cost", "avg latency"],
      models.map(([n, t]) => [n, t.calls, t.cached, t.input_tokens, t.output_tokens, dollars(t.cost), seconds(t.latency_avg)]))
      : h("p", { class: "muted" }, "No model calls.")));
}
