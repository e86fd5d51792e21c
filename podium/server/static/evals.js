// Evaluations (read-only): the list with each variant's score, and one evaluation's variants side by side
// with every item's result linked to its run. Evaluations are started with `podium eval` (docs/evals.md).
import { api, clear, dollars, h, seconds, short, when } from "./util.js";

const score = (v) => (v === null || v === undefined ? "–" : v.toFixed(3));

export function evalsPage({ main }, evalId) {
  let closed = false;
  clear(main, h("p", { class: "muted" }, "Loading…"));
  (evalId ? one(evalId) : list()).catch((err) => {
    if (!closed) clear(main, h("p", { class: "error", id: "evals-error" }, err.message));
  });

  async function list() {
    const [{ evals }, { datasets }] = await Promise.all([api("/evals", { params: { limit: 100 } }), api("/datasets")]);
    if (closed) return;
    const rows = evals.map((e) => h("tr", { "data-eval": e.id },
      h("td", {}, h("a", { class: "mono eval-link", href: `#/evals/${encodeURIComponent(e.id)}` }, e.id)),
      h("td", {}, when(e.created_at)), h("td", {}, `${e.dataset} v${e.dataset_version}`), h("td", {}, e.flow),
      h("td", {}, e.status),
      h("td", { class: "variant-scores" }, e.variants.map((v) => `${v.name} ${score(v.score)}`).join("   "))));
    clear(main,
      h("div", { class: "toolbar" }, h("h1", {}, "Evaluations")),
      evals.length
        ? h("table", { class: "runs", id: "evals" },
          h("thead", {}, h("tr", {}, ["eval", "when", "dataset", "flow", "status", "variant scores"].map((c) => h("th", {}, c)))),
          h("tbody", {}, rows))
        : h("p", { class: "muted" }, "No evaluations yet: run ", h("code", {}, "podium eval DATASET --flow MODULE:FLOW"), "."),
      h("h2", { class: "gap" }, "Datasets"),
      h("table", { class: "runs", id: "datasets" },
        h("thead", {}, h("tr", {}, ["dataset", "items", "version", "created", "description"].map((c) => h("th", {}, c)))),
        h("tbody", {}, datasets.map((d) => h("tr", { "data-dataset": d.name },
          h("td", {}, d.name), h("td", {}, String(d.items)), h("td", {}, String(d.version)), h("td", {}, when(d.created_at)),
          h("td", {}, d.description))))));
  }

  async function one(id) {
    const e = await api(`/evals/${encodeURIComponent(id)}`);
    if (closed) return;
    const summary = h("table", { class: "runs", id: "eval-variants" },
      h("thead", {}, h("tr", {}, ["variant", "pins", "items", ...e.scorers, "score", "errors", "cost", "p50", "p90"]
        .map((c) => h("th", {}, c)))),
      h("tbody", {}, e.variants.map((v) => h("tr", { "data-variant": v.name },
        h("td", {}, v.name), h("td", { class: "mono" }, Object.entries(v.pins).map(([k, x]) => `${k}=${x}`).join(", ")),
        h("td", {}, String(v.items)), e.scorers.map((s) => h("td", {}, score(v.scores[s]))),
        h("td", { class: "score" }, score(v.score)), h("td", {}, v.errors ? String(v.errors) : ""),
        h("td", {}, dollars(v.cost)), h("td", {}, seconds(v.latency_p50)), h("td", {}, seconds(v.latency_p90))))));
    const items = h("table", { class: "runs", id: "eval-items" },
      h("thead", {}, h("tr", {}, ["variant", "item", "run", ...e.scorers, "cost", "latency", "output / error"]
        .map((c) => h("th", {}, c)))),
      h("tbody", {}, e.results.map((r) => h("tr", { "data-item": `${r.variant}/${r.item_id}`, class: r.error ? "failed" : "" },
        h("td", {}, r.variant), h("td", { class: "mono" }, r.item_id),
        h("td", {}, r.run_id ? h("a", { class: "mono run-link", href: `#/runs/${encodeURIComponent(r.run_id)}` }, r.run_id) : ""),
        e.scorers.map((s) => h("td", {}, score(r.scores[s]))), h("td", {}, dollars(r.cost)), h("td", {}, seconds(r.latency)),
        h("td", { class: r.error ? "error" : "" }, r.error || short(r.output, 60))))));
    clear(main,
      h("div", { class: "toolbar" }, h("a", { href: "#/evals" }, "← Evaluations"), h("h1", { class: "mono" }, e.id)),
      h("p", {}, `${e.flow} on ${e.dataset} (version ${e.dataset_version}) · ${e.status} · started ${when(e.created_at)}`),
      summary, h("h2", { class: "gap" }, "Items"), items);
  }

  return () => {
    closed = true;
  };
}
