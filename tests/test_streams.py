"""Resumable token streams: a streaming model step's text, followed over the REST API by a consumer that
disconnects and reconnects (``Last-Event-ID``) at random points, reassembles exactly the model's output, also
when the step fails mid-stream and is retried (a ``reset`` event starts its text again)."""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import close_within, settings_for
from test_api import Api, serving

import podium
from podium import RetryPolicy
from podium.models import register
from podium.testing import ScriptedModel

WORDS = "the quick brown fox jumps over a lazy dog while seven wise owls count the stars"
STORY = " ".join(random.Random(3).choice(WORDS.split(" ")) for _ in range(400))
EXPECTED = "".join(word + " " for word in STORY.split(" "))  # the function provider streams word by word
register("streams.storyteller", ScriptedModel(STORY))


class Flaky(Exception):
    """A mid-stream failure (retryable)."""


@podium.flow(name="streams.story")
async def story(ctx: podium.Context, topic: str) -> str:
    seen = 0
    info: dict[str, Any] = {}

    async def on_token(piece: str) -> None:
        nonlocal seen
        step = podium.current_step()
        assert step is not None
        if info.get("attempt") != step.attempt:
            info["attempt"], seen = step.attempt, 0
        seen += 1
        await asyncio.sleep(0.002)  # a model's pace: the consumer reads while the step runs
        if step.attempt == 1 and topic.startswith("fail:") and seen == int(topic[5:]):
            raise Flaky(f"broke after {seen} tokens")

    policy = RetryPolicy(max_attempts=3, initial=0.05)
    return await ctx.model("streams.storyteller").stream(
        f"a story about {topic}", on_token=on_token, retries=policy
    )


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Api]:
    client = podium.Client(settings_for(f"sqlite:///{tmp_path}/podium.db"))
    await client.open()
    _, secret = await client.create_key("viewer-bot", "viewer")
    try:
        async with serving(client) as (url, http):
            yield Api(url, client, http, {"viewer": secret})
    finally:
        await close_within(client)


async def follow(api: Api, run_id: str, rnd: random.Random) -> tuple[dict[str, str], int, int]:
    """Read the run's token stream to its end, hanging up after a random number of events each time.
    Returns the text per step, the number of connections and of resets seen."""
    url = f"{api.url}/api/runs/{run_id}/tokens"
    texts: dict[str, str] = {}
    epochs: dict[str, int] = {}
    last: int | None = None
    connections = resets = 0
    while True:
        connections += 1
        headers = api.auth("viewer") | ({} if last is None else {"Last-Event-ID": str(last)})
        budget = rnd.randint(1, 4)
        ended = False
        async with api.http.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200
            kind, ident, data = "", None, None
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("id: "):
                    ident = int(line[4:])
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                elif line == "" and data is not None:
                    if kind == "end":
                        ended = True
                        break
                    step = data["step"]
                    if kind == "reset":
                        resets += 1
                        texts[step], epochs[step] = "", data["epoch"]
                    else:
                        assert data["epoch"] == epochs.setdefault(step, data["epoch"])
                        assert data["offset"] == len(texts.get(step, "")), "a gap or an overlap"
                        texts[step] = texts.get(step, "") + data["text"]
                    last = ident
                    kind, ident, data = "", None, None
                    budget -= 1
                    if budget == 0:
                        break  # hang up mid-stream
        if ended:
            return texts, connections, resets


async def test_a_consumer_reconnecting_at_random_reassembles_exactly_the_models_output(server: Api) -> None:
    rnd = random.Random(os.environ.get("PODIUM_STREAM_SEED"))
    for fail_after in (None, rnd.randint(20, 300)):
        handle = await server.client.start(story, "owls" if fail_after is None else f"fail:{fail_after}")
        texts, connections, resets = await follow(server, handle.id, rnd)
        output = await server.client.result(handle.id, timeout=60)
        assert output == EXPECTED
        assert list(texts.values()) == [EXPECTED]
        assert connections > 3
        chunks = await server.client.tokens(handle.id)
        if fail_after is None:
            assert resets == 0 and {c.epoch for c in chunks} == {1}
        else:
            assert resets == 1 and [c.epoch for c in chunks if c.text is None] == [2]


async def test_tokens_of_an_unknown_run_are_404_and_bad_last_event_ids_400(server: Api) -> None:
    assert (await server.get("/api/runs/nope/tokens")).status_code == 404
    handle = await server.client.start(story, "dogs")
    await server.client.result(handle.id, timeout=60)
    async with httpx.AsyncClient(timeout=30) as http:
        url = f"{server.url}/api/runs/{handle.id}/tokens"
        r = await http.get(url, headers={**server.auth("viewer"), "Last-Event-ID": "x"})
        assert r.status_code == 400
        r = await http.get(url, headers=server.auth("viewer"))
    assert r.status_code == 200 and r.text.rstrip().endswith('data: {"status": "completed"}')


async def test_a_worker_killed_mid_stream_is_followed_by_a_reset_and_the_whole_text(tmp_path: Path) -> None:
    import signal
    import sys

    import journal_app

    db = tmp_path / "podium.db"
    async with podium.Client(settings_for(f"sqlite:///{db}"), worker=False) as client:
        run = await client.start(journal_app.story, 0.01)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            journal_app.__file__,
            "work",
            str(db),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        try:
            assert proc.stdout is not None and (await proc.stdout.readline()).strip() == b"ready"
            async with asyncio.timeout(60):
                while True:
                    if len(await client.tokens(run.id)) >= 3:  # the worker is streaming
                        break
                    await asyncio.sleep(0.02)
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        before = await client.tokens(run.id)
        assert before and all(c.epoch == 1 for c in before)
    async with podium.Client(settings_for(f"sqlite:///{db}")) as client:  # takes the run over
        output = await client.result(run.id, timeout=60)
        text = ""
        for c in await client.tokens(run.id):
            if c.text is None:
                text = ""  # the reset: the step streams again from its start
            else:
                assert c.offset == len(text)
                text += c.text
        chunks = await client.tokens(run.id)
    assert output == text == "".join(w + " " for w in journal_app.STORY.split(" "))
    assert [c.epoch for c in chunks if c.text is None] == [2]
