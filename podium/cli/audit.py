"""``podium audit verify | export | checkpoint``: the tamper-evident audit trail."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from ..client import Client

audit_app = typer.Typer(
    help="The tamper-evident audit trail: who started, cancelled and approved what; keys; deletions.",
    no_args_is_help=True,
)

DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL (default: PODIUM_DATABASE_URL or .podium/podium.db)")
]


@audit_app.command("verify")
def verify_command(
    public_key: Annotated[
        str | None,
        typer.Option(
            "--public-key",
            help="Hex Ed25519 public key every checkpoint must be signed by "
            "(default: the one of the configured signing key, if it exists)",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Check every entry's hash chain, payload hashes and signed checkpoints; name the first bad entry."""
    from ..observability.audit import load_key, public_hex, verify
    from . import _call, _fail, _settings, err, out

    settings = _settings(db)
    if public_key is None:
        path = settings.audit_key_path
        if path is not None and path.exists():
            public_key = public_hex(load_key(path, create=False))
    elif len(public_key) != 64 or any(c not in "0123456789abcdefABCDEF" for c in public_key):
        _fail("--public-key takes the 64 hex digits of an Ed25519 public key")

    async def go() -> Any:
        async with Client(settings, worker=False) as c:
            with Progress(
                SpinnerColumn(), TextColumn("verifying the audit trail"), TimeElapsedColumn(), console=err
            ) as bar:
                bar.add_task("verify")
                return await verify(c.store, public_key=public_key)

    report = _call(go)
    signed, erased = report.checkpoints, report.erased
    facts = f"{report.entries} entries, {signed} signed checkpoint(s), {erased} erased payload(s)"
    if not report.ok:
        err.print(Text.assemble(("✘ ", "bold red"), f"entry {report.first_bad}: {report.problem}"))
        err.print(escape(f"  checked before it: {facts}"))
        raise typer.Exit(1)
    out.print(Text.assemble(("✔ ", "green"), "the audit trail is intact: ", facts))
    if report.checkpoints and not report.trusted_key:
        err.print(
            "  note: checkpoints were checked against the keys stored beside them; pass --public-key "
            "(or keep the signing key here) so that a rewritten chain cannot be re-signed unseen"
        )
    elif not report.checkpoints:
        err.print("  note: no signed checkpoint yet: entries removed from the end would not be seen")


@audit_app.command("export")
def export_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The JSONL file to write (default: stdout)")
    ] = None,
    after: Annotated[int, typer.Option(help="Only entries after this seq")] = 0,
    db: DbOption = None,
) -> None:
    """Write the audit trail as JSONL, one entry per line, in order."""
    from ..observability.audit import export
    from . import _call, _settings, err

    async def go() -> int:
        async with Client(_settings(db), worker=False) as c:
            if output is None:
                return await export(c.store, sys.stdout, after=after)
            with output.open("w", encoding="utf-8") as f:
                return await export(c.store, f, after=after)

    n = _call(go)
    if output is not None:
        err.print(escape(f"{n} entries written to {output}"))


@audit_app.command("checkpoint")
def checkpoint_command(db: DbOption = None) -> None:
    """Sign the chain's head now with the configured key (PODIUM_AUDIT_KEY), creating the key if missing."""
    from . import _call, _fail, _settings, out

    settings = _settings(db)
    if settings.audit_key_path is None:
        _fail("no audit signing key is configured: set PODIUM_AUDIT_KEY to a key file's path")

    async def go() -> Any:
        async with Client(settings, worker=False) as c:
            assert c.auditor is not None
            return await c.auditor.checkpoint()

    cp = _call(go)
    if cp is None:
        out.print("the audit trail is empty: nothing to sign")
        return
    out.print(escape(f"signed entry {cp.seq} ({cp.hash[:16]}…) with key {cp.public_key}"))
