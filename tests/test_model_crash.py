"""Crash mid-flow after a model call: on resume the call is not repeated (the provider's request log
proves it).

``model_crash_app.py`` runs a flow on a SQLite file in a subprocess: a model call to a real HTTP server
(``FakeOpenAIServer``, in this process, recording every request), then a step that writes a marker file and
hangs. The test SIGKILLs the process once the marker is there, resumes the run in-process with a fresh client
on the same file, and checks that the server saw exactly one chat request in total and the run kept its
answer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import model_crash_app
import pytest
from conftest import WAIT_SECONDS, close_within

import podium
from podium.testing import FakeOpenAIServer

APP = Path(model_crash_app.__file__)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(default="ok:a second answer") as s:
        yield s


def crash_at_the_marker(db: Path, marker: Path, base_url: str) -> tuple[str, int]:
    """Run the app until it has written ``marker``, SIGKILL it; its run id and pid."""
    proc = subprocess.Popen(
        [sys.executable, str(APP), str(db), str(marker), base_url],
        cwd=db.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while not (marker.exists() and marker.read_text(encoding="utf-8").endswith("\n")):
            if proc.poll() is not None:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=WAIT_SECONDS)
    assert proc.returncode == -signal.SIGKILL, f"the app ended ({proc.returncode}) before the marker:\n{err}"
    assert marker.exists(), f"the app did not write the marker within {WAIT_SECONDS}s:\n{err}"
    return json.loads(out.splitlines()[0])["run_id"], proc.pid


async def test_a_model_call_journaled_before_a_crash_is_not_repeated_on_resume(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("ok:the first answer")  # a repeated call would get "a second answer"
    db, marker = tmp_path / "podium.db", tmp_path / "marker"
    run_id, killed = crash_at_the_marker(db, marker, server.url)
    assert marker.read_text(encoding="utf-8").split() == [str(killed)]
    assert [r["path"] for r in server.requests] == ["/v1/chat/completions"]

    client = podium.Client(model_crash_app.settings(str(db), server.url, lease=0.3))
    await client.open()
    try:
        output = await client.result(run_id, timeout=WAIT_SECONDS)
        journal = await client.journal(run_id)
    finally:
        await close_within(client)

    assert len(server.requests) == 1, f"the model was called again on resume: {server.requests}"
    assert output == {"answer": "the first answer", "after_pid": os.getpid()}
    # The step after the model call was in flight at the kill, so it ran again here (at-least-once).
    assert marker.read_text(encoding="utf-8").split() == [str(killed), str(os.getpid())]
    assert [e.name for e in journal if e.kind == "step"] == ["model:remote", "model_crash.after"]
