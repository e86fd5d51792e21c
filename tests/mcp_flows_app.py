"""Flows and tools that tests/test_mcp.py serves with ``podium mcp tests/mcp_flows_app.py``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

import podium


class Refund(BaseModel):
    order_id: str = Field(description="The order to refund")
    amount: float = Field(gt=0, description="Dollars to give back")


@podium.flow(name="mcp.greet")
async def greet(ctx: podium.Context, name: str) -> str:
    """Greet someone by name."""
    return await ctx.step("greet", lambda: f"hello, {name}")


@podium.flow(name="mcp.refund")
async def refund(ctx: podium.Context, req: Refund) -> dict[str, Any]:
    """Refund an order; a human approves (and may change) the amount first."""
    decision = await ctx.approval("refund", payload={"order_id": req.order_id, "amount": req.amount})
    if not decision:
        return {"refunded": 0.0, "why": decision.comment}
    amount = decision.payload["amount"] if isinstance(decision.payload, dict) else req.amount
    return {"refunded": amount, "by": decision.by, "edited": decision.edited}


@podium.tool
def shout(text: str) -> str:
    """Upper-case a text.

    Args:
        text: What to shout.
    """
    return text.upper()


@podium.tool
def wire(amount: float) -> str:
    """Send money (a human must approve amounts over 100)."""
    return f"sent {amount}"


tools = podium.Toolset(shout, wire).requires_approval(lambda t, args: args["amount"] > 100, tools=["wire"])
