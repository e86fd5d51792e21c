"""Handoff: a triage agent passes the customer to billing or to tech support; the model chooses.

An agent's ``handoffs`` become tools named ``transfer_to_<agent>``; when the model calls one, the chosen
specialist continues the same conversation (and answers). The handoff is in the journal like any turn.

    python examples/agents/handoff.py
"""

from __future__ import annotations

from typing import Any

import podium
from podium.models import ModelRequest, register
from podium.testing import ScriptedModel, call


@podium.tool
def find_charges(customer: str) -> list[dict[str, Any]]:
    """The customer's card charges this month.

    Args:
        customer: The customer's email.
    """
    return [{"date": "05-03", "amount": 12.0}, {"date": "05-03", "amount": 12.0}]


@podium.tool
def service_status(service: str) -> str:
    """Whether a service is up.

    Args:
        service: "api", "dashboard" or "exports".
    """
    return "degraded: exports are delayed by about 20 minutes" if service == "exports" else "up"


def triage_choice(request: ModelRequest) -> Any:
    """What a real model decides from the question: money goes to billing, the rest to tech."""
    question = request.messages[-1].content.lower()
    money = any(word in question for word in ("charge", "invoice", "refund", "paid"))
    return call("transfer_to_billing" if money else "transfer_to_tech")


# Offline, scripted models give fixed replies. For a real model, configure one in podium.toml and pass its
# name as model= below (and drop these lines):
#     [models.smart]
#     provider = "openai"                 # OpenAI-compatible; "anthropic"; or "local" (embedded SmolLM2)
#     model = "gpt-4o-mini"
#     api_key_env = "OPENAI_API_KEY"
# A script counts turns over the whole conversation: turn 0 is triage's handoff, so the specialists' scripts
# start at turn 1 (their first entry is never used).
register("handoff.triage", ScriptedModel(triage_choice))
register(
    "handoff.billing",
    ScriptedModel(
        "", call("find_charges", customer="ann@example.com"), "You were charged $12 twice; refunded $12."
    ),
)
register(
    "handoff.tech",
    ScriptedModel("", call("service_status", service="exports"), "Exports are delayed by about 20 minutes."),
)

billing = podium.Agent(
    "billing", "Resolve charges and refunds.", model="handoff.billing", tools=[find_charges]
)
tech = podium.Agent("tech", "Answer technical problems.", model="handoff.tech", tools=[service_status])
triage = podium.Agent(
    "triage", "Send the customer to the right team.", model="handoff.triage", handoffs=[billing, tech]
)


@podium.flow(name="agents.handoff")
async def handoff(ctx: podium.Context, question: str) -> dict[str, str]:
    result = await triage.run(ctx, question)
    return {"answered_by": result.agent, "answer": result.output}


if __name__ == "__main__":
    print(podium.run(handoff, "I was charged twice this month (ann@example.com)"))
    print(podium.run(handoff, "My export has not arrived"))
