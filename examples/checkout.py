"""A checkout flow: parallel pricing, an approval for large orders, a durable timer, a payment step.

podium run examples/checkout.py:checkout --input '{"id": "o-1", "items": ["book", "lamp"]}'
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

import podium


class Order(BaseModel):
    id: str
    items: list[str]


class Receipt(BaseModel):
    order: str
    total: float
    charge_id: str
    approved_by: str | None = None


PRICES = {"book": 18.0, "lamp": 49.0, "sofa": 1450.0}


@podium.step(retries=2, timeout=10)
async def price(item: str) -> float:
    await asyncio.sleep(0.01)  # a catalogue lookup
    if item not in PRICES:
        raise podium.ApplicationError(f"unknown item {item!r}", type="UnknownItem", retryable=False)
    return PRICES[item]


@podium.step(retries=podium.RetryPolicy(max_attempts=5, initial="200ms", max_delay="5s"))
async def charge(order_id: str, amount: float) -> str:
    info = podium.current_step()
    key = info.idempotency_key if info else order_id  # send this to the payment API to deduplicate
    return f"ch_{abs(hash((key, amount))) % 10**8:08d}"


@podium.flow
async def checkout(ctx: podium.Context, order: Order) -> Receipt:
    prices = await ctx.gather(*(price(i) for i in order.items))
    total = sum(prices)
    approved_by = None
    if total > 1000:
        decision = await ctx.approval("large_order", payload={"order": order.id, "total": total})
        if not decision:
            raise podium.ApplicationError("order rejected by a reviewer", type="Rejected", retryable=False)
        total = float(decision.payload["total"])
        approved_by = decision.by
    await ctx.sleep("1s")  # e.g. a cooling-off period; long timers let the run leave memory
    charge_id = await charge(order.id, total)
    return Receipt(order=order.id, total=total, charge_id=charge_id, approved_by=approved_by)


if __name__ == "__main__":
    print(podium.run(checkout, Order(id="o-1", items=["book", "lamp"])))
