"""The writer ``test_journal.py`` kills with SIGKILL: it journals steps whose 200 KB results go to blob files.

```
python journal_app.py DB BLOBS ROUND     # a writer of blobs
python journal_app.py work DB            # a worker for journal.story (test_streams.py kills it mid-stream)
```
The writer prints ``ready`` once the store is open, then commits runs of steps with fresh payloads until
killed (or after 200 commits). Blob files are written before the commits that reference them.
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

import podium
from podium.models import register
from podium.storage.base import Event, RunRecord, Write
from podium.storage.payloads import PayloadOptions
from podium.storage.sqlite import SQLiteStore
from podium.testing import ScriptedModel
from podium.types import RunStatus

STORY = " ".join(f"word{i}" for i in range(300))
register("journal.storyteller", ScriptedModel(STORY))


@podium.flow(name="journal.story")
async def story(ctx: podium.Context, pace: float) -> str:
    """Streams ``STORY`` word by word, ``pace`` seconds a word."""

    async def on_token(piece: str) -> None:
        await asyncio.sleep(pace)

    return await ctx.model("journal.storyteller").stream("tell", on_token=on_token)


async def work(db: str) -> None:
    settings = podium.Settings(database_url=f"sqlite:///{db}", poll_seconds=0.05, lease_seconds=1.0)
    async with podium.Client(settings):
        print("ready", flush=True)
        await asyncio.Event().wait()  # until killed


@podium.flow(name="journal.echo")
async def echo(ctx: podium.Context, text: str) -> str:
    """For ``podium run tests/journal_app.py:echo``: an output of 20,000 characters (a payload)."""
    return text * (20_000 // max(1, len(text)))


async def main(db: str, blobs: str, round_: str) -> None:
    store = SQLiteStore(db, payloads=PayloadOptions(blobs=Path(blobs), blob_threshold=65_536))
    await store.open()
    print("ready", flush=True)
    rnd = random.Random()
    now = 1_000.0
    for k in range(200):
        run_id = f"{round_}-{k}"
        now += 1
        rec = RunRecord(run_id, "f", RunStatus.PENDING, None, created_at=now, updated_at=now)
        await store.create_run(rec, Event(run_id, "start", "", "f", {"input": None}, now))
        await store.claim_run(run_id, "w", now=now, lease_until=now + 1_000)
        # random hex: compresses to about half, so each blob file is ~100 KB and takes a moment to write
        steps = [
            Event(run_id, "step", str(i), "s", {"result": rnd.randbytes(100_000).hex(), "ended": now})
            for i in range(3)
        ]
        await store.commit("w", [Write(run_id, steps)], now=now, lease_until=now + 1_000)
    await store.close()


if __name__ == "__main__":
    if sys.argv[1] == "work":
        asyncio.run(work(sys.argv[2]))
    else:
        asyncio.run(main(*sys.argv[1:4]))
