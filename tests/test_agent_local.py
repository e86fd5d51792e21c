"""An agent on the real embedded model (SmolLM2-135M-Instruct via llama.cpp), end to end, offline.

Marked ``local`` like ``test_local_models.py``. Only what does not depend on the small model's wording is
checked: the run completes with a non-empty answer in one turn, one model step is journaled, and the tokens
llama.cpp counted are reported. No tools: the local provider does not pass tools to the model yet.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

import podium

if os.environ.get("PODIUM_REQUIRE_LOCAL"):  # ./dev test sets it: a missing install is a failure there
    import llama_cpp  # noqa: F401
else:
    pytest.importorskip("llama_cpp", reason="the embedded models need `pip install podium[local]`")
pytestmark = pytest.mark.local

helper = podium.Agent(
    "local_helper", "You are a helpful assistant. Answer in one short sentence.", model="default", max_turns=1
)


@podium.flow(name="local.agent")
async def ask(ctx: podium.Context, question: str) -> dict[str, Any]:
    result = await helper.run(ctx, question)
    return {
        "answer": result.output,
        "agent": result.agent,
        "turns": result.turns,
        "tool_calls": result.tool_calls,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost": result.cost,
    }


async def test_an_agent_without_tools_answers_on_the_embedded_model(client: podium.Client) -> None:
    handle = await client.start(ask, "What is the capital of France?")
    out = await handle.result(timeout=180)
    assert isinstance(out["answer"], str) and out["answer"].strip()
    assert out == {**out, "agent": "local_helper", "turns": 1, "tool_calls": 0, "cost": 0.0}
    assert out["input_tokens"] > 10 and out["output_tokens"] > 0  # the system prompt alone is > 10 tokens

    steps = [e for e in await client.journal(handle.id) if e.kind == "step"]
    assert [e.name for e in steps] == ["model:default"]
    completion = steps[0].data["result"]
    assert completion["provider"] == "local" and completion["model"] == "smollm2-135m-instruct"
    assert completion["text"] == out["answer"] and completion["tool_calls"] == []
    assert completion["usage"] == {
        "input_tokens": out["input_tokens"],
        "output_tokens": out["output_tokens"],
        "estimated": False,  # counted by llama.cpp, not estimated
    }
