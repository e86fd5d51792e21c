"""The program ``test_model_crash.py`` runs in a subprocess and kills with SIGKILL.

```
python model_crash_app.py DB MARKER BASE_URL
```
It starts one run of ``model_crash.ask`` on the SQLite file ``DB`` and prints ``{"run_id": ...}`` (one JSON
line). The flow asks the model ``remote`` (the OpenAI-compatible server at ``BASE_URL``), then runs the step
``model_crash.after``, which appends this process's pid to ``MARKER`` (fsynced) and, in this program only,
sleeps for good: the test kills the process there, after the model call is journaled and before the run can
end.

Imported by the test, the same flow resumes the run in-process; then ``after`` returns at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import podium

HANG = False
"""Set by ``main``: in the subprocess, ``after`` never returns (the test kills the process there)."""


def model_config(base_url: str) -> dict[str, Any]:
    return {
        "models": {
            "remote": {
                "provider": "openai",
                "model": "m1",
                "base_url": base_url,
                "timeout": 5,
                "max_retries": 0,
                "cache": False,  # a repeated call must reach the server, not the response cache
            }
        }
    }


def settings(db: str, base_url: str, lease: float = 0.3) -> podium.Settings:
    return podium.Settings(
        database_url=f"sqlite:///{db}",
        lease_seconds=lease,
        poll_seconds=0.05,
        config=model_config(base_url),
    )


def append(path: str, line: str) -> None:
    """Append one line durably: once this returns, the line survives a SIGKILL."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


@podium.step(name="model_crash.after")
async def after(marker: str) -> int:
    pid = os.getpid()
    await asyncio.to_thread(append, marker, str(pid))
    if HANG:
        await asyncio.sleep(3600)
    return pid


@podium.flow(name="model_crash.ask")
async def ask(ctx: podium.Context, params: dict[str, Any]) -> dict[str, Any]:
    answer = await ctx.model("remote").generate(params["question"])
    pid = await after(params["marker"])
    return {"answer": answer, "after_pid": pid}


async def run(db: str, marker: str, base_url: str) -> None:
    async with podium.Client(settings(db, base_url)) as client:
        handle = await client.start(ask, {"question": "what is the answer?", "marker": marker})
        print(json.dumps({"run_id": handle.id, "pid": os.getpid()}), flush=True)
        await handle.result(timeout=60)


def main(argv: list[str]) -> None:
    global HANG
    db, marker, base_url = argv
    HANG = True
    asyncio.run(run(db, marker, base_url))


if __name__ == "__main__":
    main(sys.argv[1:])
