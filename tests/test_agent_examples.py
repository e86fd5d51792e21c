"""The agent pattern examples (``examples/agents/*.py``, shown in ``docs/agents.md``): each flow is run on
every store with its scripted models, and the test checks its exact result, the shape of its journal (model
steps, tool steps, child runs, in position order) and that replaying the journal gives the same answer. Each
example is also run as a user runs it, ``python examples/agents/X.py``, in a fresh process."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import WAIT_SECONDS

import podium
from podium.testing import ScriptedModel, replay

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "agents"


def _load(name: str) -> ModuleType:
    module_name = f"podium_examples_agents_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


pipeline = _load("pipeline")
fanout = _load("fanout")
handoff = _load("handoff")
supervisor = _load("supervisor")
reviewer = _load("reviewer")


def model(name: str) -> ScriptedModel:
    """The scripted model an example registered under ``name`` (it keeps the requests it saw)."""
    from podium.models.registry import _REGISTERED

    found: ScriptedModel = _REGISTERED[name][1]
    return found


def _order(position: str) -> list[int]:
    return [int(x) for x in position.split(".")]


async def shape(client: podium.Client, run_id: str) -> list[tuple[str, str]]:
    """(position, name) of the run's steps and child runs, in position order."""
    journal = await client.journal(run_id)
    entries = [e for e in journal if e.kind in ("step", "child")]
    assert all(e.kind == "child" or "result" in e.data for e in entries), "every step succeeded"
    return [(e.position, e.name or "") for e in sorted(entries, key=lambda e: _order(e.position))]


async def run(client: podium.Client, flow: podium.Flow[Any, Any], input: Any) -> tuple[str, Any]:
    handle = await client.start(flow, input)
    return handle.id, await handle.result(timeout=WAIT_SECONDS)


async def replays_alike(client: podium.Client, flow: podium.Flow[Any, Any], run_id: str, out: Any) -> None:
    """Replaying the journal calls no model and no tool, and gives the same output."""
    seen = {name: len(model(name).requests) for name in _scripted_names()}
    assert await replay(flow, await client.journal(run_id)) == out
    assert {name: len(model(name).requests) for name in _scripted_names()} == seen


def _scripted_names() -> list[str]:
    from podium.models.registry import _REGISTERED

    return [name for name, (_, target) in _REGISTERED.items() if isinstance(target, ScriptedModel)]


# -- sequential pipeline --------------------------------------------------------------------------------
async def test_pipeline_passes_each_answer_on(client: podium.Client) -> None:
    run_id, out = await run(client, pipeline.pipeline, "Why is Podium durable?")
    assert out == "Podium journals every step, so crashed runs resume, agents too."
    assert await shape(client, run_id) == [
        ("0", "model:pipeline.researcher"),
        ("1", "tool:search"),
        ("2", "model:pipeline.researcher"),
        ("3", "model:pipeline.writer"),
        ("4", "model:pipeline.editor"),
    ]
    found = next(e for e in await client.journal(run_id) if e.name == "tool:search")
    assert found.data["result"] == [
        "Podium journals every step in SQLite or PostgreSQL.",
        "A crashed run resumes where it stopped.",
        "Agents call tools as journaled steps.",
    ]
    # Each agent's task is the previous agent's answer.
    task_of = {n: model(f"pipeline.{n}").requests[-1].messages[1].content for n in ("writer", "editor")}
    assert task_of == {
        "writer": "Podium journals every step; a crashed run resumes where it stopped; "
        "agent tool calls are steps.",
        "editor": "Podium writes down evry step, so crashed run's resume and agents to.",
    }
    await replays_alike(client, pipeline.pipeline, run_id, out)


# -- parallel fan-out with aggregation -----------------------------------------------------------------
async def test_fanout_runs_the_analysts_in_parallel_and_aggregates(client: podium.Client) -> None:
    run_id, out = await run(client, fanout.fanout, "A hosted Podium for agent teams")
    assert out == {
        "go": True,
        "mean": 6.33,
        "weakest": "risk_analyst",
        "verdicts": {
            "market_analyst": {"score": 8, "reason": "Teams ask for agents that survive crashes."},
            "cost_analyst": {"score": 6, "reason": "GPU hours cost $2.10."},
            "risk_analyst": {"score": 5, "reason": "A crowded field."},
        },
    }
    # One branch of ctx.gather (position 0) per analyst; the aggregation is the step after it.
    assert await shape(client, run_id) == [
        ("0.0.0", "model:fanout.market"),
        ("0.1.0", "model:fanout.cost"),
        ("0.1.1", "tool:price_of"),
        ("0.1.2", "model:fanout.cost"),
        ("0.2.0", "model:fanout.risk"),
        ("1", "fanout.decide"),
    ]
    await replays_alike(client, fanout.fanout, run_id, out)


# -- handoff between specialists -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("question", "agent", "tool", "answer"),
    [
        (
            "I was charged twice this month",
            "billing",
            "find_charges",
            "You were charged $12 twice; refunded $12.",
        ),
        ("My export has not arrived", "tech", "service_status", "Exports are delayed by about 20 minutes."),
    ],
)
async def test_handoff_lets_the_model_choose_the_specialist(
    client: podium.Client, question: str, agent: str, tool: str, answer: str
) -> None:
    run_id, out = await run(client, handoff.handoff, question)
    assert out == {"answered_by": agent, "answer": answer}
    assert await shape(client, run_id) == [
        ("0", "model:handoff.triage"),
        ("1", f"model:handoff.{agent}"),
        ("2", f"tool:{tool}"),
        ("3", f"model:handoff.{agent}"),
    ]
    offered = [t["function"]["name"] for t in model("handoff.triage").requests[-1].tools]
    assert offered == ["transfer_to_billing", "transfer_to_tech"]
    # The specialist continues the same conversation: it sees the question and the handoff.
    seen = [(m.role, m.content) for m in model(f"handoff.{agent}").requests[-1].messages[:4]]
    assert seen[1:] == [("user", question), ("assistant", ""), ("tool", f"transferred to {agent}")]
    await replays_alike(client, handoff.handoff, run_id, out)


# -- supervisor with sub-agents as child runs ----------------------------------------------------------
async def test_supervisor_delegates_to_sub_agents_as_child_runs(client: podium.Client) -> None:
    run_id, out = await run(client, supervisor.supervisor, "Berlin to Lisbon, May 3, one night")
    assert out == "Plan: Fly TP 541 at 09:40 ($180). Stay at Alfama Rooms ($120 a night)."
    # Both delegations came in one turn, so they ran in parallel (one gather branch each).
    assert await shape(client, run_id) == [
        ("0", "model:supervisor.planner"),
        ("1.0.0", "agent.flight_agent"),
        ("1.1.0", "agent.hotel_agent"),
        ("2", "model:supervisor.planner"),
    ]
    children = {r.flow: r for r in await client.list(limit=10) if r.parent_id == run_id}
    assert sorted(children) == ["agent.flight_agent", "agent.hotel_agent"]
    assert {f: (r.status, r.output) for f, r in children.items()} == {
        "agent.flight_agent": (podium.RunStatus.COMPLETED, "Fly TP 541 at 09:40 ($180)."),
        "agent.hotel_agent": (podium.RunStatus.COMPLETED, "Stay at Alfama Rooms ($120 a night)."),
    }
    assert children["agent.flight_agent"].input == {
        "task": "Find a morning flight from BER to LIS on May 3.",
        "context": None,
    }
    assert await shape(client, children["agent.flight_agent"].id) == [
        ("0", "model:supervisor.flights"),
        ("1", "tool:search_flights"),
        ("2", "model:supervisor.flights"),
    ]
    assert await shape(client, children["agent.hotel_agent"].id) == [
        ("0", "model:supervisor.hotels"),
        ("1", "tool:search_hotels"),
        ("2", "model:supervisor.hotels"),
    ]
    hotels = next(
        e for e in await client.journal(children["agent.hotel_agent"].id) if e.name == "tool:search_hotels"
    )
    assert hotels.data["result"] == [{"hotel": "Alfama Rooms", "price": 120}]
    await replays_alike(client, supervisor.supervisor, run_id, out)


# -- writer and reviewer, bounded ----------------------------------------------------------------------
async def test_reviewer_sends_the_draft_back_until_it_approves(client: podium.Client) -> None:
    run_id, out = await run(client, reviewer.reviewed, {"brief": "A blurb for Podium Cloud"})
    assert out == {
        "text": "Podium Cloud runs your agents durably, from $20 a month.",
        "approved": True,
        "rounds": 2,
    }
    assert await shape(client, run_id) == [
        ("0", "model:reviewer.writer"),
        ("1", "model:reviewer.reviewer"),
        ("2", "model:reviewer.writer"),
        ("3", "model:reviewer.reviewer"),
    ]
    # The revision continued the writer's own conversation, with the reviewer's feedback.
    told = [(m.role, m.content) for m in model("reviewer.writer").requests[-1].messages[1:]]
    assert told == [
        ("user", "A blurb for Podium Cloud"),
        ("assistant", "Podium Cloud runs your agents durably."),
        ("user", "The reviewer says: Say what it costs. Revise it."),
    ]
    await replays_alike(client, reviewer.reviewed, run_id, out)


async def test_reviewer_loop_stops_after_max_rounds(client: podium.Client) -> None:
    run_id, out = await run(client, reviewer.reviewed, {"brief": "A blurb", "max_rounds": 1})
    assert out == {"text": "Podium Cloud runs your agents durably.", "approved": False, "rounds": 1}
    assert await shape(client, run_id) == [("0", "model:reviewer.writer"), ("1", "model:reviewer.reviewer")]


# -- as a user runs them -------------------------------------------------------------------------------
PRINTED = {
    "pipeline": "Podium journals every step, so crashed runs resume, agents too.\n",
    "fanout": "{'go': True, 'mean': 6.33, 'weakest': 'risk_analyst', 'verdicts': "
    "{'market_analyst': {'score': 8, 'reason': 'Teams ask for agents that survive crashes.'}, "
    "'cost_analyst': {'score': 6, 'reason': 'GPU hours cost $2.10.'}, "
    "'risk_analyst': {'score': 5, 'reason': 'A crowded field.'}}}\n",
    "handoff": "{'answered_by': 'billing', 'answer': 'You were charged $12 twice; refunded $12.'}\n"
    "{'answered_by': 'tech', 'answer': 'Exports are delayed by about 20 minutes.'}\n",
    "supervisor": "Plan: Fly TP 541 at 09:40 ($180). Stay at Alfama Rooms ($120 a night).\n",
    "reviewer": "{'text': 'Podium Cloud runs your agents durably, from $20 a month.', "
    "'approved': True, 'rounds': 2}\n",
}


@pytest.mark.parametrize("name", sorted(PRINTED))
def test_each_example_runs_offline_as_a_script(tmp_path: Path, name: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        cwd=tmp_path,  # podium.run keeps its store in ./.podium
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == PRINTED[name]


def test_every_example_is_tested() -> None:
    assert sorted(p.stem for p in EXAMPLES.glob("*.py")) == sorted(PRINTED)


def test_the_docs_code_blocks_are_the_examples_own() -> None:
    """A block of docs/agents.md tagged ``# examples/agents/X.py`` appears in that file verbatim."""
    doc = (ROOT / "docs" / "agents.md").read_text()
    blocks = re.findall(r"```python\n# (examples/agents/\w+\.py)\n(.*?)```", doc, flags=re.S)
    assert sorted(path for path, _ in blocks) == sorted(f"examples/agents/{n}.py" for n in PRINTED)
    for path, block in blocks:
        assert block in (ROOT / path).read_text(), f"not in {path} verbatim:\n{block}"
