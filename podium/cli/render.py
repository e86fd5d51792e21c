"""Rich renderings of runs, timelines and approvals for the terminal."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..engine.timeline import ModelUsage, TimelineRow
from ..records import JournalEntry, PendingApproval, Run
from ..types import RunStatus

STATUS_STYLE = {
    RunStatus.PENDING: "yellow",
    RunStatus.RUNNING: "cyan",
    RunStatus.WAITING: "magenta",
    RunStatus.COMPLETED: "green",
    RunStatus.FAILED: "red",
    RunStatus.CANCELLED: "dim",
}
ROW_STYLE = {
    "ok": "green",
    "failed": "red",
    "retrying": "yellow",
    "waiting": "magenta",
    "approved": "green",
    "rejected": "red",
    "fired": "green",
    "received": "green",
    "completed": "green",
    "cancelled": "dim",
    "decided": "cyan",
    "inside": "magenta",
    "left": "green",
}


def short(value: Any, width: int = 60) -> str:
    """A one-line JSON preview of ``value``."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.1f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min"


def status_text(status: RunStatus) -> Text:
    return Text(status.value, style=STATUS_STYLE[status])


def runs_table(runs: list[Run]) -> Table:
    table = Table(title=f"{len(runs)} run(s)", title_justify="left", header_style="bold")
    widths = {"id": 24, "status": 9, "created": 19}
    for col in ("id", "flow", "status", "created", "took", "output / error"):
        table.add_column(col, no_wrap=col != "output / error", min_width=widths.get(col))
    for r in runs:
        took = seconds(r.ended_at - r.created_at) if r.ended_at else ""
        if r.status is RunStatus.FAILED and r.error:
            detail = Text(short(f"{r.error.get('type')}: {r.error.get('message')}", 50), style="red")
        elif r.status is RunStatus.COMPLETED:
            detail = Text(short(r.output, 50))
        else:
            detail = Text("")
        table.add_row(r.id, r.flow, status_text(r.status), when(r.created_at), took, detail)
    return table


def _bar(row: TimelineRow, start: float, span: float, width: int = 16) -> Text:
    """A Gantt-like bar of the row's duration within the run."""
    if row.started is None or span <= 0:
        return Text("")
    a = int((row.started - start) / span * width)
    end = row.ended if row.ended is not None else start + span
    b = max(a + 1, int((end - start) / span * width))
    a, b = min(a, width - 1), min(b, width)
    return Text(" " * a + "█" * (b - a), style=ROW_STYLE.get(row.status, "white"))


def policy_ref(d: Any) -> str:
    """``deny by card-block@3f2a…/cards: a card number in the answer`` for one journaled decision."""
    if not isinstance(d, dict):
        return str(d)
    rule = f"/{d['rule']}" if d.get("rule") else ""
    why = f": {d['reason']}" if d.get("reason") else ""
    return f"{d.get('action')} by {d.get('policy')}@{str(d.get('version', ''))[:8]}{rule}{why}"


def timeline_table(run: Run, rows: list[TimelineRow]) -> Table:
    """Positions with status, tries, duration, a Gantt-like bar (on wide terminals) and the result."""
    start = run.created_at
    end = run.ended_at or max([r.ended or r.started or start for r in rows] + [start])
    span = max(end - start, 1e-6)
    wide = Console().width >= 110  # the width rich will render at (80 when not a terminal)
    cols = ["pos", "kind", "name", "status", "tries", "took", "when", "result / detail"]
    if not wide:  # narrow terminals: the bar and the kind (visible in the name) give way to the result
        cols = [c for c in cols if c not in ("kind", "when")]
    table = Table(header_style="bold", title="timeline", title_justify="left")
    for col in cols:
        table.add_column(
            col,
            no_wrap=col in ("pos", "status", "tries", "took", "when"),
            overflow="fold" if col in ("name", "result / detail") else "ellipsis",
        )

    def add(values: dict[str, Any]) -> None:
        table.add_row(*(values.get(c, "") for c in cols))

    for row in rows:
        detail = short(row.detail, 48)
        if row.name.startswith(("model:", "embed:")) and isinstance(row.detail, dict):
            d = row.detail  # a model call: what it answered, and who
            answer = d.get("text") or ("[vectors]" if "vectors" in d else "")
            detail = short(
                f"{answer}  ({d.get('served_by') or d.get('model')}{', cached' if d.get('cached') else ''})",
                48,
            )
        if row.name.startswith("policy:") and isinstance(row.detail, dict):
            d = row.detail  # a policy verdict: the action, and which policy (version) decided
            detail = short(", ".join(policy_ref(x) for x in d.get("decisions", ())) or "allow", 48)
        if row.status == "failed" and isinstance(row.detail, dict):
            detail = short(f"{row.detail.get('type')}: {row.detail.get('message')}", 48)
        add(
            {
                "pos": row.position,
                "kind": row.kind,
                "name": row.name,
                "status": Text(row.status, style=ROW_STYLE.get(row.status, "white")),
                "tries": str(row.attempts) if row.attempts > 1 or row.errors else "",
                "took": seconds(row.duration),
                "when": _bar(row, start, span),
                "result / detail": detail,
            }
        )
        for err in row.errors:
            add(
                {
                    "status": Text("retry", style="yellow"),
                    "result / detail": Text(
                        short(f"{err.get('type')}: {err.get('message')}", 48), style="yellow"
                    ),
                }
            )
    return table


def prompt_ref(resolved: dict[str, Any]) -> str:
    """``triage@2 (production, arm production)``: a journaled prompt resolution in one line."""
    via = [str(resolved["label"])] if resolved.get("label") else []
    if resolved.get("arm"):
        via.append(f"arm {resolved['arm']}")
    return f"{resolved.get('name')}@{resolved.get('version')}" + (f" ({', '.join(via)})" if via else "")


def run_panel(
    run: Run, rows: list[TimelineRow], pending: list[PendingApproval], used: ModelUsage | None = None
) -> Group:
    head = Table.grid(padding=(0, 2))
    head.add_row("run", Text(run.id, style="bold"))
    head.add_row("flow", run.flow)
    if run.queue != "default" or run.priority:
        head.add_row("queue", f"{run.queue}, priority {run.priority}")
    if run.tenant != "default":
        head.add_row("tenant", run.tenant)
    head.add_row("status", status_text(run.status))
    head.add_row("created", when(run.created_at))
    if run.ended_at:
        head.add_row("took", seconds(run.ended_at - run.created_at))
    if run.key:
        head.add_row("key", run.key)
    if run.parent_id:
        head.add_row("parent", run.parent_id)
    head.add_row("input", short(run.input, 100))
    if run.status is RunStatus.COMPLETED:
        head.add_row("output", short(run.output, 100))
    if run.error:
        head.add_row("error", Text(f"{run.error.get('type')}: {run.error.get('message')}", style="red"))
    if used is not None and used.calls:
        head.add_row(
            "models",
            f"{used.calls} call(s), {used.cached} from cache, {used.input_tokens:,} tokens in, "
            f"{used.output_tokens:,} out, ${used.cost:.4f}",
        )
    decided = [
        d
        for r in rows
        if r.kind == "value" and r.name.startswith("policy:") and isinstance(r.detail, dict)
        for d in r.detail.get("decisions", ())
    ]
    if decided:
        head.add_row("policies", "; ".join(policy_ref(d) for d in decided))
    prompts = [r.detail for r in rows if r.kind == "value" and r.name.startswith("prompt:")]
    if prompts:
        head.add_row("prompts", ", ".join(prompt_ref(p) for p in prompts if isinstance(p, dict)))
    if run.wake_at and run.status is RunStatus.WAITING:
        head.add_row("wakes", when(run.wake_at))
    parts: list[Any] = [Panel(head, title="podium run", title_align="left"), timeline_table(run, rows)]
    for p in pending:
        parts.append(
            Text.assemble(
                ("waiting for approval ", "magenta"),
                (repr(p.name), "bold"),
                f" of {short(p.payload, 60)}\n",
                ("  podium approve ", "dim"),
                run.id,
                ("  |  podium reject ", "dim"),
                run.id,
            )
        )
    return Group(*parts)


def journal_table(entries: list[JournalEntry]) -> Table:
    table = Table(header_style="bold", title="journal", title_justify="left")
    for col in ("seq", "kind", "pos", "name", "at", "data"):
        table.add_column(col, no_wrap=col != "data")
    for e in entries:
        table.add_row(str(e.seq), e.kind, e.position, e.name or "", when(e.at), short(e.data, 70))
    return table


def approvals_table(items: list[PendingApproval]) -> Table:
    table = Table(header_style="bold", title=f"{len(items)} approval(s) waiting", title_justify="left")
    for col in ("run", "flow", "name", "since", "payload"):
        table.add_column(col, no_wrap=col != "payload")
    for p in items:
        table.add_row(p.run_id, p.flow, p.name, when(p.requested_at), short(p.payload, 70))
    return table


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False)
