"""MCP in both directions, with real processes and the official ``mcp`` SDK.

* Podium's MCP client against tests/mcp_server_app.py (an ``MCPServer`` started as a stdio subprocess):
  schemas preserved, calls journaled as ``tool:<name>``, replay never calls the server (the server counts
  its calls in a file), MCP errors come back to the model, a server declared in podium.toml connects
  lazily in each process (a run started here is finished by a ``podium worker`` process).
* An ``mcp`` SDK client against ``podium mcp tests/mcp_flows_app.py``: start runs, wait for them, answer
  approvals, call tools; bad input answers MCP errors and the server goes on. Once over streamable HTTP.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import WAIT_SECONDS, close_within, eventually

import podium
from podium.models import register
from podium.testing import ScriptedModel, call, replay
from podium.tools import mcp as pmcp

pytest.importorskip("mcp.server.lowlevel", reason="needs the mcp SDK (2.x): pip install podium[mcp]")

from mcp import Client as MCPClient
from mcp import MCPError, StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent
SERVER_APP = str(ROOT / "tests" / "mcp_server_app.py")
FLOWS_APP = "tests/mcp_flows_app.py"
SLOW = pytest.mark.timeout(240)  # subprocesses that import the mcp SDK take seconds on a busy machine


def calls_in(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# -- Podium as an MCP client --------------------------------------------------------------------------

AGENTS: dict[str, podium.Agent] = {}

register(
    "t.mcp.calc",
    ScriptedModel(
        call("add", a=2, b=3),
        call("fail", reason="testing"),
        call(
            "add", a="two", b=3
        ),  # does not fit the server's schema: the model is told, the server not asked
        call("echo", text="hi", timeout=7),  # a tool's own `timeout` argument reaches the tool
        "the sum is 5",
    ),
)


@podium.flow(name="mcp.calc")
async def calc_flow(ctx: podium.Context, task: str) -> dict[str, Any]:
    result = await AGENTS["calc"].run(ctx, task)
    return {"output": result.output, "tool_calls": result.tool_calls}


def model_of(name: str) -> ScriptedModel:
    from podium.models.registry import _REGISTERED

    model: ScriptedModel = _REGISTERED[name][1]
    return model


@SLOW
async def test_a_stdio_mcp_servers_tools_are_podium_tools_journaled_and_never_replayed(
    tmp_path: Path,
) -> None:
    counted = tmp_path / "calls.txt"
    async with pmcp.connect_stdio(sys.executable, [SERVER_APP], env={"MCP_CALLS": str(counted)}) as server:
        listed = await server.list_tools()
        tools = await server.toolset()
        assert tools.names() == ["add", "fail", "echo"]
        # The schemas are the server's own, exactly (asked of the server object in this process too).
        sys.path.insert(0, str(ROOT / "tests"))
        try:
            app = importlib.import_module("mcp_server_app").app
        finally:
            sys.path.remove(str(ROOT / "tests"))
        own = {t.name: t.input_schema for t in await app.list_tools()}
        assert {t.name: t.parameters for t in tools} == own == {s["name"]: s["inputSchema"] for s in listed}
        add = tools.get("add")
        assert add is not None and add.validator is None and add.meta["mcp_tool"] == "add"
        assert add.description.startswith("Add two integers.")

        AGENTS["calc"] = podium.Agent("calc", "Add numbers with the tools.", model="t.mcp.calc", tools=tools)
        settings = podium.Settings(database_url="memory://", poll_seconds=0.05)
        async with podium.Client(settings) as client:
            h = await client.start(calc_flow, "what is 2 + 3?")
            out = await h.result(timeout=WAIT_SECONDS)
            journal = await client.journal(h.id)
        assert out == {"output": "the sum is 5", "tool_calls": 4}

    assert calls_in(counted) == ["add 2 3", "fail testing", "echo hi 7.0"]
    steps = [(e.name, "error" in e.data) for e in journal if e.kind == "step" and e.name.startswith("tool:")]
    assert steps == [("tool:add", False), ("tool:fail", True), ("tool:add", True), ("tool:echo", False)]
    told = [m.content for m in model_of("t.mcp.calc").requests[-1].messages if m.role == "tool"]
    assert told[0].startswith('<untrusted source="tool:add"') and '{"result": 5}' in told[0]  # fenced data
    assert "ERROR: MCPToolError:" in told[1] and "fail was asked to fail: testing" in told[1]
    assert "ERROR: ToolArgumentsError: invalid arguments for add" in told[2]
    assert "'two' is not of type 'integer'" in told[2]
    assert '{"result": "hi 7.0"}' in told[3]

    # Replaying the journal gives the same answer without the server (it is not even running now).
    assert await replay(calc_flow, journal) == out
    assert calls_in(counted) == ["add 2 3", "fail testing", "echo hi 7.0"]


@SLOW
async def test_calls_after_the_connection_closed_fail_and_a_missing_server_is_a_clear_error(
    tmp_path: Path,
) -> None:
    async with pmcp.connect_stdio(sys.executable, [SERVER_APP]) as server:
        tools = await server.toolset(only=["add"], prefix="calc_")
        assert tools.names() == ["calc_add"]
        assert await server.call("add", {"a": 1, "b": 1}) == {"result": 2}
        with pytest.raises(podium.ApplicationError, match=r"Unknown tool: nope"):
            await server.call("nope", {})
        with pytest.raises(podium.UsageError, match="has no tool"):
            await server.toolset(only=["nope"])
    with pytest.raises(podium.ApplicationError, match="is closed"):
        await server.call("add", {"a": 1, "b": 1})
    with pytest.raises(pmcp.MCPConnectionError, match="cannot connect to MCP server"):
        async with pmcp.connect_stdio(str(tmp_path / "no-such-server")):
            pass


def test_mcp_servers_in_podium_toml_are_checked() -> None:
    spec = pmcp.server_spec(
        "git", {"mcp": {"git": {"command": "uvx", "args": ["mcp-server-git"], "env": {"A": "b"}}}}
    )
    assert spec.command == "uvx" and spec.args == ("mcp-server-git",) and spec.url is None
    web = pmcp.server_spec("web", {"mcp": {"web": {"url": "http://127.0.0.1:1/mcp", "timeout": 5}}})
    assert web.url == "http://127.0.0.1:1/mcp" and web.timeout == 5
    for table, message in [
        ({}, "give either command"),
        ({"command": "a", "url": "http://x"}, "give either command"),
        ({"url": "ftp://x"}, "http:// or https://"),
        ({"command": "a", "args": "b"}, "args must be a list"),
        ({"command": "a", "timeout": 0}, "timeout must be a positive"),
        ({"command": "a", "bogus": 1}, "unknown key"),
    ]:
        with pytest.raises(podium.ConfigError, match=message):
            pmcp.server_spec("x", {"mcp": {"x": table}})
    with pytest.raises(
        podium.ConfigError, match=r"no \[mcp.nope\] in podium.toml \(MCP servers declared: x\)"
    ):
        pmcp.server_spec("nope", {"mcp": {"x": {"command": "a"}}})


@pytest.fixture
def podium_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A podium.toml declaring [mcp.calc] (tests/mcp_server_app.py), as ``PODIUM_CONFIG``."""
    counted = tmp_path / "calls.txt"
    config = tmp_path / "podium.toml"
    config.write_text(
        "[mcp.calc]\n"
        f"command = {sys.executable!r}\n"
        f"args = [{SERVER_APP!r}]\n"
        'env = { MCP_CALLS = "${PODIUM_TEST_MCP_CALLS}" }\n'
    )
    monkeypatch.setenv("PODIUM_CONFIG", str(config))
    monkeypatch.setenv("PODIUM_TEST_MCP_CALLS", str(counted))
    yield counted


@SLOW
async def test_a_server_declared_in_podium_toml_connects_lazily_in_each_process(
    tmp_path: Path, podium_toml: Path
) -> None:
    """The run calls `add` here, waits for a signal (leaving memory), and a `podium worker` process
    finishes it: its tools connect to the MCP server on their first call there."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        app = importlib.import_module("mcp_agent_app")
    finally:
        sys.path.remove(str(ROOT / "tests"))
    assert app.calc.names() == ["add", "fail", "echo"]
    assert calls_in(podium_toml) == []  # declaring listed the tools and called none
    db = f"sqlite:///{tmp_path}/podium.db"
    settings = podium.Settings(database_url=db, poll_seconds=0.05)
    client = podium.Client(settings)
    await client.open()
    try:
        h = await client.start(app.durable, "add things")
        await eventually(lambda: client.get(h.id), lambda r: r.status.value == "waiting", what="the wait")
        assert calls_in(podium_toml) == ["add 1 2"]
    finally:
        await close_within(client)
        await pmcp.close_all()

    env = {**os.environ, "PODIUM_DATABASE_URL": db, "PODIUM_POLL_SECONDS": "0.1"}
    worker = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "podium.cli", "worker", "tests/mcp_agent_app.py"],
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with podium.Client(settings, worker=False) as control:
            await control.signal(h.id, "go")
            out = await control.result(h.id, timeout=120)
            journal = await control.journal(h.id)
    finally:
        errors = await _stop(worker)
    assert out == {"first": "first done", "second": "second done"}, errors
    assert calls_in(podium_toml) == ["add 1 2", "add 3 4"]  # each once: nothing finished ran twice
    assert [e.name for e in journal if e.kind == "step" and e.name.startswith("tool:")] == ["tool:add"] * 2


async def _stop(proc: asyncio.subprocess.Process) -> str:
    """SIGINT, as Ctrl-C would, then its stderr (killed if it does not stop within 30 s)."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
    try:
        _, errors = await asyncio.wait_for(proc.communicate(), timeout=30)
    except TimeoutError:
        proc.kill()
        _, errors = await proc.communicate()
    return (errors or b"").decode(errors="replace")


def test_without_the_mcp_package_the_error_names_the_extra(tmp_path: Path) -> None:
    blocked = "import sys; sys.modules['mcp'] = None\n"
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            blocked + "import podium\n"
            "try:\n    podium.tools.mcp.connect_stdio('x')\n"
            "    podium.tools.mcp.require_mcp()\n"
            "except podium.ConfigError as e:\n    print(e)\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "pip install podium[mcp]" in probe.stdout, probe.stderr
    cli = subprocess.run(
        [
            sys.executable,
            "-c",
            blocked
            + "sys.argv = ['podium', 'mcp', 'examples/hello.py']\nfrom podium.cli import main\nmain()",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 1 and "pip install podium[mcp]" in cli.stderr, cli.stderr


# -- Podium as an MCP server --------------------------------------------------------------------------


@asynccontextmanager
async def podium_mcp(tmp_path: Path, *extra: str) -> AsyncIterator[MCPClient]:
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "podium.cli",
            "mcp",
            FLOWS_APP,
            "--tools",
            f"{FLOWS_APP}:tools",
            "--db",
            f"sqlite:///{tmp_path}/podium.db",
            *extra,
        ],
        cwd=str(ROOT),
        env={"PODIUM_POLL_SECONDS": "0.05"},
    )
    async with MCPClient(params) as client:
        yield client


def data(result: Any) -> Any:
    assert not result.is_error, result.content
    return result.structured_content


def error_text(result: Any) -> str:
    assert result.is_error, result
    return " ".join(getattr(c, "text", "") for c in result.content)


@SLOW
async def test_podium_mcp_starts_flows_waits_and_answers_approvals_over_stdio(tmp_path: Path) -> None:
    from mcp_flows_app import Refund

    async with podium_mcp(tmp_path) as mcp:
        listed = {t.name: t for t in (await mcp.list_tools()).tools}
        generic = ["get_run", "wait_run", "list_approvals", "decide_approval"]
        assert sorted(listed) == sorted([*generic, "start_mcp_greet", "start_mcp_refund", "shout", "wire"])
        expected = Refund.model_json_schema()
        expected.pop("title")
        assert listed["start_mcp_refund"].input_schema == expected  # the flow's input type, via pydantic
        assert listed["start_mcp_greet"].input_schema["properties"] == {"input": {"type": "string"}}
        assert "Greet someone by name." in (listed["start_mcp_greet"].description or "")

        started = data(await mcp.call_tool("start_mcp_greet", {"input": "ann"}))
        assert started["flow"] == "mcp.greet"
        done = data(await mcp.call_tool("wait_run", {"run_id": started["run_id"], "timeout_seconds": 60}))
        assert done["done"] is True and done["status"] == "completed" and done["output"] == "hello, ann"
        assert data(await mcp.call_tool("get_run", {"run_id": started["run_id"]}))["output"] == "hello, ann"

        # A flow that waits for a human: the approval is answered through MCP, with an edited payload.
        run_id = data(await mcp.call_tool("start_mcp_refund", {"order_id": "A1", "amount": 50}))["run_id"]
        waiting = data(await mcp.call_tool("wait_run", {"run_id": run_id, "timeout_seconds": 0.2}))
        for _ in range(200):
            if waiting["status"] == "waiting":
                break
            waiting = data(await mcp.call_tool("wait_run", {"run_id": run_id, "timeout_seconds": 0.2}))
        assert waiting["done"] is False and waiting["status"] == "waiting"
        assert waiting["pending_approvals"][0]["payload"] == {"order_id": "A1", "amount": 50.0}
        inbox = data(await mcp.call_tool("list_approvals", {}))["approvals"]
        assert [(a["run_id"], a["name"]) for a in inbox] == [(run_id, "refund")]
        decided = data(
            await mcp.call_tool(
                "decide_approval",
                {"run_id": run_id, "decision": "approve", "payload": {"order_id": "A1", "amount": 20}},
            )
        )
        assert decided == {"run_id": run_id, "approval": "refund", "decision": "approve"}
        done = data(await mcp.call_tool("wait_run", {"run_id": run_id, "timeout_seconds": 60}))
        assert done["output"] == {"refunded": 20, "by": "mcp", "edited": True}
        assert "already" in error_text(
            await mcp.call_tool("decide_approval", {"run_id": run_id, "decision": "reject"})
        )

        # A rejection with a comment.
        other = data(await mcp.call_tool("start_mcp_refund", {"order_id": "B2", "amount": 900}))["run_id"]
        for _ in range(200):
            if data(await mcp.call_tool("list_approvals", {"run_id": other}))["approvals"]:
                break
            await asyncio.sleep(0.05)
        data(
            await mcp.call_tool(
                "decide_approval", {"run_id": other, "decision": "reject", "comment": "too much", "by": "bob"}
            )
        )
        done = data(await mcp.call_tool("wait_run", {"run_id": other, "timeout_seconds": 60}))
        assert done["output"] == {"refunded": 0.0, "why": "too much"}

        # Podium tools are called directly; one an approval rule would stop is refused.
        assert data(await mcp.call_tool("shout", {"text": "hi"})) == {"result": "HI"}
        assert data(await mcp.call_tool("wire", {"amount": 5})) == {"result": "sent 5.0"}
        assert "needs a human's approval" in error_text(await mcp.call_tool("wire", {"amount": 500}))


@SLOW
async def test_podium_mcp_answers_bad_input_with_mcp_errors_and_keeps_serving(tmp_path: Path) -> None:
    async with podium_mcp(tmp_path, "--flows", "mcp.refund", "--no-worker") as mcp:
        names = [t.name for t in (await mcp.list_tools()).tools]
        assert "start_mcp_refund" in names and "start_mcp_greet" not in names
        with pytest.raises(MCPError, match="unknown tool 'start_nope'"):
            await mcp.call_tool("start_nope", {})
        with pytest.raises(MCPError, match="unknown tool 'start_mcp_greet'"):
            await mcp.call_tool("start_mcp_greet", {"input": "x"})  # not exposed with --flows
        bad = error_text(await mcp.call_tool("start_mcp_refund", {"order_id": "A1", "amount": -5}))
        assert "invalid input for flow 'mcp.refund'" in bad and "amount" in bad
        assert "amount" in error_text(await mcp.call_tool("start_mcp_refund", {"order_id": "A1"}))
        assert "no run with id 'nope'" in error_text(await mcp.call_tool("get_run", {"run_id": "nope"}))
        assert "no run with id 'nope'" in error_text(await mcp.call_tool("wait_run", {"run_id": "nope"}))
        assert "timeout_seconds" in error_text(
            await mcp.call_tool("wait_run", {"run_id": "x", "timeout_seconds": "soon"})
        )
        assert "run_id" in error_text(await mcp.call_tool("get_run", {}))
        assert "decision" in error_text(
            await mcp.call_tool("decide_approval", {"run_id": "x", "decision": "maybe"})
        )
        assert "text" in error_text(await mcp.call_tool("shout", {}))
        # ... and it still serves (with --no-worker the run waits for a `podium worker`).
        run_id = data(await mcp.call_tool("start_mcp_refund", {"order_id": "C3", "amount": 1}))["run_id"]
        run = data(await mcp.call_tool("get_run", {"run_id": run_id}))
        assert run["flow"] == "mcp.refund" and run["status"] == "pending"


def test_podium_mcp_names_what_it_cannot_serve(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/podium.db"
    for args, message in [
        (["--flows", "mcp.greet,nope"], "no flow named 'nope' (loaded: mcp.greet, mcp.refund)"),
        (["--tools", f"{FLOWS_APP}:Refund"], "is not a podium Toolset or tool"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "podium.cli", "mcp", FLOWS_APP, "--db", db, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 1 and message in " ".join(done.stderr.split()), done.stderr


@SLOW
async def test_podium_mcp_over_streamable_http_with_podiums_own_mcp_client(tmp_path: Path) -> None:
    server = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "podium.cli", "mcp", FLOWS_APP, "--http", "--port", "0"],
        *["--db", f"sqlite:///{tmp_path}/podium.db"],
        cwd=ROOT,
        env={**os.environ, "PODIUM_POLL_SECONDS": "0.05"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = await asyncio.wait_for(_read_url(server), timeout=120)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")
        async with pmcp.connect_http(url, name="podium") as remote:
            tools = await remote.toolset()
            assert "start_mcp_greet" in tools and "wait_run" in tools
            started = await remote.call("start_mcp_greet", {"input": "bo"})
            assert isinstance(started, dict)
            done = await remote.call("wait_run", {"run_id": started["run_id"], "timeout_seconds": 60})
            assert isinstance(done, dict) and done["output"] == "hello, bo"
            with pytest.raises(podium.ApplicationError, match=r"invalid input for flow 'mcp\.greet'"):
                await remote.call("start_mcp_greet", {"input": 5})
    finally:
        await _stop(server)


async def _read_url(proc: asyncio.subprocess.Process) -> str:
    """The URL `podium mcp --http` reports on stderr once it listens."""
    assert proc.stderr is not None
    lines = []
    while line := (await proc.stderr.readline()).decode():
        lines.append(line)
        if "MCP at " in line:
            return line.split("MCP at ", 1)[1].strip()
    raise AssertionError("podium mcp --http exited: " + "".join(lines))


@SLOW
async def test_podium_mcp_acts_as_its_api_key_tenant_and_role(tmp_path: Path) -> None:
    """``podium mcp --key`` acts as the key: its tenant's runs only, its role's actions only, checked at
    every call (a revoked key stops at once)."""
    import mcp_flows_app  # noqa: F401 - registers mcp.greet here too

    from podium.policies.access import Principal

    db = f"sqlite:///{tmp_path}/podium.db"
    async with podium.Client(podium.Settings(database_url=db), worker=False) as client:
        _, viewer = await client.create_key("acme-viewer", "viewer", tenant="acme")
        ops, operator = await client.create_key("acme-ops", "operator", tenant="acme")
        theirs = await client.acting_as(Principal.local("globex")).start("mcp.greet", "globex-secret")
    async with podium_mcp(tmp_path, "--key", viewer, "--no-worker") as mcp:
        assert "may not start" in error_text(await mcp.call_tool("start_mcp_greet", {"input": "x"}))
        assert "may not start" in error_text(await mcp.call_tool("shout", {"text": "hi"}))
        assert "no run with id" in error_text(await mcp.call_tool("get_run", {"run_id": theirs.id}))
        assert data(await mcp.call_tool("list_approvals", {}))["approvals"] == []
    async with podium_mcp(tmp_path, "--key", operator, "--no-worker") as mcp:
        started = data(await mcp.call_tool("start_mcp_greet", {"input": "ann"}))
        async with podium.Client(podium.Settings(database_url=db), worker=False) as client:
            assert (await client.get(started["run_id"])).tenant == "acme"
            await client.revoke_key(ops.id)
        assert "revoked" in error_text(await mcp.call_tool("get_run", {"run_id": started["run_id"]}))
