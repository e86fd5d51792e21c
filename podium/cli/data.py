"""``podium data delete --subject ID``: erase what Podium holds about one person."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..client import Client

data_app = typer.Typer(help="Personal data held in runs, memories and the audit trail.", no_args_is_help=True)

DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL (default: PODIUM_DATABASE_URL or .podium/podium.db)")
]


@data_app.command("delete")
def delete_command(
    subject: Annotated[str, typer.Option("--subject", help="The data subject's id (as given at start)")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    db: DbOption = None,
) -> None:
    """Erase a data subject: its finished runs' inputs, outputs, journal data, token streams and payloads,
    its memories and threads (named SUBJECT or SUBJECT/...), its audit entries' payloads. The runs'
    skeletons and the audit chain stay and still verify; the erasure is audited. It cannot be undone."""
    from . import _call, _fail, _settings, err, out, who

    if not yes and not typer.confirm(f"Erase everything held about {subject!r}? This cannot be undone"):
        _fail("nothing was erased", code=1)

    async def go() -> Any:
        async with Client(_settings(db), worker=False) as c:
            return await c.erase_subject(subject, by=who())

    report = _call(go)
    table = Table("erased", "how many", title=escape(f"data subject {subject}"))
    table.add_row("runs", str(len(report.runs)))
    table.add_row("journal entries", str(report.events))
    table.add_row("stored payloads", str(report.payloads))
    table.add_row("audit entries' payloads", str(report.audit_entries))
    table.add_row("memory namespaces and collections", str(len(report.spaces)))
    table.add_row("conversation threads", str(len(report.threads)))
    out.print(table)
    if report.unfinished:
        err.print(
            Text.assemble(
                ("! ", "bold yellow"),
                f"{len(report.unfinished)} run(s) still under way were not erased: "
                f"{', '.join(report.unfinished[:5])}{' ...' if len(report.unfinished) > 5 else ''}; "
                "cancel them or run this again once they end",
            )
        )
        raise typer.Exit(3)
    err.print(Text.assemble(("✔ ", "green"), "erased; the erasure is in the audit trail (data.deleted)"))
