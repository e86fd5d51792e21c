// The flow's path as a graph, drawn from the timeline rows' positions alone: a task's positions follow one
// another vertically; a fan at position p (ctx.gather / ctx.map / a race / a scope) gives branch i the
// positions "p.i.0", "p.i.1", ..., drawn side by side between a fork and a join. "p~k" is the k-th
// compensation (undo) of the region at p, drawn as a dashed branch; "g/..." is generation g of a run that
// continued as new.
import { h, s, short } from "./util.js";

const NW = 150; // node width
const NH = 34; // node height
const VG = 20; // vertical gap
const HG = 16; // horizontal gap between branches
const FORK = 12; // a fork diamond's half size
const JOIN = 6; // a join dot's radius
const PAD = 12;

export function parsePosition(position) {
  let gen = 0;
  let rest = position;
  const m = /^(\d+)\/(.*)$/.exec(position);
  if (m) {
    gen = Number(m[1]);
    rest = m[2];
  }
  const toks = (rest.match(/\d+|~/g) || []).map((t) => (t === "~" ? "~" : Number(t)));
  return { gen, toks };
}

function newSeq() {
  return { items: new Map() };
}

function insert(seq, toks, row) {
  const idx = toks.length ? toks[0] : -1;
  if (!seq.items.has(idx)) seq.items.set(idx, { rows: [], branches: new Map() });
  const item = seq.items.get(idx);
  if (toks.length <= 1) {
    item.rows.push(row);
    return;
  }
  const br = toks[1];
  if (!item.branches.has(br)) item.branches.set(br, newSeq());
  insert(item.branches.get(br), toks.slice(2), row);
}

const order = (a, b) => (a === "~" ? 1 : b === "~" ? -1 : a - b);

/** The tree of sequences and fans that the positions describe (one sequence per generation). */
export function buildTree(rows) {
  const gens = new Map();
  for (const row of rows) {
    const { gen, toks } = parsePosition(row.position);
    if (!gens.has(gen)) gens.set(gen, newSeq());
    insert(gens.get(gen), toks, row);
  }
  return [...gens.entries()].sort((a, b) => a[0] - b[0]);
}

function measureSeq(seq) {
  let w = 0;
  let hgt = 0;
  const items = [...seq.items.keys()].sort(order);
  for (const k of items) {
    const m = measureItem(seq.items.get(k));
    w = Math.max(w, m.w);
    hgt += m.h;
  }
  hgt += VG * Math.max(0, items.length - 1);
  seq.w = w;
  seq.h = hgt;
  return seq;
}

function measureItem(item) {
  if (!item.branches.size) {
    item.w = NW;
    item.h = NH;
    return item;
  }
  const head = item.rows.length ? NH : FORK * 2;
  let bw = 0;
  let bh = 0;
  for (const b of item.branches.values()) {
    measureSeq(b);
    bw += b.w;
    bh = Math.max(bh, b.h);
  }
  bw += HG * (item.branches.size - 1);
  item.w = Math.max(bw, NW);
  item.h = head + VG + bh + VG + JOIN * 2;
  item.head = head;
  item.bh = bh;
  return item;
}

export function graph(run, rows, { selected, onSelect }) {
  if (!rows.length) return h("p", { class: "muted" }, "No steps yet.");
  const tree = buildTree(rows);
  const nodes = [];
  const edges = [];
  const labels = [];

  const node = (item, cx, y) => {
    const primary = item.rows.find((r) => r.kind !== "cancel") || item.rows[0];
    const cancelled = item.rows.some((r) => r.kind === "cancel");
    const key = `${primary.position}|${primary.kind}`;
    const g = s("g", {
      class: `node status-${primary.status}${selected === key ? " selected" : ""}${cancelled ? " cancelled" : ""}`,
      transform: `translate(${cx - NW / 2},${y})`, tabindex: "0", role: "button",
      "data-position": primary.position, "data-kind": primary.kind, "data-status": primary.status,
      onclick: () => onSelect(primary),
      onkeydown: (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          onSelect(primary);
        }
      },
    },
    s("title", {}, `${primary.position}: ${primary.kind} ${primary.name} (${primary.status})` +
      (primary.attempts > 1 ? `, ${primary.attempts} attempts` : "") + (cancelled ? ", region cancelled" : "")),
    s("rect", { width: NW, height: NH, rx: 6 }),
    s("text", { x: 8, y: 14, class: "n-name" }, short(primary.name || primary.kind, 20)),
    s("text", { x: 8, y: 27, class: "n-pos" },
      `${primary.position} · ${primary.kind === "cancel" ? "cancelled" : primary.status}` +
      (primary.attempts > 1 ? ` · ${primary.attempts}×` : "")));
    nodes.push(g);
  };

  // Returns the item's top and bottom anchors.
  const placeItem = (item, cx, y) => {
    if (!item.branches.size) {
      node(item, cx, y);
      return { top: [cx, y], bottom: [cx, y + NH] };
    }
    let headBottom;
    if (item.rows.length) {
      node(item, cx, y);
      headBottom = [cx, y + NH];
    } else {
      nodes.push(s("path", {
        class: "fork", d: `M${cx},${y} l${FORK},${FORK} l${-FORK},${FORK} l${-FORK},${-FORK} z`,
      }, s("title", {}, "fork: branches run side by side")));
      headBottom = [cx, y + FORK * 2];
    }
    const by = y + item.head + VG;
    const jy = by + item.bh + VG + JOIN;
    let x = cx - ([...item.branches.values()].reduce((a, b) => a + b.w, 0) + HG * (item.branches.size - 1)) / 2;
    for (const br of [...item.branches.keys()].sort(order)) {
      const seq = item.branches.get(br);
      const bcx = x + seq.w / 2;
      const anchors = placeSeq(seq, bcx, by);
      const undo = br === "~";
      edges.push(s("path", { class: `edge${undo ? " undo" : ""}`, d: curve(headBottom, anchors.top) }));
      edges.push(s("path", { class: `edge${undo ? " undo" : ""}`, d: curve(anchors.bottom, [cx, jy - JOIN]) }));
      labels.push(s("text", { x: bcx + 4, y: by - 5, class: "b-label" }, undo ? "undo" : `branch ${br}`));
      x += seq.w + HG;
    }
    nodes.push(s("circle", { cx, cy: jy, r: JOIN, class: "join" }, s("title", {}, "join")));
    return { top: [cx, y], bottom: [cx, jy + JOIN] };
  };

  const placeSeq = (seq, cx, y) => {
    let top = null;
    let prev = null;
    for (const k of [...seq.items.keys()].sort(order)) {
      const item = seq.items.get(k);
      const a = placeItem(item, cx, y);
      if (prev) edges.push(s("path", { class: "edge", d: curve(prev, a.top) }));
      if (!top) top = a.top;
      prev = a.bottom;
      y += item.h + VG;
    }
    return { top, bottom: prev };
  };

  let width = NW;
  for (const [, seq] of tree) width = Math.max(width, measureSeq(seq).w);
  const cx = PAD + width / 2;
  let y = PAD;
  // The start, every generation in turn, and the end (coloured by the run's status once it ended).
  nodes.push(s("circle", { cx, cy: y + 8, r: 8, class: "terminal start" }, s("title", {}, `start: ${run.flow}`)));
  let prev = [cx, y + 16];
  y += 16 + VG;
  for (const [gen, seq] of tree) {
    if (tree.length > 1) {
      labels.push(s("text", { x: PAD, y: y - 6, class: "b-label" }, `generation ${gen}`));
    }
    const a = placeSeq(seq, cx, y);
    edges.push(s("path", { class: "edge", d: curve(prev, a.top) }));
    prev = a.bottom;
    y += seq.h + VG;
  }
  const ended = run.status === "completed" || run.status === "failed" || run.status === "cancelled";
  nodes.push(s("circle", { cx, cy: y + 8, r: 8, class: `terminal end status-${ended ? run.status : "open"}` },
    s("title", {}, ended ? `end: ${run.status}` : "not finished")));
  edges.push(s("path", { class: `edge${ended ? "" : " pending"}`, d: curve(prev, [cx, y]) }));
  y += 16 + PAD;

  const totalW = width + PAD * 2;
  return s("svg", {
    id: "graph-svg", viewBox: `0 0 ${totalW} ${y}`, width: totalW, height: y, role: "img",
    "aria-label": "the flow's path",
  }, s("g", { class: "edges" }, edges), s("g", { class: "labels" }, labels), s("g", { class: "nodes" }, nodes));
}

function curve([x1, y1], [x2, y2]) {
  if (x1 === x2) return `M${x1},${y1} L${x2},${y2}`;
  const my = (y1 + y2) / 2;
  return `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`;
}
