"""An agent whose tools come from the MCP server declared as ``[mcp.calc]`` in podium.toml
(``PODIUM_CONFIG``): tests/test_mcp.py starts a run here, lets it wait for a signal, and has a
``podium worker`` process finish it, so the second half of the run calls the MCP server over a
connection made in that other process."""

from __future__ import annotations

from typing import Any

import podium
from podium.models import register
from podium.testing import ScriptedModel, call

calc = podium.tools.mcp.server("calc")  # reads the tool list now; each process connects on first call

register("t.mcp.first", ScriptedModel(call("add", a=1, b=2), "first done"))
register("t.mcp.second", ScriptedModel(call("add", a=3, b=4), "second done"))
first = podium.Agent("mcp_first", "Add numbers.", model="t.mcp.first", tools=calc)
second = podium.Agent("mcp_second", "Add numbers.", model="t.mcp.second", tools=calc)


@podium.flow(name="mcp.durable")
async def durable(ctx: podium.Context, task: str) -> dict[str, Any]:
    a = await first.run(ctx, task)
    await ctx.wait_for_signal("go")  # the run leaves memory here; another process resumes it
    b = await second.run(ctx, task)
    return {"first": a.output, "second": b.output}
