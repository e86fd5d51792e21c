// The approval inbox: pending approvals with their payload; approve (optionally with an edited payload),
// or reject, with a comment. Keys whose role may not decide see the inbox read-only.
import { api, clear, debounce, h, pretty, sameJson, stream, when } from "./util.js";

const DECIDERS = new Set(["approver", "admin"]);

export async function refreshInboxCount() {
  const el = document.getElementById("inbox-count");
  try {
    const { approvals } = await api("/approvals");
    el.textContent = String(approvals.length);
    el.hidden = approvals.length === 0;
  } catch {
    el.hidden = true;
  }
}

export function inboxPage({ main, params, me, setLive }) {
  const only = params.get("run") || "";
  const canDecide = DECIDERS.has(me.role);
  let closed = false;
  const cards = new Map(); // "run|position" -> card
  const list = h("div", { id: "approvals", class: "approvals" });
  const note = h("p", { class: "muted", id: "inbox-note" }, "Loading…");
  const roleNote = canDecide ? null : h("p", { class: "notice", id: "inbox-readonly", role: "note" },
    `You are signed in as ${me.name} with the ${me.role} role: you can see what waits for a decision, ` +
    "but approving and rejecting need a key with the approver or admin role.");
  clear(main,
    h("div", { class: "toolbar" }, h("h1", {}, "Approval inbox"), h("span", { class: "spacer" }),
      only ? h("span", {}, "run ", h("span", { class: "mono" }, only), " · ", h("a", { href: "#/inbox" }, "show all")) : null),
    roleNote, note, list);

  function card(a) {
    const textarea = h("textarea", {
      class: "payload", rows: Math.min(14, Math.max(3, pretty(a.payload).split("\n").length)),
      spellcheck: "false", "aria-label": "payload (JSON)", readonly: !canDecide,
    });
    textarea.value = pretty(a.payload ?? null);
    const comment = h("input", { type: "text", class: "comment", placeholder: "comment (optional)", "aria-label": "comment", disabled: !canDecide });
    const message = h("p", { class: "message", role: "status" });
    const why = canDecide ? undefined : `the ${me.role} role may not decide approvals`;
    const approve = h("button", { type: "button", class: "primary approve", disabled: !canDecide, title: why }, "Approve");
    const reject = h("button", { type: "button", class: "danger reject", disabled: !canDecide, title: why }, "Reject");
    const el = h("article", { class: "card approval", "data-run": a.run_id, "data-name": a.name },
      h("header", {},
        h("h2", {}, a.name),
        h("span", { class: "muted" }, a.flow, " · ",
          h("a", { class: "mono", href: `#/runs/${encodeURIComponent(a.run_id)}` }, a.run_id), " · since ",
          when(a.requested_at))),
      h("label", {}, "payload (JSON: edit it to approve a changed version)"), textarea, comment,
      h("div", { class: "actions" }, approve, reject), message);

    textarea.addEventListener("input", () => {
      message.textContent = "";
      textarea.classList.remove("invalid");
    });

    async function decide(approved) {
      message.className = "message";
      const body = { name: a.name };
      if (comment.value.trim()) body.comment = comment.value.trim();
      if (approved) {
        let edited;
        try {
          edited = JSON.parse(textarea.value);
        } catch (err) {
          textarea.classList.add("invalid");
          message.className = "message error";
          message.textContent = `The payload is not valid JSON (${err.message}); nothing was sent.`;
          textarea.focus();
          return;
        }
        if (!sameJson(edited, a.payload ?? null)) body.payload = edited;
      }
      approve.disabled = reject.disabled = true;
      try {
        await api(`/runs/${encodeURIComponent(a.run_id)}/${approved ? "approve" : "reject"}`, { method: "POST", body });
        el.classList.add("decided");
        message.textContent = approved
          ? `Approved${"payload" in body ? " with an edited payload" : ""}. The run resumes.`
          : "Rejected. The run resumes.";
        textarea.readOnly = true;
        comment.disabled = true;
        setTimeout(() => {
          if (cards.get(keyOf(a)) === el) {
            cards.delete(keyOf(a));
            el.remove();
            empty();
          }
        }, 3000);
        refreshInboxCount();
      } catch (err) {
        message.className = "message error";
        message.textContent = err.status === 409 ? `Too late: ${err.message}` : err.message;
        approve.disabled = reject.disabled = !canDecide || err.status === 409;
      }
    }
    approve.addEventListener("click", () => decide(true));
    reject.addEventListener("click", () => decide(false));
    return el;
  }

  const keyOf = (a) => `${a.run_id}|${a.position}`;
  const empty = () => {
    note.textContent = cards.size ? "" : "Nothing waits for a decision.";
  };

  // New approvals are added and gone ones removed, leaving cards being edited as they are.
  async function load() {
    try {
      const { approvals } = await api("/approvals", { params: { run_id: only || undefined } });
      if (closed) return;
      const seen = new Set();
      for (const a of approvals) {
        const k = keyOf(a);
        seen.add(k);
        if (!cards.has(k)) {
          const el = card(a);
          cards.set(k, el);
          list.append(el);
        }
      }
      for (const [k, el] of cards) {
        if (!seen.has(k) && !el.classList.contains("decided")) {
          cards.delete(k);
          el.remove();
        }
      }
      empty();
    } catch (err) {
      note.className = "error";
      note.textContent = err.message;
    }
  }

  const reload = debounce(() => {
    load();
    refreshInboxCount();
  }, 200);
  const stop = stream("/events", (ev) => {
    if (["approval", "decision", "withdrawn", "end"].includes(ev.kind)) reload();
  }, (on) => {
    setLive(on);
    if (on) reload();
  });
  load();
  return () => {
    closed = true;
    stop();
    reload.cancel();
  };
}
