"""``podium mcp``: chosen flows and tools offered to any MCP client (``pip install podium[mcp]``).

The server speaks MCP over stdio (the default: an MCP client starts ``podium mcp app.py`` as a subprocess)
or over streamable HTTP on 127.0.0.1 (``--http --port``). Its tools:

| tool | what it does |
|---|---|
| ``start_<flow>`` | start a run of a flow (input schema from the flow's input type); returns the run id |
| ``get_run`` | a run's status, output or error, and the approvals it waits for |
| ``wait_run`` | wait up to ``timeout_seconds`` for a run to end; its state either way |
| ``list_approvals`` | approvals waiting for a decision (of all runs, or of one) |
| ``decide_approval`` | approve (optionally with an edited payload) or reject, with a comment |
| each exposed Podium tool | called directly, outside any run (needs ``start``; approval-bound: refused) |

Who acts: by default the local operator (an admin of every tenant, journaled as ``mcp``; ``tenant=``
narrows it to one tenant); with ``key=`` (``podium mcp --key`` or ``PODIUM_API_KEY``) the API key's principal,
checked again at every call (a revoked or expired key stops working at once). Every call goes through
``client.acting_as`` (``podium.acting``): the same authorization layer as the REST API and the CLI.

Everything goes through the public ``podium.Client``: with its embedded worker (the default) runs execute in
this process; with ``worker=False`` a ``podium worker`` elsewhere runs them. A mistake (an unknown run, an
input that does not fit, an approval decided already) is answered as an MCP tool error the client can read;
an unknown tool as an MCP protocol error. Neither stops the server.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..acting import ActingClient
from ..client import Client
from ..errors import PodiumError, RunCancelledError, RunFailedError, UsageError
from ..policies.access import Principal
from ..records import PendingApproval, Run
from ..tools.mcp import require_mcp
from ..tools.tool import Tool, ToolArgumentsError
from ..tools.toolset import Toolset
from ..workflow.flow import Flow

log = logging.getLogger("podium.mcp")

MAX_WAIT_SECONDS = 600.0
"""The longest one ``wait_run`` call waits (call it again to wait longer)."""


# -- arguments of the generic tools -----------------------------------------------------------------


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GetRunArgs(_Args):
    run_id: str = Field(description="The run's id, as start_<flow> returned it")


class WaitRunArgs(_Args):
    run_id: str = Field(description="The run's id")
    timeout_seconds: float = Field(
        30.0, ge=0, le=MAX_WAIT_SECONDS, description="How long to wait for the run to end, at most 600"
    )


class ListApprovalsArgs(_Args):
    run_id: str | None = Field(None, description="Only this run's approvals (default: all runs)")


class DecideApprovalArgs(_Args):
    run_id: str = Field(description="The run that waits for the approval")
    decision: Literal["approve", "reject"]
    name: str | None = Field(None, description="Which approval, if the run waits for several")
    payload: Any = Field(
        None,
        description="Approve with this edited payload instead of the proposed one (JSON; approve only)",
    )
    comment: str | None = Field(None, description="Why, for the run and the record")
    by: str | None = Field(None, description="Who decides (default: mcp)")


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema


_GENERIC: dict[str, tuple[type[_Args], str]] = {
    "get_run": (
        GetRunArgs,
        "A run's status (pending, running, waiting, completed, failed, cancelled), its "
        "output or error, and the approvals it waits for.",
    ),
    "wait_run": (
        WaitRunArgs,
        "Wait up to timeout_seconds for a run to end; returns its state either way "
        "(done: false if it is still going, e.g. waiting for an approval).",
    ),
    "list_approvals": (
        ListApprovalsArgs,
        "Approvals waiting for a human decision, oldest first: run, name and the payload proposed.",
    ),
    "decide_approval": (
        DecideApprovalArgs,
        "Approve or reject a run's pending approval. An approval may "
        "carry an edited payload, which the run receives instead of its proposal.",
    ),
}


# -- the tools --------------------------------------------------------------------------------------


class _Exposed:
    """What the server offers: the flows to start, Podium tools to call, and the generic run tools."""

    def __init__(
        self,
        client: Client,
        flows: Sequence[Flow[Any, Any]],
        tools: Toolset | None,
        *,
        key: str | None = None,
        tenant: str | None = None,
    ) -> None:
        self.client = client
        self._key = key
        self._tenant = tenant
        self.flows: dict[str, tuple[Flow[Any, Any], bool]] = {}  # tool name -> (flow, input wrapped)
        self.specs: list[dict[str, Any]] = []
        self.toolset = tools or Toolset()
        self.tools: dict[str, Tool] = {}
        for name, (model, doc) in _GENERIC.items():
            self.specs.append({"name": name, "description": doc, "inputSchema": _schema(model)})
        for fl in flows:
            tool_name = "start_" + re.sub(r"[^A-Za-z0-9_-]", "_", fl.name)
            if tool_name in self.flows:
                other = self.flows[tool_name][0].name
                raise UsageError(f"flows {other!r} and {fl.name!r} would both be started by {tool_name}")
            schema, wrapped = _input_schema(fl)
            doc = (fl.__doc__ or "").strip()
            description = (
                f"Start a run of flow {fl.name!r}"
                + (f": {doc}" if doc else ".")
                + " Returns the run id; follow the run with wait_run or get_run."
                + (" The flow's input goes in `input`." if wrapped and fl.takes_input else "")
            )
            self.flows[tool_name] = (fl, wrapped)
            self.specs.append({"name": tool_name, "description": description, "inputSchema": schema})
        taken = {s["name"] for s in self.specs}
        for t in self.toolset:
            if t.name in taken:
                raise UsageError(f"tool {t.name!r} clashes with a tool of the MCP server; .prefix() it")
            if t.meta.get("agent") is not None:
                agent = t.meta["agent"]
                raise UsageError(
                    f"tool {t.name!r} delegates to agent {agent.name!r}, which runs as a flow: "
                    f"expose the flow agent.{agent.name} instead"
                )
            self.tools[t.name] = t
            self.specs.append({"name": t.name, "description": t.description, "inputSchema": t.parameters})

    def names(self) -> list[str]:
        return [s["name"] for s in self.specs]

    async def acting(self, by: str | None = None) -> ActingClient:
        """The client as this server's principal (its key authenticated anew at each call)."""
        if self._key is None:
            name = by or "mcp"
            return self.client.acting_as(Principal("mcp", "admin", self._tenant), by=name)
        found = await self.client.authenticate(self._key)
        if found is None:
            raise _ToolFailure("this MCP server's API key is unknown, revoked or expired")
        me = self.client.acting_as(found)
        return me if by is None else self.client.acting_as(found, by=f"{by} via {me.who}")

    async def call(self, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Run tool ``name``; its JSON result, or ``_ToolFailure`` with a message for the client."""
        if name in _GENERIC:
            model = _GENERIC[name][0]
            try:
                args = model.model_validate(dict(arguments))
            except ValidationError as exc:
                raise _ToolFailure(f"invalid arguments for {name}: {_short(exc)}") from None
            handler: Callable[[Any], Any] = getattr(self, "_" + name)
            return await handler(args)  # type: ignore[no-any-return]
        if name in self.flows:
            fl, wrapped = self.flows[name]
            return await self._start(fl, wrapped, arguments)
        t = self.tools[name]
        return await self._tool(t, arguments)

    # -- flows and runs -------------------------------------------------------------------------
    async def _start(self, fl: Flow[Any, Any], wrapped: bool, arguments: Mapping[str, Any]) -> dict[str, Any]:
        if not fl.takes_input:
            if arguments:
                raise _ToolFailure(f"flow {fl.name!r} takes no input, got {dict(arguments)!r}")
            value: Any = None
        elif wrapped:
            extra = set(arguments) - {"input"}
            if extra:
                raise _ToolFailure(f"unexpected argument(s) {', '.join(sorted(extra))}; use `input`")
            value = arguments.get("input")
        else:
            value = dict(arguments)
        me = await self.acting()
        handle = await me.start(fl, value)
        run = await me.get(handle.id)
        return {"run_id": handle.id, "flow": fl.name, "status": run.status.value}

    async def _view(self, run: Run) -> dict[str, Any]:
        out: dict[str, Any] = {"run_id": run.id, "flow": run.flow, "status": run.status.value}
        if run.status.value == "completed":
            out["output"] = run.output
        if run.error:
            out["error"] = run.error
        if run.status.value == "waiting":
            waiting = await (await self.acting()).pending_approvals(run.id)
            if waiting:
                out["pending_approvals"] = [_approval(p) for p in waiting]
        out["created_at"], out["ended_at"] = run.created_at, run.ended_at
        return out

    async def _get_run(self, args: GetRunArgs) -> dict[str, Any]:
        return await self._view(await (await self.acting()).get(args.run_id))

    async def _wait_run(self, args: WaitRunArgs) -> dict[str, Any]:
        me = await self.acting()
        await me.get(args.run_id)  # an unknown (or hidden) run is an error at once
        done = True
        try:
            await self.client.result(args.run_id, timeout=args.timeout_seconds)
        except TimeoutError:
            done = False
        except (RunFailedError, RunCancelledError):
            pass
        return {"done": done, **(await self._view(await me.get(args.run_id)))}

    async def _list_approvals(self, args: ListApprovalsArgs) -> dict[str, Any]:
        pending = await (await self.acting()).pending_approvals(args.run_id)
        return {"approvals": [_approval(p) for p in pending]}

    async def _decide_approval(self, args: DecideApprovalArgs) -> dict[str, Any]:
        me = await self.acting(args.by)
        if args.decision == "approve":
            kwargs: dict[str, Any] = {"comment": args.comment}
            if "payload" in args.model_fields_set:
                kwargs["payload"] = args.payload
            p = await me.approve(args.run_id, args.name, **kwargs)
        else:
            if "payload" in args.model_fields_set:
                raise _ToolFailure("a rejection takes no payload (only an approval may edit it)")
            p = await me.reject(args.run_id, args.name, comment=args.comment)
        return {"run_id": p.run_id, "approval": p.name, "decision": args.decision}

    # -- Podium tools ---------------------------------------------------------------------------
    async def _tool(self, t: Tool, arguments: Mapping[str, Any]) -> dict[str, Any]:
        (await self.acting()).authorize("start")  # a direct tool call acts like starting work: operators
        try:
            args = t.validate(arguments)
        except ToolArgumentsError as exc:
            raise _ToolFailure(str(exc)) from None
        if self.toolset.needs_approval(t, args):
            raise _ToolFailure(
                f"this call of {t.name} needs a human's approval, which a direct call cannot wait for; "
                "start a flow that makes the call instead"
            )
        try:
            if t.is_async:
                value = await t.fn(**args)
            else:
                import asyncio

                value = await asyncio.to_thread(t.fn, **args)
        except PodiumError:
            raise
        except Exception as exc:
            raise _ToolFailure(f"{type(exc).__name__}: {exc}") from None
        from pydantic_core import to_jsonable_python

        return {"result": to_jsonable_python(value, fallback=str)}


class _ToolFailure(Exception):
    """A tool call that failed in a way the client should read (an MCP result with isError)."""


def _approval(p: PendingApproval) -> dict[str, Any]:
    return {
        "run_id": p.run_id,
        "flow": p.flow,
        "name": p.name,
        "payload": p.payload,
        "requested_at": p.requested_at,
    }


def _short(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(x) for x in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()[:5]
    )


def _input_schema(fl: Flow[Any, Any]) -> tuple[dict[str, Any], bool]:
    """The ``start_<flow>`` input schema, and whether the flow's input is wrapped in ``input``.

    An object input (a pydantic model, a TypedDict) is the arguments themselves; anything else (a
    string, a list, ...) is the argument ``input``."""
    if fl.input_adapter is None:
        return {"type": "object", "properties": {}, "additionalProperties": False}, True
    schema = dict(fl.input_adapter.json_schema())
    if schema.get("type") == "object":
        schema.pop("title", None)
        return schema, False
    defs = schema.pop("$defs", None)
    wrapper: dict[str, Any] = {
        "type": "object",
        "properties": {"input": schema},
        "additionalProperties": False,
    }
    try:
        fl.validate_input(None)
    except PodiumError:
        wrapper["required"] = ["input"]
    if defs:
        wrapper["$defs"] = defs
    return wrapper, True


# -- the MCP server -------------------------------------------------------------------------------


def build_server(
    client: Client,
    flows: Sequence[Flow[Any, Any]],
    tools: Toolset | None = None,
    *,
    name: str = "podium",
    key: str | None = None,
    tenant: str | None = None,
) -> Any:
    """An MCP server (``mcp.server.lowlevel.Server``) offering ``flows`` and ``tools`` through ``client``,
    acting as the API key ``key`` or else the local operator (of ``tenant`` only, if given).

    ``UsageError`` if two names clash. The caller opens and closes ``client``."""
    require_mcp()
    import mcp.types as types
    from mcp import MCPError
    from mcp.server.lowlevel import Server

    from .. import __version__

    exposed = _Exposed(client, flows, tools, key=key, tenant=tenant)
    listing = types.ListToolsResult(tools=[types.Tool.model_validate(s) for s in exposed.specs])

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return listing

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = params.name
        if tool not in exposed.names():
            raise MCPError(
                code=types.INVALID_PARAMS,
                message=f"unknown tool {tool!r} (this server has: {', '.join(exposed.names())})",
            )
        try:
            data = await exposed.call(tool, params.arguments or {})
        except (_ToolFailure, PodiumError) as exc:
            return _error(str(exc))
        except Exception as exc:  # a bug or an outage: the client hears of it, the server goes on
            log.exception("MCP tool %s failed", tool)
            return _error(f"internal error: {type(exc).__name__}: {exc}")
        text = json.dumps(data, ensure_ascii=False, default=str)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], structured_content=data
        )

    def _error(message: str) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)

    return Server(
        name,
        version=__version__,
        instructions=(
            "Podium runs durable workflows. Start a run with a start_<flow> tool, then follow it with "
            "wait_run or get_run; runs that wait for a human show up in list_approvals and are answered "
            "with decide_approval."
        ),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def serve_stdio(
    client: Client,
    flows: Sequence[Flow[Any, Any]],
    tools: Toolset | None = None,
    *,
    key: str | None = None,
    tenant: str | None = None,
) -> None:
    """Serve MCP over this process's stdin/stdout until the client closes stdin (``build_server``)."""
    from mcp.server.stdio import stdio_server

    server = build_server(client, flows, tools, key=key, tenant=tenant)
    # stdio_server points fd 1 at stderr while it serves: stray prints cannot corrupt the protocol
    async with client, stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


async def serve_http(
    client: Client,
    flows: Sequence[Flow[Any, Any]],
    tools: Toolset | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    on_ready: Callable[[str], None] | None = None,
    key: str | None = None,
    tenant: str | None = None,
) -> None:
    """Serve MCP over streamable HTTP at ``http://HOST:PORT/mcp`` (port 0: any free port) until stopped.

    ``on_ready`` is told the URL once the server listens."""
    import asyncio
    import socket

    import uvicorn

    server = build_server(client, flows, tools, key=key, tenant=tenant)
    app = server.streamable_http_app(host=host)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.setblocking(False)
    actual = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    web = uvicorn.Server(config)
    async with client:
        task = asyncio.create_task(web.serve(sockets=[sock]))
        try:
            while not web.started and not task.done():  # noqa: ASYNC110 - uvicorn has no started event
                await asyncio.sleep(0.02)
            if web.started and on_ready is not None:
                where = f"[{host}]" if ":" in host else host
                on_ready(f"http://{where}:{actual}/mcp")
            await task
        finally:
            if not task.done():
                web.should_exit = True
                await task
            sock.close()
