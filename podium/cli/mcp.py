"""``podium mcp``: serve chosen flows and tools to MCP clients (see ``podium.server.mcp``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import PodiumError


def mcp_command(
    modules: Annotated[
        list[str],
        typer.Argument(metavar="MODULES...", help="Modules or .py files that define the flows and tools"),
    ],
    flows: Annotated[
        str | None,
        typer.Option("--flows", help="Flows to offer, comma-separated (default: every flow loaded)"),
    ] = None,
    tools: Annotated[
        list[str] | None,
        typer.Option("--tools", help="MODULE:NAME of a Toolset or tool to offer too (repeatable)"),
    ] = None,
    http: Annotated[
        bool, typer.Option("--http", help="Serve streamable HTTP on 127.0.0.1 instead of stdio")
    ] = False,
    port: Annotated[int, typer.Option(help="The HTTP port (with --http; 0: any free port)")] = 8000,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Only start runs; a `podium worker` executes them")
    ] = False,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            envvar="PODIUM_API_KEY",
            help="Act as this API key (its role and tenant); default: the local operator, an admin",
        ),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Without --key: act in this tenant only")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Database URL (default: PODIUM_DATABASE_URL or .podium/podium.db)"),
    ] = None,
) -> None:
    """Serve flows and tools to MCP clients (Claude Desktop, IDEs, other agents) over stdio or HTTP:
    start_<flow>, get_run, wait_run, list_approvals, decide_approval, and the tools given with --tools.
    It acts as the local operator, or with --key (or PODIUM_API_KEY) as that API key's role and tenant."""
    from . import _call, _fail, _narrator, _settings

    try:
        from ..tools.mcp import require_mcp

        require_mcp()
        chosen, toolset = _load(modules, flows, tools or [])
    except PodiumError as exc:
        _fail(str(exc))
    from ..client import Client
    from ..server.mcp import serve_http, serve_stdio

    if key is not None and tenant is not None:
        _fail("--tenant is for the local operator; an API key's tenant is its own")
    settings = _settings(db)
    say = _narrator(settings)
    client = Client(settings, worker=not no_worker)
    names = ", ".join(f.name for f in chosen) or "none"
    if http:
        say(f"MCP server (streamable HTTP) for flows {names}; Ctrl-C stops")
        _call(
            lambda: serve_http(
                client,
                chosen,
                toolset,
                port=port,
                on_ready=lambda url: say(f"MCP at {url}"),
                key=key,
                tenant=tenant,
            )
        )
    else:
        say(f"MCP server (stdio) for flows {names}")
        _call(lambda: serve_stdio(client, chosen, toolset, key=key, tenant=tenant))


def _load(modules: list[str], flows: str | None, tool_refs: list[str]) -> tuple[list[Any], Any]:
    from ..errors import UsageError
    from ..tools.tool import Tool
    from ..tools.toolset import Toolset
    from ..workflow.flow import registered
    from .loader import load_module

    for m in modules:
        load_module(m.rpartition(":")[0] if ":" in m and not m.endswith(".py") else m)
    known = registered()
    if flows is None:
        chosen = [known[n] for n in sorted(known)]
    else:
        wanted = [n.strip() for n in flows.split(",") if n.strip()]
        missing = [n for n in wanted if n not in known]
        if missing:
            loaded = ", ".join(sorted(known)) or "none"
            raise UsageError(f"no flow named {', '.join(map(repr, missing))} (loaded: {loaded})")
        chosen = [known[n] for n in wanted]
    parts: list[Any] = []
    for ref in tool_refs:
        if ":" not in ref:
            raise UsageError(f"--tools expects MODULE:NAME (e.g. app.py:tools), got {ref!r}")
        mod_ref, _, attr = ref.rpartition(":")
        obj = getattr(load_module(mod_ref), attr, None)
        if not isinstance(obj, Toolset | Tool):
            raise UsageError(f"{ref} is not a podium Toolset or tool")
        parts.append(obj)
    if not chosen and not parts:
        raise UsageError("nothing to serve: pass modules that define flows, or --tools")
    return chosen, Toolset(*parts)
