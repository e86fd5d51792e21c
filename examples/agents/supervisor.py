"""Supervisor: a trip planner delegates to a flight agent and a hotel agent, then writes the plan.

``agent.as_tool()`` makes an agent a tool of another: each call is a child run of its own (with its own
journal, visible in ``podium runs``), and the supervisor waits for it durably. Two calls in one turn run
in parallel.

    python examples/agents/supervisor.py
"""

from __future__ import annotations

from typing import Any

import podium
from podium.models import ModelRequest, register
from podium.testing import ScriptedModel, call


@podium.tool
def search_flights(origin: str, destination: str) -> list[dict[str, Any]]:
    """Flights between two airports.

    Args:
        origin: IATA code, like "BER".
        destination: IATA code, like "LIS".
    """
    return [
        {"flight": "TP 541", "departs": "09:40", "price": 180},
        {"flight": "FR 12", "departs": "06:05", "price": 95},
    ]


@podium.tool
def search_hotels(city: str, max_price: float) -> list[dict[str, Any]]:
    """Hotels in a city at most ``max_price`` dollars a night.

    Args:
        city: The city.
        max_price: Dollars per night.
    """
    hotels = [{"hotel": "Alfama Rooms", "price": 120}, {"hotel": "Palacio", "price": 310}]
    return [h for h in hotels if h["price"] <= max_price]


def write_plan(request: ModelRequest) -> str:
    """The planner's last turn: it reads what the sub-agents answered (the tool messages)."""
    return "Plan: " + " ".join(m.content for m in request.messages if m.role == "tool")


# Offline, scripted models give fixed replies. For a real model, configure one in podium.toml and pass its
# name as model= below (and drop these lines):
#     [models.smart]
#     provider = "openai"                 # OpenAI-compatible; "anthropic"; or "local" (embedded SmolLM2)
#     model = "gpt-4o-mini"
#     api_key_env = "OPENAI_API_KEY"
register(
    "supervisor.planner",
    ScriptedModel(
        [
            call("flight_agent", task="Find a morning flight from BER to LIS on May 3."),
            call("hotel_agent", task="Find a hotel in Lisbon under $150 a night."),
        ],
        write_plan,
    ),
)
register(
    "supervisor.flights",
    ScriptedModel(call("search_flights", origin="BER", destination="LIS"), "Fly TP 541 at 09:40 ($180)."),
)
register(
    "supervisor.hotels",
    ScriptedModel(
        call("search_hotels", city="Lisbon", max_price=150), "Stay at Alfama Rooms ($120 a night)."
    ),
)

flight_agent = podium.Agent(
    "flight_agent", "Find flights.", model="supervisor.flights", tools=[search_flights]
)
hotel_agent = podium.Agent("hotel_agent", "Find hotels.", model="supervisor.hotels", tools=[search_hotels])
planner = podium.Agent(
    "trip_planner",
    "Plan trips. Delegate flights and hotels to your agents, then write the plan.",
    model="supervisor.planner",
    tools=[flight_agent.as_tool(), hotel_agent.as_tool()],
)


@podium.flow(name="agents.supervisor")
async def supervisor(ctx: podium.Context, request: str) -> str:
    return (await planner.run(ctx, request)).output


if __name__ == "__main__":
    print(podium.run(supervisor, "Berlin to Lisbon, May 3, one night"))
