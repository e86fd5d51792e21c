// The prompt registry: #/prompts lists prompts; #/prompts/<name> shows versions and labels, a diff of any
// two versions, and (for operators and admins) an editor that pushes a new version and moves labels.
import { api, clear, h, when } from "./util.js";

const WRITERS = new Set(["operator", "admin"]);

export function promptsPage({ main }) {
  const tbody = h("tbody", { id: "prompts-body" });
  const note = h("p", { class: "muted", id: "prompts-note" }, "Loading…");
  clear(main,
    h("div", { class: "toolbar" }, h("h1", {}, "Prompts")),
    note,
    h("table", { class: "runs", id: "prompts" },
      h("thead", {}, h("tr", {}, ["prompt", "latest", "labels", "A/B split", "updated"].map((c) => h("th", {}, c)))),
      tbody));
  let closed = false;
  api("/prompts").then(({ prompts }) => {
    if (closed) return;
    note.textContent = prompts.length ? "" : "No prompts yet: push one with `podium prompts push FILE NAME`.";
    for (const p of prompts) {
      tbody.append(h("tr", { "data-prompt": p.name },
        h("td", {}, h("a", { class: "prompt-link", href: `#/prompts/${encodeURIComponent(p.name)}` }, p.name)),
        h("td", {}, String(p.latest)),
        h("td", {}, Object.entries(p.labels).map(([k, v]) => h("span", { class: "plabel" }, `${k} → ${v}`))),
        h("td", {}, p.split ? Object.entries(p.split).map(([k, v]) => `${k} ${v}%`).join(", ") : ""),
        h("td", {}, when(p.updated_at))));
    }
  }).catch((err) => {
    note.className = "error";
    note.textContent = err.message;
  });
  return () => { closed = true; };
}

function diffView(text) {
  if (!text) return [h("span", { class: "muted" }, "no differences")];
  return text.split("\n").filter((line, i, all) => line || i < all.length - 1).map((line) => {
    let cls = "ctx";
    if (line.startsWith("+++") || line.startsWith("---")) cls = "file";
    else if (line.startsWith("+")) cls = "add";
    else if (line.startsWith("-")) cls = "del";
    else if (line.startsWith("@@")) cls = "hunk";
    return h("span", { class: `d-${cls}` }, line + "\n");
  });
}

export function promptPage({ main, me }, name) {
  const canWrite = WRITERS.has(me.role);
  let closed = false;
  const enc = encodeURIComponent(name);
  const labelsEl = h("div", { id: "prompt-labels", class: "plabels" });
  const versionsBody = h("tbody", { id: "versions-body" });
  const viewTitle = h("h2", { id: "prompt-view-title" }, "");
  const viewSystem = h("pre", { id: "prompt-view-system", class: "template", hidden: true });
  const view = h("pre", { id: "prompt-view", class: "template" });
  const diffA = h("select", { id: "diff-a", "aria-label": "from version" });
  const diffB = h("select", { id: "diff-b", "aria-label": "to version" });
  const diffOut = h("pre", { id: "diff", class: "diff" });
  const editor = h("textarea", { id: "editor", class: "template-editor", rows: 8, spellcheck: "false",
    "aria-label": "template", readonly: !canWrite });
  const editorSystem = h("textarea", { id: "editor-system", class: "template-editor", rows: 2, spellcheck: "false",
    "aria-label": "system text", placeholder: "system text (optional)", readonly: !canWrite });
  const editorLabel = h("input", { id: "editor-label", type: "text", placeholder: "label (optional), e.g. staging",
    "aria-label": "label for the new version", disabled: !canWrite });
  const why = canWrite ? undefined : `the ${me.role} role may not change prompts`;
  const push = h("button", { id: "push", type: "button", class: "primary", disabled: !canWrite, title: why }, "Push new version");
  const pushMessage = h("p", { id: "push-message", class: "message", role: "status" });
  const moveVersion = h("select", { id: "label-version", "aria-label": "version", disabled: !canWrite });
  const moveName = h("input", { id: "label-name", type: "text", value: "production", "aria-label": "label", disabled: !canWrite });
  const move = h("button", { id: "label-move", type: "button", disabled: !canWrite, title: why }, "Move label");
  const rollback = h("button", { id: "rollback", type: "button", class: "danger", disabled: !canWrite, title: why }, "Roll back label");
  const moveMessage = h("p", { id: "label-message", class: "message", role: "status" });
  const note = h("p", { class: "muted", id: "prompt-note" }, "Loading…");
  const readOnly = canWrite ? null : h("p", { class: "notice", id: "prompt-readonly", role: "note" },
    `You are signed in as ${me.name} with the ${me.role} role: you can read prompts, but pushing versions and ` +
    "moving labels need a key with the operator or admin role.");

  clear(main,
    h("div", { class: "toolbar" }, h("h1", {}, h("a", { href: "#/prompts" }, "Prompts"), " / ",
      h("span", { id: "prompt-name" }, name)), h("span", { class: "spacer" }), labelsEl),
    readOnly, note,
    h("div", { class: "prompt-grid" },
      h("section", { class: "card" }, h("h2", {}, "Versions"),
        h("table", { id: "versions" },
          h("thead", {}, h("tr", {}, ["version", "labels", "hash", "variables", "created"].map((c) => h("th", {}, c)))),
          versionsBody),
        viewTitle, viewSystem, view),
      h("section", { class: "card" }, h("h2", {}, "Diff"),
        h("div", { class: "actions" }, diffA, " → ", diffB), diffOut)),
    h("section", { class: "card", id: "prompt-editor" }, h("h2", {}, "Edit"),
      h("label", { for: "editor-system" }, "system"), editorSystem,
      h("label", { for: "editor" }, "template (Jinja2, sandboxed)"), editor,
      h("div", { class: "actions" }, editorLabel, push), pushMessage,
      h("h2", {}, "Labels"),
      h("div", { class: "actions" }, moveName, " → ", moveVersion, move, rollback), moveMessage));

  let data = null;
  let selected = null;

  function show(v) {
    selected = v.version;
    viewTitle.textContent = `${name}@${v.version}`;
    viewSystem.hidden = !v.system;
    viewSystem.textContent = v.system || "";
    view.textContent = v.template;
    for (const tr of versionsBody.children) tr.classList.toggle("selected", tr.dataset.version === String(v.version));
  }

  async function showDiff() {
    if (!diffA.value || !diffB.value) return;
    try {
      const { diff } = await api(`/prompts/${enc}/diff`, { params: { a: diffA.value, b: diffB.value } });
      if (!closed) clear(diffOut, diffView(diff));
    } catch (err) {
      clear(diffOut, h("span", { class: "error" }, err.message));
    }
  }
  diffA.addEventListener("change", showDiff);
  diffB.addEventListener("change", showDiff);

  async function load(keepEditor) {
    data = await api(`/prompts/${enc}`);
    if (closed) return;
    note.textContent = data.split
      ? "A/B split: " + Object.entries(data.split).map(([k, v]) => `${k} ${v}%`).join(", ") : "";
    const byVersion = {};
    for (const [label, v] of Object.entries(data.labels)) (byVersion[v] ||= []).push(label);
    clear(labelsEl, Object.entries(data.labels).map(([k, v]) =>
      h("span", { class: "plabel", "data-label": k, "data-version": String(v) }, `${k} → ${v}`)));
    clear(versionsBody, [...data.versions].reverse().map((v) => {
      const tr = h("tr", { "data-version": String(v.version), class: "clickable" },
        h("td", {}, h("button", { type: "button", class: "link version-link" }, `v${v.version}`)),
        h("td", {}, (byVersion[v.version] || []).map((l) => h("span", { class: "plabel" }, l))),
        h("td", { class: "mono" }, v.hash),
        h("td", {}, v.variables.join(", ")),
        h("td", {}, when(v.created_at)));
      tr.addEventListener("click", (ev) => { ev.preventDefault(); show(v); });
      return tr;
    }));
    const options = () => data.versions.map((v) => h("option", { value: String(v.version) }, `v${v.version}`));
    const [a, b] = [diffA.value, diffB.value];
    clear(diffA, options());
    clear(diffB, options());
    clear(moveVersion, options());
    const latest = data.versions[data.versions.length - 1];
    const prod = data.labels.production;
    diffA.value = a || String(prod && prod !== latest.version ? prod : Math.max(1, latest.version - 1));
    diffB.value = b && Number(b) <= latest.version ? b : String(latest.version);
    moveVersion.value = String(latest.version);
    show(data.versions.find((v) => v.version === (selected || prod || latest.version)) || latest);
    if (!keepEditor) {
      editor.value = latest.template;
      editorSystem.value = latest.system || "";
    }
    showDiff();
  }

  function say(el, text, ok) {
    el.className = `message ${ok ? "ok" : "error"}`;
    el.textContent = text;
  }

  push.addEventListener("click", async () => {
    push.disabled = true;
    try {
      const body = { template: editor.value, system: editorSystem.value.trim() ? editorSystem.value : null };
      if (editorLabel.value.trim()) body.label = editorLabel.value.trim();
      const res = await api(`/prompts/${enc}/versions`, { method: "POST", body });
      const v = res.prompt.version;
      say(pushMessage, res.created ? `Pushed version ${v}` + (body.label ? ` (${body.label})` : "") + "."
        : `Unchanged: version ${v} holds this content.`, true);
      selected = v;
      diffB.value = String(v);
      await load(true);
    } catch (err) {
      say(pushMessage, err.message, false);
    } finally {
      push.disabled = !canWrite;
    }
  });

  move.addEventListener("click", async () => {
    const label = moveName.value.trim();
    try {
      const res = await api(`/prompts/${enc}/labels/${encodeURIComponent(label)}`,
        { method: "PUT", body: { version: Number(moveVersion.value) } });
      say(moveMessage, `${label} → v${res.version}`, true);
      await load(true);
    } catch (err) {
      say(moveMessage, err.message, false);
    }
  });

  rollback.addEventListener("click", async () => {
    const label = moveName.value.trim() || "production";
    try {
      const res = await api(`/prompts/${enc}/labels/${encodeURIComponent(label)}/rollback`, { method: "POST" });
      say(moveMessage, `${label} rolled back to v${res.version}`, true);
      await load(true);
    } catch (err) {
      say(moveMessage, err.message, false);
    }
  });

  load(false).catch((err) => {
    note.className = "error";
    note.textContent = err.message;
  });
  return () => { closed = true; };
}
