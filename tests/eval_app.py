"""Flows and models the evaluation tests run, in process and in ``podium eval`` subprocesses.

``triage`` asks the model ``triager`` for a ticket's team; ``triager`` (a scripted model) knows two words,
``triager_v2`` knows three, so variants that pin ``model:triager`` score differently and exactly.
``slow`` appends ``start``/``done`` lines to the ledger file named by ``EVAL_LEDGER`` (for kill tests).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import podium
from podium.models import ModelRequest, register
from podium.testing import ScriptedModel

RULES = {"charged": "billing", "crash": "bug"}
RULES_V2 = {**RULES, "password": "account"}


def _label(rules: dict[str, str]) -> Any:
    def answer(request: ModelRequest) -> str:
        text = request.messages[-1].content.lower()
        return next((team for word, team in rules.items() if word in text), "other")

    return answer


register("triager", ScriptedModel(_label(RULES), price_input=1000.0, price_output=2000.0))
register("triager_v2", ScriptedModel(_label(RULES_V2), price_input=1000.0, price_output=2000.0))


@podium.flow
async def triage(ctx: podium.Context, ticket: dict[str, Any]) -> str:
    """The team for a ticket: ``{"text": ...}`` -> ``"billing"`` | ``"bug"`` | ``"account"`` | ``"other"``."""
    if ticket.get("fail"):
        raise podium.ApplicationError("this ticket cannot be triaged", retryable=False)
    return await ctx.model("triager").generate(ticket["text"])


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


@podium.flow
async def slow(ctx: podium.Context, item: dict[str, Any]) -> str:
    """Echo ``item["n"]`` after a short pause, writing the ledger before and after."""

    async def work() -> str:
        ledger = os.environ["EVAL_LEDGER"]
        await asyncio.to_thread(_append, ledger, f"start {item['n']}")
        await asyncio.sleep(0.15)
        await asyncio.to_thread(_append, ledger, f"done {item['n']}")
        return str(item["n"])

    return await ctx.step("work", work)


def shout(output: Any, expected: Any) -> float:
    """A custom scorer: 1.0 when the output is upper case."""
    return 1.0 if isinstance(output, str) and output.isupper() else 0.0


def _prompted(request: ModelRequest) -> str:
    text = request.messages[-1].content.lower()
    rules = RULES_V2 if "passwords belong to account" in text else RULES
    ticket = text.rsplit("ticket:", 1)[-1]
    return next((team for word, team in rules.items() if word in ticket), "other")


register("prompt_triager", ScriptedModel(_prompted, price_input=1000.0))


@podium.flow
async def prompted_triage(ctx: podium.Context, ticket: dict[str, Any]) -> str:
    """``triage`` with its prompt from the registry (``ctx.prompt("triage")``): variants pin its versions."""
    prompt = await ctx.prompt("triage")
    return await ctx.model("prompt_triager").generate(prompt.render(text=ticket["text"]))
