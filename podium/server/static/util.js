// DOM helpers, formatting and the API client shared by every page. Text from the API is only ever
// inserted as text (textContent / attributes), never as HTML.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.setAttribute("class", v);
    else if (k === "text") el.textContent = v;
    else if (k in el && !(el instanceof SVGElement) && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An HTML element: h("a", {href: "#/runs", class: "x"}, "text", child, ...). */
export function h(tag, attrs, ...children) {
  return apply(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return apply(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

// -- formatting ---------------------------------------------------------------------------------------
export function when(ts) {
  if (ts === null || ts === undefined) return "";
  const d = new Date(ts * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function seconds(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "";
  if (v < 1) return `${(v * 1000).toFixed(1)} ms`;
  if (v < 120) return `${v.toFixed(2)} s`;
  if (v < 7200) return `${(v / 60).toFixed(1)} min`;
  return `${(v / 3600).toFixed(1)} h`;
}

export function dollars(v) {
  if (!v) return "$0";
  return v < 0.01 ? `$${v.toPrecision(2)}` : `$${v.toFixed(4)}`;
}

export function pretty(value) {
  if (value === undefined) return "";
  return JSON.stringify(value, null, 2);
}

export function short(value, width = 60) {
  let text = typeof value === "string" ? value : JSON.stringify(value);
  if (text === undefined) text = "";
  text = text.replace(/\s+/g, " ");
  return text.length <= width ? text : text.slice(0, width - 1) + "…";
}

export const TERMINAL = new Set(["completed", "failed", "cancelled"]);

export function badge(status, attrs = {}) {
  return h("span", { ...attrs, class: `badge status-${status} ${attrs.class || ""}`.trim() }, status);
}

// -- the API ------------------------------------------------------------------------------------------
const STORAGE = "podium.apiKey";

export function getKey() {
  return localStorage.getItem(STORAGE);
}

export function setKey(key) {
  if (key) localStorage.setItem(STORAGE, key);
  else localStorage.removeItem(STORAGE);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Every request sends the key as ``Authorization: Bearer``; a 401 signs the user out. */
export async function api(path, { method = "GET", body, params } = {}) {
  const key = getKey();
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let url = "/api" + path;
  if (params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.append(k, v);
    const text = q.toString();
    if (text) url += (url.includes("?") ? "&" : "?") + text;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, `the server cannot be reached (${err.message})`);
  }
  let data = {};
  try {
    data = await response.json();
  } catch {
    data = {};
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data.error || data.detail || response.statusText);
    if (response.status === 401) window.dispatchEvent(new CustomEvent("podium:unauthorized", { detail: error }));
    throw error;
  }
  return data;
}

// Journal kinds (docs/architecture.md): an EventSource only delivers named events it listens for.
const KINDS = [
  "start", "step", "attempt", "value", "timer", "approval", "decision", "signal", "receive", "child",
  "child_done", "cancel", "join", "cancelled", "listen", "unlisten", "milestone", "milestone_end",
  "withdrawn", "end", "message",
];

/** A server-sent event stream (the key goes in ``?key=``: EventSource cannot send headers). */
export function stream(path, onEvent, onState) {
  const url = `/api${path}${path.includes("?") ? "&" : "?"}key=${encodeURIComponent(getKey() || "")}`;
  const source = new EventSource(url);
  const handler = (msg) => {
    let data = {};
    try {
      data = JSON.parse(msg.data);
    } catch {
      return;
    }
    onEvent(data);
  };
  for (const kind of KINDS) source.addEventListener(kind, handler);
  source.addEventListener("open", () => onState && onState(true));
  source.addEventListener("error", () => onState && onState(false));
  return () => source.close();
}

/** Call ``fn`` once, ``ms`` after the last of a burst of calls. */
export function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

/** Deep equality of JSON values. */
export function sameJson(a, b) {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(v) {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
  }
  return v;
}

export const PALETTE = ["#3b82f6", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#14b8a6", "#ec4899", "#84cc16",
  "#6366f1", "#f97316"];
