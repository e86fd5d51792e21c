// Feedback on a step's output: thumbs up or down with a comment, sent to POST /api/runs/{id}/feedback and
// stored linked to the step's model and prompt version. The box keeps what was typed across live redraws.
import { api, h, clear, short, when } from "./util.js";

export function feedbackBox(runId, row) {
  let score = null;
  const up = h("button", { class: "fb-up", type: "button", title: "Thumbs up", "aria-pressed": "false" }, "▲ Good");
  const down = h("button", { class: "fb-down", type: "button", title: "Thumbs down", "aria-pressed": "false" }, "▼ Bad");
  const comment = h("input", { class: "fb-comment", type: "text", placeholder: "comment (optional)", maxlength: "2000" });
  const send = h("button", { class: "fb-send primary", type: "button", disabled: true }, "Send feedback");
  const status = h("p", { class: "fb-status muted" });
  const list = h("ul", { class: "fb-list" });

  function pick(value) {
    score = score === value ? null : value;
    up.setAttribute("aria-pressed", String(score === 1));
    down.setAttribute("aria-pressed", String(score === -1));
    send.disabled = score === null && !comment.value.trim();
  }
  up.addEventListener("click", () => pick(1));
  down.addEventListener("click", () => pick(-1));
  comment.addEventListener("input", () => { send.disabled = score === null && !comment.value.trim(); });

  async function refresh() {
    try {
      const data = await api(`/runs/${encodeURIComponent(runId)}/feedback`);
      const mine = data.feedback.filter((f) => f.step === row.position);
      clear(list, mine.map((f) => h("li", { "data-feedback": f.id },
        f.score === 1 ? "▲ good " : f.score === -1 ? "▼ bad " : "",
        f.comment ? `“${f.comment}” ` : "",
        f.correction !== null && f.correction !== undefined ? h("span", { class: "mono" }, `→ ${short(f.correction, 40)} `) : null,
        h("span", { class: "muted" }, [f.author, f.prompt ? `prompt ${f.prompt.name}@${f.prompt.version}` : null,
          when(f.created_at)].filter(Boolean).join(" · ")))));
    } catch (err) {
      status.textContent = err.message;
    }
  }

  send.addEventListener("click", async () => {
    send.disabled = true;
    status.textContent = "Sending…";
    const body = { step: row.position, comment: comment.value.trim() || null };
    if (score !== null) body.score = score;
    try {
      await api(`/runs/${encodeURIComponent(runId)}/feedback`, { method: "POST", body });
      status.textContent = "Thanks: feedback recorded.";
      status.className = "fb-status muted";
      comment.value = "";
      score = null;
      pick(null);
      await refresh();
    } catch (err) {
      status.textContent = err.message;
      status.className = "fb-status error";
      send.disabled = false;
    }
  });

  refresh();
  return h("div", { class: "feedback", "data-position": row.position },
    h("h3", {}, "feedback"),
    h("div", { class: "fb-controls" }, up, down, comment, send),
    status, list);
}
