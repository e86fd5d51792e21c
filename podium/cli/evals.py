"""``podium eval``: run a flow's variants over a dataset as durable runs, score them, compare, gate CI.

```
podium eval tickets --flow app.py:triage --variant v3=prompt=triage@3 --variant v4=prompt=triage@4 \\
    --scorer exact --scorer judge:smart --concurrency 8 --fail-under 0.8 --chart eval.svg
podium eval list [DATASET]          # evaluations, newest first, with each variant's score
podium eval show EVAL_ID [--items]  # one evaluation's table (and every item's result)
podium eval show EVAL_ID --against OLDER_ID   # score changes per variant, and the items that moved
```
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..client import Client
from ..management.evals import EvalReport, compare, get_eval, list_evals, parse_variant
from ..management.scorers import as_scorer
from . import render

DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL (default: PODIUM_DATABASE_URL or .podium/podium.db)")
]


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def report_table(report: EvalReport) -> Table:
    """Variants side by side: mean per scorer, overall score, errors, dollars, latency p50/p90."""
    table = Table(
        "variant", "pins", "items", *report.scorers, "score", "errors", "cost $", "p50", "p90",
        title=escape(f"eval {report.id}: {report.flow} on {report.dataset} v{report.dataset_version}"),
    )  # fmt: skip
    best = max((v.score for v in report.variants if v.score is not None), default=None)
    for v in report.variants:
        pins = ", ".join(f"{k}={x}" for k, x in v.pins.items())
        style = "bold green" if best is not None and v.score == best and len(report.variants) > 1 else None
        table.add_row(
            escape(v.name),
            escape(pins),
            str(v.items),
            *(_score(v.scores.get(s)) for s in report.scorers),
            _score(v.score),
            str(v.errors) if v.errors else "",
            f"{v.cost:.4f}",
            render.seconds(v.latency_p50),
            render.seconds(v.latency_p90),
            style=style,
        )
    return table


def _report_json(report: EvalReport, items: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": report.id, "dataset": report.dataset, "dataset_version": report.dataset_version,
        "flow": report.flow, "scorers": report.scorers, "status": report.status,
        "created_at": report.created_at, "finished_at": report.finished_at,
        "variants": {v.name: v.to_json() for v in report.variants},
    }  # fmt: skip
    if items:
        out["results"] = [_result_json(r) for r in report.results]
    return out


def _result_json(r: Any) -> dict[str, Any]:
    return {"variant": r.variant, "item_id": r.item_id, "run_id": r.run_id, "output": r.output,
            "scores": r.scores, "cost": r.cost, "latency": r.latency, "error": r.error}  # fmt: skip


def eval_command(
    target: Annotated[
        str, typer.Argument(metavar="DATASET", help="The dataset to evaluate on (or: list, show)")
    ],
    eval_ref: Annotated[
        str | None,
        typer.Argument(metavar="[EVAL_ID]", help="With show: the evaluation; with list: a dataset"),
    ] = None,
    flow_ref: Annotated[
        str | None, typer.Option("--flow", "-f", metavar="MODULE:FLOW", help="The flow to run on each item")
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant", "-v", help="NAME=PIN,PIN (pins: prompt=NAME@V, model=X, KEY=VALUE); repeatable"
        ),
    ] = None,
    scorer: Annotated[
        list[str] | None,
        typer.Option(
            "--scorer",
            "-s",
            help="exact, json_schema:S, numeric[:TOL], regex[:P], embedding[:M], "
            "judge:MODEL, MODULE:FUNCTION; repeatable (default: exact)",
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", help="Items run at once")] = 8,
    fail_under: Annotated[
        float | None, typer.Option("--fail-under", help="Exit 1 if a variant's score is below this (0-1)")
    ] = None,
    chart: Annotated[Path | None, typer.Option("--chart", help="Write a chart: out.svg or out.png")] = None,
    eval_id: Annotated[
        str | None, typer.Option("--eval-id", help="Name the evaluation (resume it by this id)")
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start anew; do not resume an unfinished evaluation")
    ] = False,
    items: Annotated[bool, typer.Option("--items", help="Also print every item's result")] = False,
    against: Annotated[
        str | None,
        typer.Option(
            "--against", metavar="EVAL_ID", help="With show: the items whose score moved since EVAL_ID"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    db: DbOption = None,
) -> None:
    """Evaluate a flow on a dataset: each item under each variant is a durable run (a killed evaluation
    resumes where it stopped), scored and stored; prints a table per variant. `podium eval list` and
    `podium eval show EVAL_ID` read stored evaluations."""
    from . import _call, _fail, _settings, err
    from .loader import load_flow, load_module

    settings = _settings(db)
    if target == "list":
        reports = _call(lambda: _with(settings, lambda c: list_evals(c, dataset=eval_ref)))
        _print_list(reports, as_json)
        return
    if target == "show":
        if eval_ref is None:
            _fail("podium eval show EVAL_ID")
        report = _call(lambda: _with(settings, lambda c: get_eval(c, eval_ref)))
        _print(report, items, as_json, chart)
        if against is not None:
            _print_changes(report, _call(lambda: _with(settings, lambda c: get_eval(c, against))))
        _gate(report, fail_under)
        return
    if eval_ref is not None:
        _fail(f"unexpected argument {eval_ref!r} (did you mean: podium eval show {eval_ref}?)")
    if flow_ref is None:
        _fail("--flow MODULE:FLOW is required (the flow to run on each item)")
    if fail_under is not None and not 0 <= fail_under <= 1:
        _fail("--fail-under is a score between 0 and 1")
    if chart is not None and chart.suffix.lower() not in (".svg", ".png"):
        _fail("--chart writes .svg or .png")
    fl = load_flow(flow_ref)
    variants = [parse_variant(v) for v in variant or []] or None
    scorers = [as_scorer(s, load=load_module) for s in scorer or ["exact"]]

    async def go() -> EvalReport:
        async with Client(settings) as client:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=err, transient=True) as bar:
                task = bar.add_task(escape(f"{target} × {fl.name}"), total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                return await client.evaluate(
                    target, fl, variants=variants, scorers=scorers, concurrency=concurrency,
                    eval_id=eval_id, resume=not fresh, progress=progress,
                )  # fmt: skip

    report = _call(go)
    _print(report, items, as_json, chart)
    _gate(report, fail_under)


async def _with(settings: Any, fn: Any) -> Any:
    async with Client(settings, worker=False) as c:
        return await fn(c)


def _print(report: EvalReport, items: bool, as_json: bool, chart: Path | None) -> None:
    from . import _call, err, out

    if as_json:
        out.print_json(json.dumps(_report_json(report, items), default=str))
    else:
        out.print(report_table(report))
        if items:
            table = Table("variant", "item", "run", *report.scorers, "cost $", "latency", "output / error")
            for r in report.results:
                table.add_row(
                    escape(r.variant),
                    escape(r.item_id),
                    r.run_id or "",
                    *(_score(r.scores.get(s)) for s in report.scorers),
                    f"{r.cost:.4f}",
                    render.seconds(r.latency),
                    escape(r.error) if r.error else escape(render.short(r.output, 40)),
                    style="red" if r.error else None,
                )
            out.print(table)
    if chart is not None:
        from ..management.chart import write_chart

        async def draw() -> Path:
            return write_chart(report, chart)

        err.print(escape(f"chart written to {_call(draw)}"))


def _gate(report: EvalReport, fail_under: float | None) -> None:
    from . import err

    if fail_under is None:
        return
    failing = report.failing(fail_under)
    if failing:
        names = ", ".join(f"{v.name} ({_score(v.score)})" for v in failing)
        err.print(escape(f"FAIL: score below {fail_under} for {names}"), style="bold red")
        raise typer.Exit(1)


def _print_list(reports: list[EvalReport], as_json: bool) -> None:
    from . import out

    if as_json:
        out.print_json(json.dumps([_report_json(r, False) for r in reports], default=str))
        return
    table = Table("eval", "when", "dataset", "flow", "status", "variant scores")
    for r in reports:
        scores = "  ".join(f"{v.name}={_score(v.score)}" for v in r.variants)
        table.add_row(
            r.id,
            render.when(r.created_at),
            escape(f"{r.dataset}@{r.dataset_version}"),
            escape(r.flow),
            r.status,
            escape(scores),
        )
    out.print(table)


def _print_changes(after: EvalReport, before: EvalReport) -> None:
    from . import out

    changes = compare(before, after)
    scores = {v.name: v.score for v in before.variants}
    table = Table("variant", "score before", "score now", "change", title=escape(f"since eval {before.id}"))
    for v in after.variants:
        was = scores.get(v.name)
        delta = "" if was is None or v.score is None else f"{v.score - was:+.3f}"
        table.add_row(escape(v.name), _score(was), _score(v.score), delta)
    out.print(table)
    if not changes:
        out.print("no item's score changed")
        return
    moved = Table("variant", "item", "before", "now", title="items whose score moved (worst first)")
    for c in changes:
        worse = (c.after or 0.0) < (c.before or 0.0)
        moved.add_row(escape(c.variant), escape(c.item_id), _score(c.before), _score(c.after),
                      style="red" if worse else "green")  # fmt: skip
    out.print(moved)
