// The Podium dashboard: a single page with hash routes.
//   #/login  #/runs  #/runs/<id>  #/inbox  #/charts  #/prompts  #/prompts/<name>
import { api, clear, getKey, h, setKey } from "./util.js";
import { runsPage } from "./runs.js";
import { runPage } from "./run.js";
import { inboxPage, refreshInboxCount } from "./inbox.js";
import { chartsPage } from "./charts.js";
import { promptPage, promptsPage } from "./prompts.js";

const main = document.getElementById("main");
let cleanup = null;
let me = null; // {id, name, role} of the key in use

export function whoami() {
  return me;
}

function setLive(on) {
  const dot = document.getElementById("live");
  dot.classList.toggle("on", !!on);
  dot.title = on ? "live updates connected" : "live updates disconnected (retrying)";
}

function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query) };
}

async function ensureLogin() {
  if (!getKey()) return false;
  if (me) return true;
  try {
    me = await api("/whoami");
  } catch (err) {
    if (err.status === 401) setKey(null);
    loginPage(err.status === 401 ? "That API key is unknown or revoked." : err.message);
    return null;
  }
  document.getElementById("who").textContent = `${me.name} (${me.role})`;
  document.getElementById("who").dataset.role = me.role;
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = false;
  return true;
}

function loginPage(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("who").textContent = "";
  const input = h("input", {
    id: "login-key", type: "password", autocomplete: "off", placeholder: "pdm_…", spellcheck: "false",
    "aria-label": "API key",
  });
  const error = h("p", { id: "login-error", class: "error", role: "alert" }, message || "");
  const form = h("form", {
    class: "card login",
    onsubmit: async (ev) => {
      ev.preventDefault();
      const key = input.value.trim();
      if (!key) {
        error.textContent = "Paste an API key first.";
        return;
      }
      setKey(key);
      me = null;
      const ok = await ensureLogin();
      if (ok) {
        const next = sessionStorage.getItem("podium.next") || "#/runs";
        sessionStorage.removeItem("podium.next");
        if (location.hash === next) route();
        else location.hash = next;
      }
    },
  },
  h("h1", {}, "Sign in"),
  h("p", { class: "muted" },
    "Paste an API key (create one with ", h("code", {}, "podium keys create NAME --role viewer"), "). ",
    "It is kept in this browser's localStorage and sent as ", h("code", {}, "Authorization: Bearer"), "."),
  h("label", { for: "login-key" }, "API key"), input,
  h("button", { type: "submit", id: "login-submit", class: "primary" }, "Log in"),
  error);
  clear(main, form);
  input.focus();
}

async function route() {
  if (cleanup) {
    try {
      cleanup();
    } catch (err) {
      console.error(err);
    }
    cleanup = null;
  }
  setLive(false);
  const { parts, params } = parseRoute();
  if (parts[0] === "login" || !getKey()) {
    if (parts[0] && parts[0] !== "login") sessionStorage.setItem("podium.next", location.hash);
    loginPage();
    return;
  }
  const ok = await ensureLogin();
  if (!ok) return;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.nav === (parts[0] || "runs"));
  }
  const ctx = { main, params, me, setLive };
  try {
    if (!parts[0] || parts[0] === "runs") {
      cleanup = parts[1] ? runPage(ctx, parts[1]) : runsPage(ctx);
    } else if (parts[0] === "inbox") {
      cleanup = inboxPage(ctx);
    } else if (parts[0] === "charts") {
      cleanup = chartsPage(ctx);
    } else if (parts[0] === "prompts") {
      cleanup = parts[1] ? promptPage(ctx, parts[1]) : promptsPage(ctx);
    } else {
      clear(main, h("p", { class: "error" }, `No page ${location.hash}.`), h("a", { href: "#/runs" }, "Runs"));
    }
  } catch (err) {
    clear(main, h("p", { class: "error" }, String(err)));
  }
  refreshInboxCount();
}

window.addEventListener("podium:unauthorized", () => {
  me = null;
  setKey(null);
  if (cleanup) cleanup();
  cleanup = null;
  loginPage("The API key was refused (unknown or revoked). Sign in again.");
});
window.addEventListener("hashchange", route);
document.getElementById("logout").addEventListener("click", () => {
  setKey(null);
  me = null;
  location.hash = "#/login";
});
route();
