"""Tools and agents, driven by a scripted model (``podium.testing.ScriptedModel``) for exact assertions:
schemas from signatures, validation errors the model can correct, grants and refusals, tools that raise,
approval rules with edited arguments, handoffs, supervisors, output schemas, turn limits, and replay."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import WAIT_SECONDS, wait_approval
from pydantic import BaseModel

import podium
from podium.models import register
from podium.testing import ScriptedModel, call, replay

LEDGER: list[str] = []


@pytest.fixture(autouse=True)
def _clear() -> None:
    LEDGER.clear()


@podium.tool
async def lookup_order(order_id: str) -> dict[str, Any]:
    """Find an order by its id.

    Args:
        order_id: The order's id, like "A1".
    """
    LEDGER.append(f"lookup:{order_id}")
    return {"order_id": order_id, "total": 80.0, "status": "delivered"}


@podium.tool
def refund(order_id: str, amount: float, reason: str = "") -> str:
    """Refund part or all of an order.

    Args:
        order_id: The order to refund.
        amount: Dollars to give back (positive).
        reason: Why, for the records.
    """
    LEDGER.append(f"refund:{order_id}:{amount}")
    return f"refunded {amount:.2f} on {order_id}"


@podium.tool
async def flaky_inventory(sku: str) -> int:
    """Units in stock."""
    raise RuntimeError("inventory service is down")


class Answer(BaseModel):
    answer: str
    amount: float


def test_a_tool_schema_comes_from_the_signature_and_docstring() -> None:
    s = refund.schema()["function"]
    assert s["name"] == "refund" and s["description"] == "Refund part or all of an order."
    props = s["parameters"]["properties"]
    assert props["amount"] == {
        "type": "number",
        "title": "Amount",
        "description": "Dollars to give back (positive).",
    }
    assert s["parameters"]["required"] == ["order_id", "amount"]
    assert s["parameters"]["additionalProperties"] is False
    with pytest.raises(podium.tools.ToolArgumentsError, match="amount: Input should be a valid number"):
        refund.validate({"order_id": "A1", "amount": "lots"})
    with pytest.raises(podium.tools.ToolArgumentsError, match="Extra inputs are not permitted"):
        refund.validate({"order_id": "A1", "amount": 1, "bogus": 2})
    with pytest.raises(podium.UsageError, match="needs a type annotation"):
        podium.tool(name="untyped")(lambda x: x)


def test_toolsets_compose_and_refuse_clashes() -> None:
    tools = podium.Toolset(lookup_order, refund)
    assert tools.names() == ["lookup_order", "refund"]
    assert tools.filter(["refund"]).names() == ["refund"]
    assert tools.prefix("shop_").names() == ["shop_lookup_order", "shop_refund"]
    with pytest.raises(podium.UsageError, match="tool names may hold only"):
        tools.prefix("shop.")
    assert podium.Toolset(tools, tools.prefix("b_")).names() == [
        "lookup_order",
        "refund",
        "b_lookup_order",
        "b_refund",
    ]
    other = podium.Tool(name="refund", description="another refund", parameters={}, fn=print)
    with pytest.raises(podium.UsageError, match="two tools are named"):
        podium.Toolset(refund, other)
    with pytest.raises(podium.UsageError, match="no tools named 'nope'"):
        tools.filter(["nope"])


def agent_flow(name: str, agent: podium.Agent) -> podium.Flow[Any, Any]:
    @podium.flow(name=name)
    async def run(ctx: podium.Context, task: str) -> Any:
        result = await agent.run(ctx, task)
        out = result.output
        return {
            "output": out.model_dump() if isinstance(out, BaseModel) else out,
            "agent": result.agent,
            "turns": result.turns,
            "tool_calls": result.tool_calls,
            "handoffs": result.handoffs,
        }

    return run


register(
    "t.support",
    ScriptedModel(
        call("lookup_order", order_id="A1"),
        [call("refund", order_id="A1", amount="twenty")],  # invalid: the model is told and corrects it
        [call("refund", order_id="A1", amount=20, reason="late"), call("flaky_inventory", sku="X")],
        call("delete_everything"),  # not granted: refused, and the attempt journaled
        'Here you go: ```json\n{"answer": "refunded", "amount": 20}\n```',
    ),
)
support = podium.Agent(
    "support",
    "Help customers with orders. Look orders up first.",
    model="t.support",
    tools=[lookup_order, refund, flaky_inventory],
    output=Answer,
)
support_flow = agent_flow("agents.support", support)


async def test_an_agent_calls_tools_corrects_itself_and_answers_in_schema(client: podium.Client) -> None:
    h = await client.start(support_flow, "Order A1 arrived late, refund 20")
    out = await h.result(timeout=WAIT_SECONDS)
    assert out == {
        "output": {"answer": "refunded", "amount": 20.0},
        "agent": "support",
        "turns": 5,
        "tool_calls": 5,
        "handoffs": [],
    }
    assert LEDGER == ["lookup:A1", "refund:A1:20.0"]
    journal = await client.journal(h.id)
    in_order = sorted(
        (e for e in journal if e.kind == "step"), key=lambda e: [int(x) for x in e.position.split(".")]
    )
    steps = [(e.name, "error" in e.data) for e in in_order]
    assert steps == [
        ("model:t.support", False),
        ("tool:lookup_order", False),
        ("model:t.support", False),
        ("refused:refund", False),
        ("model:t.support", False),
        ("tool:refund", False),
        ("tool:flaky_inventory", True),
        ("model:t.support", False),
        ("refused:delete_everything", False),
        ("model:t.support", False),
    ]
    # What the model was told: the validation error, the tool's failure and the refusal, as tool messages.
    told = [m.content for m in support_model().requests[-1].messages if m.role == "tool"]
    assert "amount: Input should be a valid number" in told[1]
    # a tool's answer reaches the model fenced as untrusted data (podium.policies.taint)
    assert told[2].startswith('<untrusted source="tool:refund"') and "refunded 20.00 on A1" in told[2]
    assert "inventory service is down" in told[3]
    assert "not available to you" in told[4] and "lookup_order, refund, flaky_inventory" in told[4]
    # Replaying the journal runs no tool and gives the same answer.
    LEDGER.clear()
    assert await replay(support_flow, journal) == out
    assert LEDGER == []


def support_model() -> ScriptedModel:
    from podium.models.registry import _REGISTERED

    model: ScriptedModel = _REGISTERED["t.support"][1]
    return model


register("t.loop", ScriptedModel(call("lookup_order", order_id="A1")))
looper = podium.Agent("looper", "Never stop.", model="t.loop", tools=[lookup_order], max_turns=3)
looper_flow = agent_flow("agents.looper", looper)


async def test_a_model_that_loops_forever_hits_the_turn_limit(client: podium.Client) -> None:
    h = await client.start(looper_flow, "go")
    with pytest.raises(podium.RunFailedError, match="did not answer within 3 turns"):
        await h.result(timeout=WAIT_SECONDS)
    assert LEDGER == ["lookup:A1"] * 3


register("t.big_refund", ScriptedModel(call("refund", order_id="B2", amount=900), "done"))
guarded = podium.Agent(
    "guarded",
    "Refund what is asked.",
    model="t.big_refund",
    tools=podium.Toolset(refund).requires_approval(lambda tool, args: args["amount"] > 500),
)
guarded_flow = agent_flow("agents.guarded", guarded)


async def test_a_refund_above_500_waits_for_a_human_who_may_edit_it(client: podium.Client) -> None:
    h = await client.start(guarded_flow, "refund B2 in full")
    pending = await wait_approval(client, h.id)
    assert pending[0].name == "tool:refund"
    assert pending[0].payload == {
        "tool": "refund",
        "arguments": {"order_id": "B2", "amount": 900.0, "reason": ""},
    }
    assert LEDGER == []  # nothing refunded while the human thinks
    await client.approve(
        h.id, payload={"tool": "refund", "arguments": {"order_id": "B2", "amount": 450}}, by="ann"
    )
    assert (await h.result(timeout=WAIT_SECONDS))["output"] == "done"
    assert LEDGER == ["refund:B2:450.0"]


register("t.triage", ScriptedModel(call("transfer_to_billing")))
# The script is indexed by the assistant messages in the request: the triage agent's handoff is the first.
register(
    "t.billing", ScriptedModel("(never used)", call("lookup_order", order_id="C3"), "billing says: refunded")
)
billing = podium.Agent("billing", "Billing questions.", model="t.billing", tools=[lookup_order])
triage = podium.Agent("triage", "Route the customer.", model="t.triage", handoffs=[billing])
triage_flow = agent_flow("agents.triage", triage)


async def test_a_handoff_lets_the_specialist_continue_the_conversation(client: podium.Client) -> None:
    out = await (await client.start(triage_flow, "I was charged twice")).result(timeout=WAIT_SECONDS)
    assert out == {
        "output": "billing says: refunded",
        "agent": "billing",
        "turns": 3,
        "tool_calls": 1,
        "handoffs": ["billing"],
    }
    schema_names = [t["function"]["name"] for t in triage._tool_schemas()]
    assert schema_names == ["transfer_to_billing"]


register("t.researcher", ScriptedModel("the sky is blue"))
register(
    "t.boss", ScriptedModel(call("researcher", task="What colour is the sky?"), "Report: the sky is blue")
)
researcher = podium.Agent("researcher", "Research questions.", model="t.researcher")
boss = podium.Agent("boss", "Delegate research.", model="t.boss", tools=[researcher.as_tool()])
boss_flow = agent_flow("agents.boss", boss)


async def test_a_supervisor_delegates_to_a_sub_agent_as_a_child_run(client: podium.Client) -> None:
    h = await client.start(boss_flow, "Write a report")
    out = await h.result(timeout=WAIT_SECONDS)
    assert out["output"] == "Report: the sky is blue"
    children = await client.list(flow="agent.researcher")
    assert len(children) == 1 and children[0].parent_id == h.id and children[0].output == "the sky is blue"
    told = [m.content for m in ScriptedModelOf("t.boss").requests[-1].messages if m.role == "tool"]
    assert told == ['"the sky is blue"'] or told == ["the sky is blue"]


def ScriptedModelOf(name: str) -> ScriptedModel:
    from podium.models.registry import _REGISTERED

    model: ScriptedModel = _REGISTERED[name][1]
    return model


async def test_agents_validate_their_arguments() -> None:
    with pytest.raises(podium.UsageError, match="needs instructions"):
        podium.Agent("x", " ")
    with pytest.raises(podium.UsageError, match="agent name"):
        podium.Agent("has space", "hi")
    with pytest.raises(podium.UsageError, match="max_turns"):
        podium.Agent("x", "hi", max_turns=0)
