"""Writer and reviewer: a reviewer with a structured verdict can send the draft back, at most N rounds.

The reviewer's ``output=Review`` makes its answer validated JSON; a rejected draft goes back to the writer
with the feedback, in the writer's own conversation. The loop is plain Python, bounded by ``max_rounds``.

    python examples/agents/reviewer.py
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

import podium
from podium.models import ModelRequest, register
from podium.testing import ScriptedModel


class Review(BaseModel):
    approved: bool
    feedback: str


class Job(BaseModel):
    brief: str
    max_rounds: int = 3


def judge(request: ModelRequest) -> str:
    """What a real reviewer would say: a product blurb must name the price."""
    if "$" not in request.messages[-1].content:
        return '{"approved": false, "feedback": "Say what it costs."}'
    return '{"approved": true, "feedback": "Clear, and it names the price."}'


# Offline, scripted models give fixed replies. For a real model, configure one in podium.toml and pass its
# name as model= below (and drop these lines):
#     [models.smart]
#     provider = "openai"                 # OpenAI-compatible; "anthropic"; or "local" (embedded SmolLM2)
#     model = "gpt-4o-mini"
#     api_key_env = "OPENAI_API_KEY"
register(
    "reviewer.writer",
    ScriptedModel(
        "Podium Cloud runs your agents durably.",
        "Podium Cloud runs your agents durably, from $20 a month.",
    ),
)
register("reviewer.reviewer", ScriptedModel(judge))

writer = podium.Agent("writer", "Write a one-line product blurb.", model="reviewer.writer")
reviewer = podium.Agent(
    "reviewer", "Approve the blurb, or say what to fix.", model="reviewer.reviewer", output=Review
)


@podium.flow(name="agents.reviewer")
async def reviewed(ctx: podium.Context, job: Job) -> dict[str, Any]:
    draft = await writer.run(ctx, job.brief)
    review: Review = (await reviewer.run(ctx, draft.output)).output
    rounds = 1
    while not review.approved and rounds < job.max_rounds:  # send it back, at most max_rounds reviews
        revise = {"role": "user", "content": f"The reviewer says: {review.feedback} Revise it."}
        draft = await writer.run(ctx, [*draft.messages, revise])  # the writer's conversation goes on
        review = (await reviewer.run(ctx, draft.output)).output
        rounds += 1
    return {"text": draft.output, "approved": review.approved, "rounds": rounds}


if __name__ == "__main__":
    print(podium.run(reviewed, Job(brief="A blurb for Podium Cloud")))
