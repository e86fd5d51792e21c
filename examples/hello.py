"""The smallest flow: `podium run examples/hello.py:hello --input '"world"'`."""

import podium


@podium.step
async def greet(name: str) -> str:
    return f"hello {name}"


@podium.flow
async def hello(ctx: podium.Context, name: str) -> str:
    return await greet(name)


@podium.flow
async def needs_ok(ctx: podium.Context, amount: float) -> dict[str, object]:
    """Waits for a human when the amount is large."""
    decision = await ctx.approval("spend", payload={"amount": amount})
    return {"approved": decision.approved, "amount": decision.payload["amount"], "by": decision.by}


if __name__ == "__main__":
    print(podium.run(hello, "world"))
