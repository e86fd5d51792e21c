"""``podium datasets ...`` and ``podium feedback``: examples for evaluations, and people's corrections."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..client import Client
from ..management.datasets import Dataset, DatasetItem
from ..management.feedback import Feedback
from . import render

DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL (default: PODIUM_DATABASE_URL or .podium/podium.db)")
]
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The dataset's name")]

datasets_app = typer.Typer(
    help="Datasets of examples (input, expected output) for `podium eval`; JSONL in and out.",
    no_args_is_help=True,
)


@datasets_app.command("create")
def create(
    name: NameArg,
    description: Annotated[str, typer.Option("--description", "-d", help="What the dataset holds")] = "",
    db: DbOption = None,
) -> None:
    """Create an empty dataset."""
    from . import _call, _settings, out

    async def go() -> Dataset:
        async with Client(_settings(db), worker=False) as c:
            return await c.datasets.create(name, description=description)

    d = _call(go)
    out.print(escape(f"dataset {d.name} created"))


@datasets_app.command("add")
def add(
    name: NameArg,
    input: Annotated[str, typer.Option("--input", "-i", help="The item's input as JSON")],
    expected: Annotated[
        str | None, typer.Option("--expected", "-e", help="The expected output as JSON")
    ] = None,
    item_id: Annotated[
        str | None, typer.Option("--id", help="The item's id (an existing id adds a new revision of it)")
    ] = None,
    metadata: Annotated[
        str | None, typer.Option("--metadata", "-m", help="Metadata as a JSON object")
    ] = None,
    db: DbOption = None,
) -> None:
    """Add an item to a dataset."""
    from . import _call, _json, _settings, out

    value, want, meta = _json(input, "--input"), _json(expected, "--expected"), _json(metadata, "--metadata")

    async def go() -> DatasetItem:
        async with Client(_settings(db), worker=False) as c:
            return await c.datasets.add(name, value, want, id=item_id, metadata=meta)

    item = _call(go)
    out.print(escape(f"item {item.id} added to {name} (version {item.version})"))


@datasets_app.command("list")
def list_cmd(as_json: Annotated[bool, typer.Option("--json")] = False, db: DbOption = None) -> None:
    """List datasets with their versions and item counts."""
    from . import _call, _settings, out

    async def go() -> list[Dataset]:
        async with Client(_settings(db), worker=False) as c:
            return await c.datasets.list()

    found = _call(go)
    if as_json:
        out.print_json(data=[_dataset_json(d) for d in found])
        return
    table = Table("name", "items", "version", "created", "description")
    for d in found:
        table.add_row(
            escape(d.name), str(d.items), str(d.version), render.when(d.created_at), escape(d.description)
        )
    out.print(table)


def _dataset_json(d: Dataset) -> dict[str, Any]:
    return {"name": d.name, "description": d.description, "created_at": d.created_at, "version": d.version,
            "items": d.items}  # fmt: skip


@datasets_app.command("show")
def show(
    name: NameArg,
    version: Annotated[int | None, typer.Option(help="Show the dataset as it was at this version")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Items as JSONL")] = False,
    db: DbOption = None,
) -> None:
    """Show a dataset's items (each at its newest revision)."""
    from . import _call, _settings, out

    async def go() -> tuple[Dataset, list[DatasetItem]]:
        async with Client(_settings(db), worker=False) as c:
            return await c.datasets.get(name), await c.datasets.items(name, version=version)

    d, items = _call(go)
    if as_json:
        for item in items:
            sys.stdout.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")
        return
    at = d.version if version is None else version
    table = Table(
        "id", "input", "expected", "source", "v", title=escape(f"{d.name} (version {at}, {len(items)} items)")
    )
    for item in items:
        src = item.source or {}
        origin = f"run {src['run_id']} step {src.get('step')}" if src.get("run_id") else ""
        if src.get("prompt"):
            origin += f" prompt {src['prompt'].get('name')}@{src['prompt'].get('version')}"
        table.add_row(
            escape(item.id), escape(render.short(item.input, 40)),
            "" if item.expected is None else escape(render.short(item.expected, 30)), escape(origin),
            str(item.version),
        )  # fmt: skip
    out.print(table)


@datasets_app.command("export")
def export(
    name: NameArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout)")
    ] = None,
    version: Annotated[int | None, typer.Option(help="Export the dataset as it was at this version")] = None,
    db: DbOption = None,
) -> None:
    """Export a dataset as JSONL (one item a line)."""
    from . import _call, _settings, err

    async def go() -> str:
        async with Client(_settings(db), worker=False) as c:
            return await c.datasets.export(name, output, version=version)

    text = _call(go)
    if output is None:
        sys.stdout.write(text)
    else:
        err.print(escape(f"{text.count(chr(10))} item(s) written to {output}"))


@datasets_app.command("import")
def import_cmd(
    name: NameArg,
    file: Annotated[str, typer.Argument(metavar="FILE", help="A JSONL file ('-': standard input)")],
    db: DbOption = None,
) -> None:
    """Import items from JSONL (creating the dataset if needed). Every line is checked first: a bad line
    is reported with its number and nothing is imported."""
    from . import _call, _fail, _settings, out

    if file == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"cannot read {file}: {exc}")

    async def go() -> int:
        async with Client(_settings(db), worker=False) as c:
            return await c.datasets.import_(name, text)

    n = _call(go)
    out.print(escape(f"{n} item(s) imported into {name}"))


def feedback_command(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")],
    step: Annotated[
        str | None,
        typer.Argument(
            metavar="STEP",
            help="A position (e.g. 2), a step name (model:triage) or 'output'; "
            "omit to list the run's feedback",
        ),
    ] = None,
    up: Annotated[bool, typer.Option("--up", help="Thumbs up")] = False,
    down: Annotated[bool, typer.Option("--down", help="Thumbs down")] = False,
    comment: Annotated[str | None, typer.Option("--comment", "-c")] = None,
    correct: Annotated[str | None, typer.Option("--correct", help="The corrected output as JSON")] = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", "-d", help="Also add it to this dataset (input: the run's input)"),
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who gives the feedback")] = None,
    db: DbOption = None,
) -> None:
    """Rate or correct a step's output (linked to its model and prompt version); without STEP, list the
    feedback a run received."""
    from . import _call, _fail, _json, _settings, out

    if up and down:
        _fail("--up or --down, not both")
    fixed = _json(correct, "--correct")

    async def go() -> list[Feedback]:
        async with Client(_settings(db), worker=False) as c:
            if step is None:
                return await c.feedback_list(run_id)
            options: dict[str, Any] = {"score": 1 if up else -1 if down else None, "comment": comment,
                                       "dataset": dataset, "by": by}  # fmt: skip
            if correct is not None:
                options["correction"] = fixed
            return [await c.feedback(run_id, step, **options)]

    found = _call(go)
    if step is not None:
        f = found[0]
        links = " ".join(x for x in (f.served_by and f"model {f.served_by}", _prompt(f)) if x)
        extra = f" -> dataset {f.dataset} item {f.item_id}" if f.dataset else ""
        out.print(
            escape(f"feedback {f.id} on run {run_id} step {f.step} ({f.step_name}) {links}{extra}".rstrip())
        )
        return
    table = Table("when", "step", "kind", "score", "comment", "correction", "model", "prompt", "by")
    for f in found:
        table.add_row(
            render.when(f.created_at), escape(f"{f.step} {f.step_name or ''}"), f.kind,
            {1: "👍", -1: "👎"}.get(f.score or 0, ""), escape(f.comment or ""),
            "" if f.correction is None else escape(render.short(f.correction, 30)),
            escape(f.served_by or f.model or ""), escape(_prompt(f)), escape(f.author or ""),
        )  # fmt: skip
    out.print(table)


def _prompt(f: Feedback) -> str:
    p = f.prompt or {}
    return f"prompt {p.get('name')}@{p.get('version')}" if p.get("name") else ""
