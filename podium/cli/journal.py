"""``podium gc`` and ``podium stats``: retention on demand, and where the journal's bytes are."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..client import Client
from ..errors import PodiumError


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def gc_command(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Drop payloads of every flow's runs that ended this long ago (e.g. 30d); "
            "default: each flow's retention and [storage] retention",
        ),
    ] = None,
    modules: Annotated[
        list[str] | None,
        typer.Option("--app", help="Modules or .py files whose flows' retention to apply"),
    ] = None,
    db: Annotated[str | None, typer.Option("--db", help="Database URL")] = None,
) -> None:
    """Delete the payloads of finished runs past their retention (the runs' skeletons stay)."""
    from . import _call, _fail, _settings, out
    from .loader import load_module

    for m in modules or []:
        try:
            load_module(m)
        except PodiumError as exc:
            _fail(str(exc))
    settings = _settings(db)
    if older_than is None and settings.storage.retention is None:
        from ..workflow.flow import registered

        if all(fl.retention is None for fl in registered().values()):
            _fail("nothing to apply: pass --older-than 30d, set [storage] retention, or --app with flows")

    async def go() -> Any:
        async with Client(settings, worker=False) as client:
            return await client.collect_garbage(older_than=older_than)

    done = _call(go)
    out.print(f"released {done.runs} runs; deleted {done.payloads} payloads ({_size(done.bytes)})")


def stats_command(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    db: Annotated[str | None, typer.Option("--db", help="Database URL")] = None,
) -> None:
    """Storage by flow and by age of run: journal bytes and the payloads the runs reference."""
    import json
    from dataclasses import asdict

    from rich.table import Table

    from . import _call, _settings, out

    async def go() -> Any:
        async with Client(_settings(db), worker=False) as client:
            return await client.storage_usage()

    rows = _call(go)
    if as_json:
        out.print_json(json.dumps([asdict(r) for r in rows]))
        return
    table = Table(header_style="bold", title="storage by flow and age of run", title_justify="left")
    for col in ("flow", "age", "runs", "journal", "payloads", "stored", "uncompressed"):
        table.add_column(col, justify="left" if col in ("flow", "age") else "right")
    for r in rows:
        table.add_row(
            r.flow,
            r.age,
            f"{r.runs:,}",
            _size(r.journal_bytes),
            f"{r.payloads:,}",
            _size(r.payload_bytes),
            _size(r.payload_raw_bytes),
        )
    out.print(table)
