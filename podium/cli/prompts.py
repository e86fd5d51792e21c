"""``podium prompts``: the prompt registry from the shell (push, list, show, diff, label, rollback, split)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from ..client import Client
from ..management.prompts import DEFAULT_LABEL, Prompt, parse_ref
from . import render

prompts_app = typer.Typer(
    help="The prompt registry: versioned templates, labels, rollback, A/B splits.", no_args_is_help=True
)

DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL (default: PODIUM_DATABASE_URL or .podium/podium.db)")
]
TenantOption = Annotated[
    str | None,
    typer.Option(
        "--tenant", "-t", help="A tenant's own prompts (default: the shared ones every tenant reads)"
    ),
]
_FIELDS = ("template", "system", "variables", "model", "params", "metadata")


def _client(db: str | None) -> Client:
    from . import _settings

    return Client(_settings(db), worker=False)


def _load_file(path: Path) -> dict[str, Any]:
    """A template file: plain text (the template), or ``.toml``/``.json`` with the fields of a version."""
    from . import _fail

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        _fail(f"{path}: {exc.strerror or exc}")
    if path.suffix not in (".toml", ".json"):
        return {"template": text}
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        _fail(f"{path}: not valid {path.suffix[1:].upper()}: {exc}")
    if not isinstance(data, dict) or not isinstance(data.get("template"), str):
        _fail(f"{path}: needs a string field 'template' (and optionally {', '.join(_FIELDS[1:])})")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        _fail(f"{path}: unknown field(s) {', '.join(unknown)} (known: {', '.join(_FIELDS)})")
    return data


@prompts_app.command("push")
def push(
    args: Annotated[
        list[str], typer.Argument(metavar="[FILE] NAME", help="A template file and the prompt's name")
    ],
    template: Annotated[
        str | None, typer.Option("--template", "-t", help="The template text (instead of FILE)")
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", "-l", help="Point this label at the version")
    ] = None,
    system: Annotated[str | None, typer.Option("--system", help="System text (a template too)")] = None,
    model: Annotated[str | None, typer.Option("--model", help="The model it is written for (a hint)")] = None,
    params: Annotated[
        str | None, typer.Option("--params", help='Model parameters as JSON: {"temperature": 0}')
    ] = None,
    metadata: Annotated[str | None, typer.Option("--metadata", help="Free metadata as JSON")] = None,
    db: DbOption = None,
    tenant: TenantOption = None,
) -> None:
    """Store a new version of a prompt (the same content again is the same version).

    FILE is the template as text, or a .toml/.json file with template, system, variables, model, params and
    metadata fields."""
    from . import _call, _fail, _json, out

    if template is not None:
        if len(args) != 1:
            _fail("with --template, give only the prompt's NAME")
        fields: dict[str, Any] = {"template": template}
        name = args[0]
    else:
        if len(args) != 2:
            _fail("give a template FILE and the prompt's NAME (or --template TEXT NAME)")
        fields = _load_file(Path(args[0]))
        name = args[1]
    for key, value in (
        ("system", system),
        ("model", model),
        ("params", _json(params, "--params")),
        ("metadata", _json(metadata, "--metadata")),
    ):
        if value is not None:
            fields[key] = value

    async def go() -> tuple[Prompt, bool]:
        async with _client(db) as c:
            reg = c.prompts.for_tenant(tenant)
            before = {p.version for p in await reg.versions(name)} if await reg.owns(name) else set()
            p = await reg.push(name, label=label, **fields)
            return p, p.version not in before

    p, created = _call(go)
    what = "new version" if created else "unchanged: same content as version"
    out.print(
        Text.assemble((f"{p.name}@{p.version}", "bold"), f"  {what} {p.version}", f"  hash {p.hash}")
        + (Text.assemble("  label ", (label, "cyan")) if label else Text())
    )


@prompts_app.command("list")
def list_cmd(db: DbOption = None, tenant: TenantOption = None) -> None:
    """Every prompt: its latest version, its labels and its A/B split."""
    from . import _call, out

    async def go() -> Any:
        async with _client(db) as c:
            return await c.prompts.for_tenant(tenant).list()

    infos = _call(go)
    table = Table("prompt", "latest", "labels", "split", "updated", header_style="bold")
    for i in infos:
        labels = ", ".join(f"{k}→{v}" for k, v in i.labels.items())
        split = ", ".join(f"{k} {v}%" for k, v in (i.split or {}).items())
        table.add_row(Text(i.name, style="bold"), str(i.latest), labels, split, render.when(i.updated_at))
    out.print(table if infos else Text("no prompts yet: podium prompts push FILE NAME", style="dim"))


def _split_ref(ref: str) -> tuple[str, int | str | None]:
    """``NAME``, ``NAME@3`` or ``NAME:staging``."""
    if "@" in ref:
        name, _, v = ref.partition("@")
        version, _ = parse_ref(v)
        if version is None:
            from . import _fail

            _fail(f"{ref!r}: after '@' comes a version number")
        return name, version
    if ":" in ref:
        name, _, label = ref.partition(":")
        return name, label
    return ref, None


@prompts_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(metavar="NAME[@V|:LABEL]", help="triage, triage@3 or triage:staging")],
    as_json: Annotated[bool, typer.Option("--json", help="The version as JSON")] = False,
    db: DbOption = None,
    tenant: TenantOption = None,
) -> None:
    """Show a version (by default the one `production` points at, else the latest), its labels and split."""
    from . import _call, out

    name, which = _split_ref(ref)

    async def go() -> Any:
        async with _client(db) as c:
            labels = await c.prompts.for_tenant(tenant).labels(name)
            if which is None:
                p = (
                    await c.prompts.for_tenant(tenant).get(name)
                    if DEFAULT_LABEL in labels
                    else (await c.prompts.for_tenant(tenant).versions(name))[-1]
                )
            else:
                p = await c.prompts.for_tenant(tenant).get_ref(name, which)
            return (
                p,
                labels,
                await c.prompts.for_tenant(tenant).get_split(name),
                await c.prompts.for_tenant(tenant).history(name),
            )

    p, labels, split, moves = _call(go)
    if as_json:
        typer.echo(
            json.dumps({**p.to_json(), "labels": labels, "split": split}, indent=2, ensure_ascii=False)
        )
        return
    head = Table.grid(padding=(0, 2))
    head.add_row("version", Text(f"{p.name}@{p.version}", style="bold"))
    head.add_row("hash", p.hash)
    here = [k for k, v in labels.items() if v == p.version]
    head.add_row("labels", Text(", ".join(here) or "-", style="cyan"))
    others = ", ".join(f"{k}→{v}" for k, v in labels.items() if v != p.version)
    if others:
        head.add_row("other labels", others)
    if split:
        head.add_row("A/B split", ", ".join(f"{k} {v}%" for k, v in split.items()))
    head.add_row("variables", ", ".join(p.variables) or "-")
    if p.model:
        head.add_row("model", p.model)
    if p.params:
        head.add_row("params", json.dumps(p.params))
    if p.metadata:
        head.add_row("metadata", escape(json.dumps(p.metadata, ensure_ascii=False)))
    head.add_row("created", render.when(p.created_at))
    if moves:
        last = moves[-1]
        how = "rolled back" if last.rollback else "moved"
        head.add_row(
            f"{DEFAULT_LABEL} last",
            f"{how} {last.from_version or '-'} → {last.to_version} {render.when(last.at)}",
        )
    out.print(Panel(head, title="podium prompt", title_align="left"))
    if p.system:
        out.print(Panel(Syntax(p.system, "jinja", word_wrap=True), title="system", title_align="left"))
    out.print(Panel(Syntax(p.template, "jinja", word_wrap=True), title="template", title_align="left"))


def diff_text(diff: str) -> Text:
    """A unified diff, coloured."""
    text = Text()
    for line in diff.splitlines(keepends=True):
        style = ""
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        text.append(line, style=style)
    return text


@prompts_app.command("diff")
def diff(
    name: Annotated[str, typer.Argument(help="The prompt")],
    a: Annotated[str, typer.Argument(help="A version number or a label")],
    b: Annotated[str, typer.Argument(help="A version number or a label")],
    db: DbOption = None,
    tenant: TenantOption = None,
) -> None:
    """A unified diff of two versions (system text and template)."""
    from . import _call, out

    async def go() -> str:
        async with _client(db) as c:
            return await c.prompts.for_tenant(tenant).diff(name, a, b)

    text = _call(go)
    out.print(diff_text(text) if text else Text("no differences", style="dim"))


@prompts_app.command("label")
def label_cmd(
    name: Annotated[str, typer.Argument(help="The prompt")],
    version: Annotated[int, typer.Argument(help="The version the label should point at")],
    label: Annotated[str, typer.Argument(help="production, staging or any name")],
    db: DbOption = None,
    tenant: TenantOption = None,
) -> None:
    """Point a label at a version: new runs that resolve the label get it at once."""
    from . import _call, out

    async def go() -> Any:
        async with _client(db) as c:
            before = (await c.prompts.for_tenant(tenant).labels(name)).get(label)
            await c.prompts.for_tenant(tenant).label(name, version, label)
            return before

    before = _call(go)
    moved = f"{before} → {version}" if before is not None and before != version else str(version)
    out.print(Text.assemble((label, "cyan"), f" of {name}: ", (moved, "bold")))


@prompts_app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument(help="The prompt")],
    label: Annotated[str, typer.Option("--label", "-l", help="The label to move back")] = DEFAULT_LABEL,
    db: DbOption = None,
    tenant: TenantOption = None,
) -> None:
    """Move a label back to the version it pointed at before its latest move (repeat to go further)."""
    from . import _call, out

    async def go() -> tuple[int | None, Prompt]:
        async with _client(db) as c:
            before = (await c.prompts.for_tenant(tenant).labels(name)).get(label)
            return before, await c.prompts.for_tenant(tenant).rollback(name, label)

    before, p = _call(go)
    out.print(
        Text.assemble((label, "cyan"), f" of {name} rolled back: {before} → ", (str(p.version), "bold"))
    )


@prompts_app.command("split")
def split(
    name: Annotated[str, typer.Argument(help="The prompt")],
    arms: Annotated[
        list[str] | None, typer.Argument(metavar="ARM=PCT ...", help="production=90 candidate=10")
    ] = None,
    off: Annotated[
        bool, typer.Option("--off", help="Remove the split: runs resolve the label again")
    ] = False,
    db: DbOption = None,
    tenant: TenantOption = None,
) -> None:
    """Split live traffic between labels or versions by percentage (each run falls into one arm)."""
    from . import _call, _fail, out

    if off == bool(arms):
        _fail("give arms (production=90 candidate=10) or --off")
    parsed: dict[str, int] = {}
    for arm in arms or []:
        key, eq, pct = arm.partition("=")
        if not eq or not key or not pct.strip().isdigit():
            _fail(f"{arm!r}: write each arm as LABEL=PERCENT or VERSION=PERCENT")
        parsed[key] = int(pct)

    async def go() -> Any:
        async with _client(db) as c:
            return await c.prompts.for_tenant(tenant).split(name, None if off else parsed)

    stored = _call(go)
    if stored is None:
        out.print(f"{escape(name)}: no split; runs resolve the label")
    else:
        out.print(f"{escape(name)}: " + ", ".join(f"{k} {v}%" for k, v in stored.items()))
