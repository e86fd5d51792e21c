"""Conversation threads: durable messages per thread, a token budget with older turns summarised (once),
and concurrent runs on one thread that never interleave their turns; on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from memory_helpers import hash_settings

import podium
from podium.memory import close_stores
from podium.memory.threads import Thread, tokens_of
from podium.models import ModelRequest, register

pytest.importorskip("numpy", reason="the memory layer needs `pip install podium[memory]`")

CALLS: list[str] = []


def summarizer(request: ModelRequest) -> str:
    prompt = request.messages[-1].content
    CALLS.append(prompt)
    return f"summary#{len(CALLS)}"


register("test-summary", summarizer)


@pytest.fixture(autouse=True)
def _fresh() -> Any:
    CALLS.clear()
    yield
    close_stores()


@podium.flow(name="threads.chat")
async def chat(ctx: podium.Context, args: dict[str, Any]) -> list[dict[str, str]]:
    thread = Thread(args["thread"], ctx=ctx)
    for i in range(args["turns"]):
        await thread.append(
            [
                {"role": "user", "content": f"{args['who']} asks question {i}"},
                {"role": "assistant", "content": f"answer {i} for {args['who']}"},
            ]
        )
        await ctx.sleep(0)
    messages = await thread.context(budget=args.get("budget", 10_000), summarize_with="test-summary")
    return [m.model_dump(include={"role", "content"}) for m in messages]


async def test_messages_are_stored_and_fit_the_budget_with_a_summary(memory_url: str) -> None:
    settings = hash_settings(memory_url)
    thread = Thread("t1", settings=settings)
    for i in range(10):
        await thread.add("user", f"message number {i} " + "words " * 20)
    assert [m.content.split()[2] for m in await thread.history()] == [str(i) for i in range(10)]
    full = await thread.context(budget=100_000, summarize_with="test-summary")
    assert len(full) == 10 and not CALLS  # everything fits: no summary

    budget = 200
    msgs = await thread.context(budget=budget, system="Be brief.", summarize_with="test-summary")
    assert msgs[0].content == "Be brief."
    assert msgs[1].role == "system" and msgs[1].content == "Summary of the earlier conversation: summary#1"
    assert sum(tokens_of(m.content) for m in msgs) <= budget + tokens_of(msgs[1].content)
    kept = [m.content.split()[2] for m in msgs[2:]]
    assert kept == [str(i) for i in range(10 - len(kept), 10)] and 0 < len(kept) < 10
    assert "message number 0" in CALLS[0]

    again = await thread.context(budget=budget, system="Be brief.", summarize_with="test-summary")
    assert again == msgs and len(CALLS) == 1  # the stored summary is reused

    await thread.add("user", "message number 10 " + "words " * 20)
    await thread.context(budget=budget, system="Be brief.", summarize_with="test-summary")
    assert len(CALLS) == 2 and "Earlier summary: summary#1" in CALLS[1]
    assert "message number 0" not in CALLS[1]  # only what was not summarised before

    dropped = await thread.context(budget=budget, summarize_with=None)
    assert all(m.role == "user" for m in dropped) and len(CALLS) == 2
    assert await thread.clear() == 11 and await thread.history() == []


async def test_concurrent_runs_on_one_thread_do_not_interleave_turns(memory_url: str) -> None:
    settings = hash_settings(memory_url)
    async with podium.Client(settings) as client:
        handles = [
            await client.start(chat, {"thread": "shared", "who": f"run{r}", "turns": 4}) for r in range(6)
        ]
        for h in handles:
            await h.result(timeout=30)
        history = await Thread("shared", settings=settings).history()
        assert len(history) == 6 * 4 * 2
        for user, assistant in zip(history[::2], history[1::2], strict=True):
            who, i = user.content.split()[0], user.content.split()[-1]
            assert (user.role, assistant.role) == ("user", "assistant")
            assert assistant.content == f"answer {i} for {who}"  # each turn is one contiguous block
        report = await client.check_replay(handles[0].id)
        assert report.ok, report
        journal = [e.name for e in await client.journal(handles[0].id) if e.kind == "step"]
        assert journal.count("thread.append") == 4 and "thread.context" in journal


async def test_summaries_inside_a_flow_are_model_steps(memory_url: str) -> None:
    settings = hash_settings(memory_url)
    async with podium.Client(settings) as client:
        handle = await client.start(chat, {"thread": "long", "who": "ann", "turns": 12, "budget": 60})
        messages = await handle.result(timeout=30)
        assert messages[0]["content"].startswith("Summary of the earlier conversation: summary#")
        steps = [e.name for e in await client.journal(handle.id) if e.kind == "step"]
        assert "model:test-summary" in steps and steps[-1] == "thread.summary"
