"""Agent names are unique (a second agent of the same name is refused), and a specialist reached by a
handoff gets its own turn budget."""

from __future__ import annotations

from typing import Any

from conftest import WAIT_SECONDS, close_within, settings_for

import podium
from podium.models import register
from podium.testing import ScriptedModel, call


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
