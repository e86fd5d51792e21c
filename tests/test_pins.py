"""Run pins: choices fixed when a run starts (``Client.start(pins=)``, ``podium run --pin``), journaled with
the start, read with ``ctx.pins``, inherited by child runs, kept across ``continue_as_new`` and a worker
restart; ``model:NAME`` swaps the model ``ctx.model(NAME)`` calls."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import WAIT_SECONDS, settings_for, wait_status

import podium
from podium.models import register
from podium.testing import ScriptedModel

register("pins.cheap", ScriptedModel("cheap says hi"))
register("pins.smart", ScriptedModel("smart says hi"))


@podium.flow(name="pins.inner")
async def inner(ctx: podium.Context, _: None = None) -> dict[str, str]:
    return dict(ctx.pins)


@podium.flow(name="pins.outer")
async def outer(ctx: podium.Context, laps: int = 0) -> dict[str, Any]:
    if laps:
        ctx.continue_as_new(laps - 1)
    text = await ctx.model("pins.cheap").generate("hello")
    await ctx.wait_for_signal("go")
    return {"mine": dict(ctx.pins), "child": await ctx.child(inner), "text": text}


async def test_pins_reach_the_flow_its_children_and_its_models(client: podium.Client) -> None:
    handle = await client.start(outer, 1, pins={"model:pins.cheap": "pins.smart", "arm": "B"})
    await wait_status(client, handle.id, podium.RunStatus.WAITING)
    await client.signal(handle.id, "go")
    result = await handle.result(timeout=WAIT_SECONDS)
    pins = {"model:pins.cheap": "pins.smart", "arm": "B"}
    assert result == {"mine": pins, "child": pins, "text": "smart says hi"}
    start = next(e for e in await client.journal(handle.id) if e.kind == "start")
    assert start.data["pins"] == pins  # journaled (after continue_as_new, in the new generation's start)


async def test_unpinned_runs_call_the_named_model(client: podium.Client) -> None:
    handle = await client.start(outer, 0)
    await wait_status(client, handle.id, podium.RunStatus.WAITING)
    await client.signal(handle.id, "go")
    assert await handle.result(timeout=WAIT_SECONDS) == {"mine": {}, "child": {}, "text": "cheap says hi"}


async def test_start_many_takes_pins_per_run(client: podium.Client) -> None:
    a, b = await client.start_many([(inner, None, None, {"arm": "A"}), (inner, None, "k", None)])
    assert await a.result(timeout=WAIT_SECONDS) == {"arm": "A"}
    assert await b.result(timeout=WAIT_SECONDS) == {}


@pytest.mark.parametrize(
    "pins",
    [{"": "x"}, {"k": 3}, {f"k{i}": "v" for i in range(65)}, ["model:a=b"], {"x" * 201: "v"}],
)
async def test_bad_pins_are_refused_and_create_nothing(client: podium.Client, pins: Any) -> None:
    with pytest.raises(podium.UsageError):
        await client.start(inner, pins=pins)
    with pytest.raises(podium.UsageError):
        await client.start_many([(inner, None, None, pins)])
    assert await client.list() == []


def test_podium_run_pin_from_the_command_line(tmp_path: Path) -> None:
    app = tmp_path / "pinned.py"
    app.write_text(
        "import podium\n\n"
        "@podium.flow\n"
        "async def pinned(ctx: podium.Context, _: None = None) -> dict[str, str]:\n"
        "    return dict(ctx.pins)\n"
    )
    db = f"sqlite:///{tmp_path / 'p.db'}"
    cmd = [sys.executable, "-m", "podium.cli", "run", f"{app}:pinned", "--db", db]
    done = subprocess.run(
        [*cmd, "--pin", "arm=B", "--pin", "prompt:triage=3"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"arm": "B", "prompt:triage": "3"}
    bad = subprocess.run([*cmd, "--pin", "no-equals-sign"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "KEY=VALUE" in bad.stderr and "Traceback" not in bad.stderr


async def test_pins_survive_a_restart(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'r.db'}")
    async with podium.Client(settings) as client:
        handle = await client.start(outer, 0, pins={"arm": "C"})
        await wait_status(client, handle.id, podium.RunStatus.WAITING)
    async with podium.Client(settings) as client:  # a new worker resumes the run from its journal
        await client.signal(handle.id, "go")
        result = await client.result(handle.id, timeout=WAIT_SECONDS)
    assert result["mine"] == {"arm": "C"} and result["child"] == {"arm": "C"}
