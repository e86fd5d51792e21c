"""A run's journal turned into rows a person can read (used by ``podium show`` and the API)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..storage.base import Event
from .codec import to_json


@dataclass(slots=True)
class TimelineRow:
    """One position of a run: a step, timer, wait or child run, with its outcome."""

    position: str
    kind: str
    name: str
    status: str  # "ok" | "failed" | "waiting" | "fired" | "received" | "approved" | "decided" | ...
    started: float | None = None
    ended: float | None = None
    attempts: int = 1
    detail: Any = None
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return max(0.0, self.ended - self.started)


def _key(position: str) -> tuple[int, ...]:
    # "2.1.0" sorts under "2"; a region's compensations ("2~0") after its work; "3/0" is generation 3.
    return tuple(10**9 if p == "~" else int(p) for p in re.findall(r"\d+|~", position))


def timeline(events: list[Event], *, now: float) -> list[TimelineRow]:
    """Rows in position order (branch positions sort under the gather that made them)."""
    rows: dict[str, TimelineRow] = {}
    attempts: dict[str, list[dict[str, Any]]] = {}
    decisions: dict[str, Event] = {}
    children: dict[str, Event] = {}
    closed: dict[str, Event] = {}  # milestone_end / unlisten / receive by position
    for e in events:
        if e.kind in ("milestone_end", "unlisten", "receive"):
            closed[e.step] = e
        if e.kind == "attempt":
            sid = e.step.rpartition("@")[0]
            attempts.setdefault(sid, []).append({**e.data["error"], "at": e.at})
        elif e.kind == "decision":
            decisions[e.step] = e
        elif e.kind == "child_done":
            children[e.step] = e
    for e in events:
        d = e.data or {}
        if e.kind == "step":
            failed = "error" in d
            rows[e.step] = TimelineRow(
                e.step,
                "step",
                e.name or "",
                "failed" if failed else "ok",
                d.get("started"),
                d.get("ended"),
                d.get("attempts", 1),
                d.get("error") if failed else d.get("result"),
            )
        elif e.kind == "value":
            if (e.name or "").startswith("prompt:") and isinstance(d, dict):  # the resolution, not the text
                d = {k: d.get(k) for k in ("name", "version", "label", "arm", "hash")}
            rows[e.step] = TimelineRow(e.step, "value", e.name or "", "ok", e.at, e.at, detail=d)
        elif e.kind == "timer":
            fired = d["fire_at"] <= now
            rows[e.step] = TimelineRow(
                e.step,
                "timer",
                "sleep",
                "fired" if fired else "waiting",
                e.at,
                d["fire_at"] if fired else None,
                detail={"until": d["fire_at"]},
            )
        elif e.kind == "receive":
            rows[e.step] = TimelineRow(
                e.step, "signal", e.name or "", "received", e.at, e.at, detail=d.get("payload")
            )
        elif e.kind == "approval":
            dec = decisions.get(e.step)
            if dec is None:
                rows[e.step] = TimelineRow(
                    e.step, "approval", e.name or "", "waiting", e.at, detail=d.get("payload")
                )
            else:
                dd = dec.data
                rows[e.step] = TimelineRow(
                    e.step,
                    "approval",
                    e.name or "",
                    "approved" if dd["approved"] else "rejected",
                    e.at,
                    dec.at,
                    detail={
                        "payload": dd.get("payload") if dd.get("edited") else d.get("payload"),
                        "by": dd.get("by"),
                        "comment": dd.get("comment"),
                        "edited": bool(dd.get("edited")),
                    },
                )
        elif e.kind == "join":
            rows[e.step] = TimelineRow(e.step, "race", e.name or "", "decided", e.at, e.at, detail=d)
        elif e.kind == "cancelled":
            rows[e.step + "!"] = TimelineRow(e.step, "cancel", "region", "cancelled", e.at, e.at)
        elif e.kind == "milestone":
            end = closed.get(e.step)
            rows[e.step] = TimelineRow(
                e.step,
                "milestone",
                e.name or "",
                "inside" if end is None else "left",
                e.at,
                None if end is None else end.at,
            )
        elif e.kind == "listen" and e.step not in closed:
            rows[e.step] = TimelineRow(e.step, "signal", e.name or "", "waiting", e.at)
        elif e.kind == "listen" and closed[e.step].kind == "unlisten":
            rows[e.step] = TimelineRow(e.step, "signal", e.name or "", "cancelled", e.at, closed[e.step].at)
        elif e.kind == "child":
            done = children.get(e.step)
            status = "waiting" if done is None else done.data["status"]
            rows[e.step] = TimelineRow(
                e.step,
                "child",
                e.name or "",
                status,
                e.at,
                None if done is None else done.at,
                detail={"run_id": d["run_id"]},
            )
    for sid, errs in attempts.items():
        row = rows.get(sid)
        if row is None:  # failed attempts of a step that has not finished yet
            rows[sid] = row = TimelineRow(sid, "step", "", "retrying", errs[0]["at"], attempts=len(errs) + 1)
        row.errors = errs
    return [rows[k] for k in sorted(rows, key=lambda k: (_key(k), k.endswith("!")))]


@dataclass(slots=True)
class ModelUsage:
    """What a run's model calls used: calls, tokens and dollars (cache hits cost nothing)."""

    calls: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    def add(self, other: ModelUsage) -> None:
        self.calls += other.calls
        self.cached += other.cached
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost += other.cost


def usage(events: list[Event]) -> ModelUsage:
    """The model usage journaled in a run's events (steps named ``model:*`` and ``embed:*``)."""
    out = ModelUsage()
    for e in events:
        if e.kind != "step" or not (e.name or "").startswith(("model:", "embed:")):
            continue
        result = to_json((e.data or {}).get("result")) or {}  # objects in memory, JSON in a file
        if not isinstance(result, dict):
            continue
        u = result.get("usage") or {}
        out.calls += 1
        out.cached += bool(result.get("cached"))
        out.input_tokens += int(u.get("input_tokens", 0))
        out.output_tokens += int(u.get("output_tokens", 0))
        out.cost += float(result.get("cost", 0.0))
    return out
