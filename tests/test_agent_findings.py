"""Bugs in ``podium.agents`` found while writing the agent examples, pinned as strict xfails until fixed.

Each test passes once the bug is fixed (whichever of the fixes named in it is chosen); ``strict=True`` makes
the fix visible: the xfail then fails, and the marker should go.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import WAIT_SECONDS, close_within, settings_for

import podium
from podium.models import register
from podium.testing import ScriptedModel, call


@pytest.mark.xfail(
    strict=True,
    reason="Agent.flow registers 'agent.<name>' from a closure whose module and qualname are the same for "
    "every agent, so the registry's clash check never fires: a second agent with the same name silently "
    "replaces the first one's flow, and the first agent's as_tool() then runs the second agent",
)
async def test_a_second_agent_with_the_same_name_does_not_take_over_the_first_ones_tool() -> None:
    register("findings.first", ScriptedModel("the first agent answers"))
    register("findings.second", ScriptedModel("the second agent answers"))
    register("findings.boss", ScriptedModel(call("twin", task="answer"), lambda r: r.messages[-1].content))
    first = podium.Agent("twin", "The first.", model="findings.first")
    boss = podium.Agent("twin_boss", "Delegate.", model="findings.boss", tools=[first.as_tool()])
    try:
        podium.Agent("twin", "Another agent, elsewhere, with the same name.", model="findings.second").flow  # noqa: B018
    except podium.UsageError:
        return  # fixed by refusing the clash, as @podium.flow does for two flows of one name

    @podium.flow(name="findings.twin_boss")
    async def ask_boss(ctx: podium.Context, task: str) -> Any:
        return (await boss.run(ctx, task)).output

    client = podium.Client(settings_for("memory://"))
    await client.open()
    try:
        out = await (await client.start(ask_boss, "go")).result(timeout=WAIT_SECONDS)
    finally:
        await close_within(client)
    assert out == "the first agent answers"


@pytest.mark.xfail(
    strict=True,
    reason="Agent.run checks the turns of the whole conversation against the current agent's max_turns, so a "
    "specialist reached by a handoff gets max_turns minus the turns spent before it (none left here)",
)
async def test_a_specialist_reached_by_handoff_gets_its_own_max_turns() -> None:
    register("findings.router", ScriptedModel(call("transfer_to_one_shot")))
    register("findings.one_shot", ScriptedModel("", "answered in one turn"))  # turn 0 was the router's
    one_shot = podium.Agent("one_shot", "Answer at once.", model="findings.one_shot", max_turns=1)
    router = podium.Agent("router", "Route.", model="findings.router", handoffs=[one_shot])

    @podium.flow(name="findings.router")
    async def route(ctx: podium.Context, task: str) -> Any:
        return (await router.run(ctx, task)).output

    client = podium.Client(settings_for("memory://"))
    await client.open()
    try:
        out = await (await client.start(route, "go")).result(timeout=WAIT_SECONDS)
    finally:
        await close_within(client)
    assert out == "answered in one turn"
