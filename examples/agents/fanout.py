"""Parallel fan-out: three analysts judge an idea at the same time, then a step aggregates their verdicts.

``ctx.gather`` runs the agents concurrently (each with its own journaled model and tool steps); the
aggregation is a plain step, so its decision is journaled too.

    python examples/agents/fanout.py
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

import podium
from podium.models import register
from podium.testing import ScriptedModel, call


class Verdict(BaseModel):
    score: int  # 1 (no) to 10 (yes)
    reason: str


@podium.tool
def price_of(item: str) -> float:
    """Dollars per unit of a resource.

    Args:
        item: The resource, like "gpu hour".
    """
    return {"gpu hour": 2.10, "storage gb": 0.02}.get(item, 1.0)


# Offline, scripted models give fixed replies. For a real model, configure one in podium.toml and pass its
# name as model= below (and drop these lines):
#     [models.smart]
#     provider = "openai"                 # OpenAI-compatible; "anthropic"; or "local" (embedded SmolLM2)
#     model = "gpt-4o-mini"
#     api_key_env = "OPENAI_API_KEY"
register(
    "fanout.market", ScriptedModel('{"score": 8, "reason": "Teams ask for agents that survive crashes."}')
)
register(
    "fanout.cost",
    ScriptedModel(call("price_of", item="gpu hour"), '{"score": 6, "reason": "GPU hours cost $2.10."}'),
)
register("fanout.risk", ScriptedModel('{"score": 5, "reason": "A crowded field."}'))

analysts = [
    podium.Agent(
        f"{aspect}_analyst",
        f"Judge the product idea for {aspect} only. Score it from 1 to 10.",
        model=f"fanout.{aspect}",
        tools=[price_of] if aspect == "cost" else [],
        output=Verdict,
    )
    for aspect in ("market", "cost", "risk")
]


@podium.step(name="fanout.decide")
async def decide(verdicts: dict[str, Any]) -> dict[str, Any]:
    """Go if the mean score is at least 6; name the weakest aspect."""
    mean = sum(v["score"] for v in verdicts.values()) / len(verdicts)
    weakest = min(verdicts, key=lambda name: verdicts[name]["score"])
    return {"go": mean >= 6, "mean": round(mean, 2), "weakest": weakest, "verdicts": verdicts}


@podium.flow(name="agents.fanout")
async def fanout(ctx: podium.Context, idea: str) -> dict[str, Any]:
    results = await ctx.gather(*(analyst.run(ctx, idea) for analyst in analysts))
    return await decide({r.agent: r.output.model_dump() for r in results})


if __name__ == "__main__":
    print(podium.run(fanout, "A hosted Podium for agent teams"))
