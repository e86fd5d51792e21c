"""Who the CLI acts as: the local operator, an admin of every tenant; ``--tenant T`` narrows it to one.

Every command that reads or steers runs goes through ``client.acting_as`` (``podium.acting``), so the CLI
obeys the same authorization layer as the REST API and the MCP server.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ..acting import ActingClient
from ..client import Client
from ..policies.access import Principal

DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL (default: PODIUM_DATABASE_URL or .podium/podium.db)")
]
TenantOption = Annotated[
    str | None, typer.Option("--tenant", "-t", help="Act in this tenant only (default: every tenant)")
]


def acting(client: Client, tenant: str | None, name: str | None = None) -> ActingClient:
    """``client`` as the local operator (``name``, journaled as is; default ``cli:USER (admin)``): an
    admin of ``tenant``, or of every tenant."""
    from . import who

    return client.acting_as(Principal(name or who(), "admin", tenant), by=name)
