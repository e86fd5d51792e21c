"""Fakes and helpers for testing flows: they implement Podium's public protocols, no patching needed.

* ``MemoryStore``: the in-memory store (``Client(store=MemoryStore())``).
* ``ManualClock``: time that moves only when told, so a ``ctx.sleep("7d")`` takes no real time.
* ``FakeOpenAIServer``: a real OpenAI-compatible HTTP server on 127.0.0.1 with scripted answers and faults.
* ``replay``: run a flow against a recorded journal (e.g. from ``podium show RUN --json``); raises
  ``NondeterminismError`` if today's code would take another path than the recorded run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import NondeterminismError, RunFailedError, UsageError
from ..storage.base import Event
from ..storage.memory import MemoryStore
from ..types import Duration, parse_duration
from ..workflow.flow import Flow, resolve_flow
from .embedding import HASH_EMBED_CONFIG, hash_embed
from .fake_openai import FakeOpenAIServer
from .scripted import ScriptedModel, call

__all__ = [
    "HASH_EMBED_CONFIG",
    "FakeOpenAIServer",
    "ManualClock",
    "MemoryStore",
    "ScriptedModel",
    "call",
    "echo_model",
    "hash_embed",
    "replay",
    "replay_file",
]


def echo_model(request: Any) -> str:
    """A model that answers with the last user message: ``provider = "function"``,
    ``model = "podium.testing:echo_model"`` in ``podium.toml`` gives a free, instant, offline model."""
    messages = getattr(request, "messages", [])
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


class ManualClock:
    """A clock for tests: ``clock()`` returns the current fake time; ``advance("10m")`` moves it.

    ```python
    clock = ManualClock()
    async with podium.Client(settings, clock=clock) as client:   # settings with hold_seconds=0
        handle = await client.start(reminder, "ann")             # sleeps for a week
        clock.advance("7d")                                      # the timer falls due at once
        await handle.result()
    ```
    Workers built with this clock look for due runs whenever it moves.
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self._subscribers: list[Callable[[], None]] = []

    def __call__(self) -> float:
        return self._now

    def advance(self, duration: Duration) -> None:
        """Move time forward by ``duration``."""
        self._now += parse_duration(duration)
        for notify in list(self._subscribers):
            notify()

    def subscribe(self, notify: Callable[[], None]) -> None:
        self._subscribers.append(notify)


def _event(e: Any, run_id: str) -> Event:
    if isinstance(e, Mapping):
        return Event(
            run_id,
            e["kind"],
            e.get("position", e.get("step", "")),
            e.get("name"),
            e.get("data"),
            float(e.get("at", 0.0)),
            int(e.get("seq", 0)),
        )
    return Event(run_id, e.kind, e.position, e.name, e.data, e.at, e.seq)


async def replay(flow: Flow[Any, Any] | str, journal: Iterable[Any]) -> Any:
    """Replay ``flow`` against a recorded journal and return the output the code computes.

    ``journal`` holds ``JournalEntry`` objects or their JSON form (``podium show RUN --json``'s
    ``journal``). No step runs: every effect must come from the journal. Raises ``NondeterminismError``
    when the code asks for something else, or for more than the journal holds.
    """
    from ..engine.replay import replay_events

    fl = resolve_flow(flow)
    events = [_event(e, "replay") for e in journal]
    if not any(e.kind == "start" for e in events):
        raise UsageError("the journal has no 'start' event")
    done = await replay_events(fl, events, MemoryStore(json_results=True))
    if done.nondeterminism is not None:
        raise done.nondeterminism
    if done.status == "completed":
        return fl.load_output(done.output)
    if done.status == "failed":
        raise RunFailedError("replay", done.error or {})
    raise NondeterminismError(
        run_id="replay",
        position="end",
        journaled="a finished run",
        requested=f"the run to stop ({done.status})",
    )


async def replay_file(flow: Flow[Any, Any] | str, path: str | Path) -> Any:
    """``replay`` with the JSON written by ``podium show RUN --json`` (its ``journal`` list)."""
    data = json.loads(await asyncio.to_thread(Path(path).read_text))
    return await replay(flow, data["journal"] if isinstance(data, dict) else data)
