"""MCP servers' tools as Podium tools, over stdio or streamable HTTP (``pip install podium[mcp]``).

```python
async with podium.tools.mcp.connect_stdio("uvx", ["mcp-server-git"]) as git:
    tools = await git.toolset()            # a Toolset: the server's tools, schemas as the server sent them
    agent = podium.Agent("dev", "...", tools=tools)
```
Each tool's ``parameters`` is the server's ``inputSchema`` exactly; arguments are checked against it (JSON
schema) before the call, and a mismatch comes back to the model as an error it can correct. A call goes to
the server's ``tools/call``; its structured content (else its text) is the tool's result, and a result
the server marks ``isError`` is a tool failure whose text the model reads. Inside a flow each call is the
journaled step ``tool:<name>``: a run that resumes, here or in another process, does not call the server
again for a call that finished, and replaying a journal never calls it.

**Servers by name, for runs that outlive a process.** A connection lives in one process, while a run may
suspend (a timer, an approval) and resume in another worker. Declare the server in ``podium.toml``:

```toml
[mcp.git]
command = "uvx"
args = ["mcp-server-git", "--repository", "."]
env = { GIT_AUTHOR_NAME = "podium" }          # added to a minimal environment; "${VAR}" reads VAR here

[mcp.search]
url = "https://search.example.com/mcp"
headers = { Authorization = "Bearer ${SEARCH_TOKEN}" }
timeout = 60                                   # seconds per call (default: none)
```
and use ``podium.tools.mcp.server("git")``: a ``Toolset`` built when it is declared (it connects once to
read the tool list, then disconnects), whose tools connect on their first call in each process (and event
loop) and keep that connection until ``await podium.tools.mcp.close_all()`` or the loop ends. A connection
that breaks is dropped and made again by the next call. So a module that declares an agent with these tools
works in every worker that imports it; no connection is held across a suspended run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import secret
from ..errors import ApplicationError, ConfigError, UsageError
from ..types import JSON
from .tool import Tool
from .toolset import Toolset

if TYPE_CHECKING:
    import mcp

__all__ = [
    "HINT",
    "MCPConnection",
    "ServerSpec",
    "close_all",
    "connect",
    "connect_http",
    "connect_stdio",
    "server",
    "server_spec",
]

HINT = "pip install podium[mcp]"
"""What to install when the ``mcp`` package is missing."""


def require_mcp() -> None:
    """Import the ``mcp`` SDK, or raise ``ConfigError`` naming the install command."""
    try:
        import mcp  # noqa: F401
        from mcp.server.lowlevel import Server  # noqa: F401  (mcp >= 2)
    except ImportError as exc:
        raise ConfigError(f"MCP needs the mcp package, version 2 or later ({exc}): {HINT}") from None


# -- what to connect to ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSpec:
    """How to reach an MCP server: a command to start (stdio) or a URL (streamable HTTP)."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    """Seconds to wait for one call's answer (None: no limit)."""

    def __post_init__(self) -> None:
        if (self.command is None) == (self.url is None):
            raise ConfigError(f"MCP server {self.name!r}: give either command (stdio) or url (HTTP)")
        if self.command is not None and (not isinstance(self.command, str) or not self.command):
            raise ConfigError(f"MCP server {self.name!r}: command must be a non-empty string")
        if self.url is not None and not (
            isinstance(self.url, str) and self.url.startswith(("http://", "https://"))
        ):
            raise ConfigError(f"MCP server {self.name!r}: url must be an http:// or https:// URL")
        if not all(isinstance(a, str) for a in self.args):
            raise ConfigError(f"MCP server {self.name!r}: args must be strings")
        for what, table in (("env", self.env), ("headers", self.headers)):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
                raise ConfigError(f"MCP server {self.name!r}: {what} must map strings to strings")
        if self.timeout is not None and (
            isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float) or self.timeout <= 0
        ):
            raise ConfigError(f"MCP server {self.name!r}: timeout must be a positive number of seconds")


_KEYS = {"command", "args", "env", "cwd", "url", "headers", "timeout"}


def server_spec(name: str, config: Mapping[str, Any] | None = None) -> ServerSpec:
    """The ``[mcp.NAME]`` table of ``podium.toml`` (or of ``config``) as a ``ServerSpec``."""
    if config is None:
        from ..config import Settings

        config = Settings.from_env().config
    section = config.get("mcp") or {}
    if not isinstance(section, Mapping):
        raise ConfigError("[mcp] in podium.toml must hold tables: [mcp.NAME]")
    table = section.get(name)
    if table is None:
        known = ", ".join(sorted(section)) or "none"
        raise ConfigError(f"no [mcp.{name}] in podium.toml (MCP servers declared: {known})")
    if not isinstance(table, Mapping):
        raise ConfigError(f"[mcp.{name}] must be a table")
    unknown = set(table) - _KEYS
    if unknown:
        raise ConfigError(f"[mcp.{name}]: unknown key(s) {', '.join(sorted(unknown))}")
    args = table.get("args", [])
    if not isinstance(args, list):
        raise ConfigError(f"[mcp.{name}]: args must be a list of strings")
    env, headers = table.get("env", {}), table.get("headers", {})
    if not isinstance(env, Mapping) or not isinstance(headers, Mapping):
        raise ConfigError(f"[mcp.{name}]: env and headers must be tables")
    return ServerSpec(
        name=name,
        command=table.get("command"),
        args=tuple(args),
        env=dict(env),
        cwd=table.get("cwd"),
        url=table.get("url"),
        headers=dict(headers),
        timeout=table.get("timeout"),
    )


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(spec: ServerSpec, what: str, table: Mapping[str, str]) -> dict[str, str]:
    """``${VAR}`` in values read from the environment now (secrets stay out of podium.toml)."""

    def one(m: re.Match[str]) -> str:
        value = secret(m.group(1))
        if value is None:
            raise ConfigError(f"MCP server {spec.name!r}: {what} uses ${{{m.group(1)}}}, which is not set")
        return value

    return {k: _VAR.sub(one, v) for k, v in table.items()}


# -- a live connection ----------------------------------------------------------------------------


class MCPConnectionError(ApplicationError):
    """The MCP server could not be reached, or the connection broke (retrying may help)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type="MCPConnectionError", retryable=True)


class MCPConnection:
    """A connection to one MCP server. Use ``connect_stdio`` / ``connect_http`` / ``connect``.

    The connection is owned by a task of its own, so any task of the same event loop may call through it
    (an agent's parallel tool calls do).
    """

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self._client: mcp.Client | None = None
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        where = self.spec.url or " ".join([self.spec.command or "", *self.spec.args])
        return f"<podium MCP connection {self.name} ({where})>"

    @property
    def open(self) -> bool:
        return self._client is not None and self._task is not None and not self._task.done()

    async def _start(self) -> None:
        require_mcp()
        self.loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name=f"podium-mcp-{self.name}")
        await self._ready.wait()
        if self._error is not None:
            error, self._error = self._error, None
            raise MCPConnectionError(
                f"cannot connect to MCP server {self.name!r}: {_describe(error)}"
            ) from error

    def _target(self) -> Any:
        from mcp import StdioServerParameters

        spec = self.spec
        if spec.command is not None:
            return StdioServerParameters(
                command=spec.command,
                args=list(spec.args),
                env=_expand(spec, "env", spec.env) or None,
                cwd=spec.cwd,
            )
        return _http_transport(spec.url or "", _expand(spec, "headers", spec.headers))

    async def _run(self) -> None:
        from mcp import Client

        try:
            async with Client(self._target(), read_timeout_seconds=self.spec.timeout) as client:
                self._client = client
                self._ready.set()
                await self._closing.wait()
        except BaseException as exc:
            if not self._ready.is_set():
                self._error = exc
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
        finally:
            self._client = None
            self._ready.set()

    async def close(self) -> None:
        """Close the connection (a stdio server's process ends). Idempotent."""
        self._closing.set()
        task = self._task
        if task is not None and not task.done():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout=10)
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    def _live(self) -> mcp.Client:
        if self._client is None or not self.open:
            raise MCPConnectionError(f"the connection to MCP server {self.name!r} is closed")
        return self._client

    # -- the server's tools -----------------------------------------------------------------------
    async def list_tools(self) -> list[dict[str, Any]]:
        """The server's tools as it describes them (``name``, ``description``, ``inputSchema``, ...)."""
        client = self._live()
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(1000):  # pages; a server whose cursor never ends cannot hang us
            page = await client.list_tools(cursor=cursor)
            out.extend(t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        return out

    async def call(self, tool: str, arguments: Mapping[str, Any] | None = None) -> JSON:
        """Call a tool: its result (structured content, else text), or ``ApplicationError`` of type
        ``MCPToolError`` (not retryable) when the server answers ``isError``."""
        client = self._live()
        try:
            result = await client.call_tool(tool, dict(arguments or {}))
        except Exception as exc:
            from mcp import MCPError
            from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT

            code = exc.code if isinstance(exc, MCPError) else None
            if code == REQUEST_TIMEOUT or isinstance(exc, TimeoutError):
                raise ApplicationError(
                    f"MCP server {self.name!r} did not answer {tool} in time ({exc})",
                    type="MCPTimeout",
                    retryable=True,
                ) from None
            if isinstance(exc, MCPError) and code != CONNECTION_CLOSED:
                # the server refused the request (unknown tool, invalid parameters, ...)
                raise ApplicationError(f"{self.name}: {exc}", type="MCPToolError", retryable=False) from None
            await self.close()  # broken: the next call through ``server(...)`` tools reconnects
            raise MCPConnectionError(f"MCP server {self.name!r} failed: {_describe(exc)}") from exc
        content = _content(result)
        if result.is_error:
            text = content if isinstance(content, str) else json.dumps(content, default=str)
            raise ApplicationError(text or f"{tool} failed", type="MCPToolError", retryable=False)
        return content

    async def toolset(self, *, prefix: str = "", only: Iterable[str] | None = None) -> Toolset:
        """The server's tools as a ``Toolset`` calling through this connection (``only``: some names;
        ``prefix``: prepended to each name, to combine servers whose names clash)."""
        specs = await self.list_tools()
        return _toolset(specs, self.call, prefix=prefix, only=only, origin=self.name)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _http_transport(url: str, headers: dict[str, str]) -> Any:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    @contextlib.asynccontextmanager
    async def transport() -> AsyncIterator[Any]:
        timeout = httpx2.Timeout(30.0, read=300.0)
        async with (
            httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
            streamable_http_client(url, http_client=http) as streams,
        ):
            yield streams

    return transport()


def _content(result: Any) -> JSON:
    """A ``CallToolResult`` as JSON: structured content, else one text, else a list of the parts."""
    if result.structured_content is not None and not result.is_error:
        return result.structured_content
    parts: list[JSON] = []
    for block in result.content:
        if getattr(block, "type", None) == "text":
            parts.append(block.text)
        else:
            parts.append(block.model_dump(mode="json", by_alias=True, exclude_none=True))
    if len(parts) == 1 and isinstance(parts[0], str):
        return parts[0]
    if all(isinstance(p, str) for p in parts):
        return "\n".join(p for p in parts if isinstance(p, str))
    return parts


def _toolset(
    specs: Sequence[Mapping[str, Any]],
    call: Callable[[str, Mapping[str, Any]], Any],
    *,
    prefix: str,
    only: Iterable[str] | None,
    origin: str,
) -> Toolset:
    wanted = None if only is None else list(only)
    names = [s["name"] for s in specs]
    if wanted is not None:
        missing = [n for n in wanted if n not in names]
        if missing:
            raise UsageError(
                f"MCP server {origin!r} has no tool(s) {', '.join(map(repr, missing))} "
                f"(it has: {', '.join(names) or 'none'})"
            )
    tools = [
        _tool(s, call, prefix=prefix, origin=origin) for s in specs if wanted is None or s["name"] in wanted
    ]
    return Toolset(*tools)


def _tool(
    spec: Mapping[str, Any],
    call: Callable[[str, Mapping[str, Any]], Any],
    *,
    prefix: str,
    origin: str,
) -> Tool:
    remote = str(spec["name"])
    schema = dict(spec.get("inputSchema") or {"type": "object", "properties": {}})
    check = _checker(schema)

    async def call_tool(**arguments: Any) -> JSON:
        if check is not None:
            problem = check(arguments)
            if problem:
                raise ApplicationError(
                    f"invalid arguments for {prefix}{remote}: {problem}",
                    type="ToolArgumentsError",
                    retryable=False,
                )
        return await call(remote, arguments)

    call_tool.__name__ = call_tool.__qualname__ = f"mcp_{origin}_{remote}"
    return Tool(
        name=prefix + remote,
        description=str(spec.get("description") or spec.get("title") or remote),
        parameters=schema,
        fn=call_tool,
        is_async=True,
        validator=None,  # the schema is the server's: checked with jsonschema in call_tool
        meta={
            "mcp": origin,
            "mcp_tool": remote,
            **({"output_schema": spec["outputSchema"]} if "outputSchema" in spec else {}),
            **({"annotations": spec["annotations"]} if "annotations" in spec else {}),
        },
    )


def _checker(schema: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], str | None] | None:
    """A JSON-schema check of arguments (``jsonschema`` comes with ``mcp``), or None without it."""
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - mcp depends on jsonschema
        return None
    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validator = cls(schema)
    except Exception:  # a schema jsonschema cannot read: let the server judge the arguments
        return None

    def check(arguments: Mapping[str, Any]) -> str | None:
        errors = sorted(validator.iter_errors(dict(arguments)), key=lambda e: list(e.path))[:5]
        if not errors:
            return None
        return "; ".join(f"{'.'.join(str(p) for p in e.path) or 'arguments'}: {e.message}" for e in errors)

    return check


# -- connecting -------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _connected(spec: ServerSpec) -> AsyncIterator[MCPConnection]:
    conn = MCPConnection(spec)
    await conn._start()
    try:
        yield conn
    finally:
        await conn.close()


def connect_stdio(
    command: str,
    args: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    timeout: float | None = None,
    name: str | None = None,
) -> contextlib.AbstractAsyncContextManager[MCPConnection]:
    """Start ``command args`` and talk MCP over its stdin/stdout: ``async with connect_stdio(...) as s``.

    ``env`` is added to a minimal environment (PATH, HOME, ...); ``timeout`` bounds each call (seconds).
    The process ends when the block does."""
    spec = ServerSpec(
        name=name or command.rsplit("/", 1)[-1],
        command=command,
        args=tuple(args),
        env=dict(env or {}),
        cwd=cwd,
        timeout=timeout,
    )
    return _connected(spec)


def connect_http(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    name: str | None = None,
) -> contextlib.AbstractAsyncContextManager[MCPConnection]:
    """Connect to an MCP server over streamable HTTP: ``async with connect_http(url, headers=...) as s``."""
    spec = ServerSpec(name=name or url, url=url, headers=dict(headers or {}), timeout=timeout)
    return _connected(spec)


def connect(
    name: str, *, config: Mapping[str, Any] | None = None
) -> contextlib.AbstractAsyncContextManager[MCPConnection]:
    """Connect to the server declared as ``[mcp.NAME]`` in ``podium.toml`` (or in ``config``)."""
    return _connected(server_spec(name, config))


# -- servers by name: one lazy connection per process and event loop --------------------------------

_POOL: dict[tuple[str, int], MCPConnection] = {}
_POOL_LOCKS: dict[tuple[str, int], asyncio.Lock] = {}
_LISTINGS: dict[str, list[dict[str, Any]]] = {}
_LISTING_LOCK = threading.Lock()


async def _pooled(spec: ServerSpec) -> MCPConnection:
    loop = asyncio.get_running_loop()
    key = (spec.name, id(loop))
    for k, old in list(_POOL.items()):  # forget connections of event loops that have ended
        if old.loop is not None and old.loop.is_closed():
            del _POOL[k]
            _POOL_LOCKS.pop(k, None)
    conn = _POOL.get(key)
    if conn is not None and conn.open and conn.spec == spec:
        return conn
    lock = _POOL_LOCKS.setdefault(key, asyncio.Lock())
    async with lock:
        conn = _POOL.get(key)
        if conn is not None and conn.open and conn.spec == spec:
            return conn
        if conn is not None:
            await conn.close()
        conn = MCPConnection(spec)
        await conn._start()
        _POOL[key] = conn
        return conn


async def close_all() -> None:
    """Close this event loop's connections made by ``server(...)`` tools (they reconnect when called)."""
    loop = asyncio.get_running_loop()
    for key, conn in list(_POOL.items()):
        if key[1] == id(loop):
            del _POOL[key]
            await conn.close()


def _list_now(spec: ServerSpec) -> list[dict[str, Any]]:
    """Connect, list the tools and disconnect, from synchronous code (in a thread if a loop runs here)."""

    async def listing() -> list[dict[str, Any]]:
        async with _connected(spec) as conn:
            return await conn.list_tools()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(listing())
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = asyncio.run(listing())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, name=f"podium-mcp-list-{spec.name}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def server(
    name: str | ServerSpec,
    *,
    prefix: str = "",
    only: Iterable[str] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Toolset:
    """The tools of the MCP server declared as ``[mcp.NAME]`` in ``podium.toml``, as a ``Toolset``.

    Declaring connects once to read the tool list (cached for the process), then disconnects; each tool
    connects on its first call in a process and reuses that connection (see the module docstring). Call
    it where the module is imported (as for an agent's tools), not inside a flow."""
    spec = name if isinstance(name, ServerSpec) else server_spec(name, config)
    require_mcp()
    with _LISTING_LOCK:
        specs = _LISTINGS.get(repr(spec))
        if specs is None:
            specs = _list_now(spec)
            _LISTINGS[repr(spec)] = specs

    async def call(tool: str, arguments: Mapping[str, Any]) -> JSON:
        conn = await _pooled(spec)
        return await conn.call(tool, arguments)

    return _toolset(specs, call, prefix=prefix, only=only, origin=spec.name)
