"""``podium keys create | list | revoke``: API keys of the HTTP API, each of a tenant (or of all) and
optionally expiring."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from ..client import Client
from .access import DbOption, TenantOption, acting

keys_app = typer.Typer(help="API keys of the HTTP API (podium serve).", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who or what uses the key")],
    role: Annotated[str, typer.Option(help="viewer, operator, approver or admin")] = "viewer",
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="The one tenant it acts in (default: all tenants)")
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="How long it is valid: 30d, 12h, ... (default: no end)")
    ] = None,
    db: DbOption = None,
) -> None:
    """Create an API key and print its secret (shown once: only a hash is stored)."""
    from . import _call, _settings, err, out, render

    async def go() -> tuple[Any, str]:
        async with Client(_settings(db), worker=False) as c:
            return await acting(c, tenant).create_key(name, role, tenant=tenant, expires=expires)

    key, secret = _call(go)
    where = "all tenants" if key.tenant is None else f"tenant {key.tenant}"
    until = "" if key.expires_at is None else f", expires {render.when(key.expires_at)}"
    err.print(
        escape(
            f"key {key.id} for {key.name!r}, role {key.role}, {where}{until} (the secret is not shown again):"
        )
    )
    out.print(secret)


@keys_app.command("list")
def keys_list(tenant: TenantOption = None, db: DbOption = None) -> None:
    """List API keys (never their secrets)."""
    from rich.table import Table

    from . import _call, _settings, out, render

    async def go() -> list[Any]:
        async with Client(_settings(db), worker=False) as c:
            return await acting(c, tenant).keys()

    table = Table("id", "name", "role", "tenant", "created", "expires", "revoked")
    for k in _call(go):
        table.add_row(
            k.id,
            escape(k.name),
            k.role,
            escape(k.tenant or "(all)"),
            render.when(k.created_at),
            render.when(k.expires_at) if k.expires_at else "",
            render.when(k.revoked_at) if k.revoked_at else "",
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id")],
    tenant: TenantOption = None,
    db: DbOption = None,
) -> None:
    """Revoke an API key at once."""
    from . import _call, _settings, out

    async def go() -> None:
        async with Client(_settings(db), worker=False) as c:
            await acting(c, tenant).revoke_key(key_id)

    _call(go)
    out.print(escape(f"key {key_id} revoked"))
