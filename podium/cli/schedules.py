"""``podium schedule add | list | pause | resume | delete``: cron schedules that start runs."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from ..client import Client
from . import _call, _fail, _json, _settings, out, render
from .access import DbOption
from .loader import load_flow

schedule_app = typer.Typer(
    help="Cron schedules: start a flow's runs on a timetable (a `podium worker` with the flow fires them).",
    no_args_is_help=True,
)


@schedule_app.command("add")
def schedule_add(
    flow_ref: Annotated[str, typer.Argument(metavar="MODULE:FLOW", help="e.g. reports.py:daily")],
    cron: Annotated[str, typer.Option("--cron", help='Cron expression, e.g. "*/5 * * * *"')],
    input: Annotated[str | None, typer.Option("--input", "-i", help="Each run's input as JSON")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Schedule name (default: the flow's)")] = None,
    missed: Annotated[
        str, typer.Option("--missed", help="Occurrences missed while no worker ran: skip|once|catchup")
    ] = "skip",
    tz: Annotated[str, typer.Option("--tz", help="Time zone of the cron expression")] = "UTC",
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="The tenant its runs start in")] = "default",
    db: DbOption = None,
) -> None:
    """Add (or replace) a schedule that starts a run of a flow at every occurrence of a cron expression."""
    flow = load_flow(flow_ref)
    value = _json(input, "--input")

    async def go() -> Any:
        async with Client(_settings(db), worker=False) as client:
            return await client.add_schedule(
                flow, cron, value, name=name, tz=tz, missed=missed, tenant=tenant
            )

    s = _call(go)
    module = flow_ref.rpartition(":")[0]
    out.print(
        escape(f"schedule {s.name!r}: {s.cron} ({s.tz}), next run {_when(s.next_at, s.tz)}; ")
        + f"[dim]{escape(f'`podium worker {module}` fires it')}[/]"
    )


def _when(ts: float | None, tz: str = "UTC") -> str:
    if ts is None:
        return "never"
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(ts, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z")


@schedule_app.command("list")
def schedule_list(as_json: Annotated[bool, typer.Option("--json")] = False, db: DbOption = None) -> None:
    """List schedules."""
    from rich.table import Table

    async def go() -> Any:
        async with Client(_settings(db), worker=False) as client:
            return await client.schedules()

    items = _call(go)
    if as_json:
        from dataclasses import asdict

        typer.echo(json.dumps([asdict(s) for s in items], indent=2, ensure_ascii=False))
        return
    table = Table(header_style="bold", title="schedules", title_justify="left")
    for col in ("name", "flow", "tenant", "cron", "tz", "missed", "state", "next run", "last run", "input"):
        table.add_column(col)
    for s in items:
        state = "[yellow]paused[/]" if s.paused else "[green]active[/]"
        table.add_row(
            escape(s.name),
            escape(s.flow),
            escape(s.tenant),
            escape(s.cron),
            s.tz,
            s.missed,
            state,
            "" if s.paused else _when(s.next_at, s.tz),
            "" if s.last_at is None else _when(s.last_at, s.tz),
            escape(render.short(s.input, 30)),
        )
    out.print(table)


@schedule_app.command("pause")
def schedule_pause(name: Annotated[str, typer.Argument(metavar="NAME")], db: DbOption = None) -> None:
    """Stop firing a schedule (until resumed)."""

    async def go() -> Any:
        async with Client(_settings(db), worker=False) as client:
            return await client.pause_schedule(name)

    _call(go)
    out.print(escape(f"schedule {name!r} paused"))


@schedule_app.command("resume")
def schedule_resume(name: Annotated[str, typer.Argument(metavar="NAME")], db: DbOption = None) -> None:
    """Fire a paused schedule again, from its next occurrence (missed ones while paused do not run)."""

    async def go() -> Any:
        async with Client(_settings(db), worker=False) as client:
            return await client.resume_schedule(name)

    s = _call(go)
    out.print(escape(f"schedule {name!r} resumed; next run {_when(s.next_at, s.tz)}"))


@schedule_app.command("delete")
def schedule_delete(name: Annotated[str, typer.Argument(metavar="NAME")], db: DbOption = None) -> None:
    """Delete a schedule (runs it started go on)."""

    async def go() -> bool:
        async with Client(_settings(db), worker=False) as client:
            return await client.delete_schedule(name)

    if not _call(go):
        _fail(f"no schedule named {name!r}")
    out.print(escape(f"schedule {name!r} deleted"))
