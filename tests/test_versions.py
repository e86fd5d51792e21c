"""Safe deploys: each run records its code version; ``ctx.patched`` lets new code take a new path while runs
in flight keep theirs; ``check_replay`` / ``podium replay`` catch an unsafe change before it ships."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import WAIT_SECONDS, close_within, settings_for, wait_status

import podium

LEDGER: list[str] = []


@podium.step
async def tag(name: str) -> str:
    LEDGER.append(name)
    return name


def deploy(version: str) -> podium.Flow[int, list[str]]:
    """Register this version of the flow ``versions.order`` (each version replaces the previous one, as a
    new deploy of the same module would)."""

    async def order(ctx: podium.Context, n: int) -> list[str]:
        done = [await tag("a")]
        await ctx.wait_for_signal("go")
        if version == "v2" and ctx.patched("audit"):
            done.append(await tag("audit"))
        if version == "v3-unsafe":
            done.append(await tag("audit"))  # the same change without ctx.patched
        done.append(await tag("b"))
        return done

    return podium.flow(name="versions.order")(order)


async def test_patched_code_takes_the_new_path_only_where_it_is_safe(tmp_path: Path) -> None:
    client = podium.Client(settings_for(f"sqlite:///{tmp_path}/p.db"))
    await client.open()
    try:
        v1 = deploy("v1")
        finished = await client.start(v1, 1)
        await wait_status(client, finished.id, podium.RunStatus.WAITING)
        await client.signal(finished.id, "go")
        assert await finished.result(timeout=WAIT_SECONDS) == ["a", "b"]
        in_flight = await client.start(v1, 2)
        await wait_status(client, in_flight.id, podium.RunStatus.WAITING)

        v2 = deploy("v2")
        fresh = await client.start(v2, 3)
        await wait_status(client, fresh.id, podium.RunStatus.WAITING)
        await client.signal(fresh.id, "go")
        assert await fresh.result(timeout=WAIT_SECONDS) == ["a", "audit", "b"]
        # The run in flight had not reached the change yet: it takes the new path too.
        await client.signal(in_flight.id, "go")
        assert await in_flight.result(timeout=WAIT_SECONDS) == ["a", "audit", "b"]

        # The run that finished under v1 still replays under v2: the patch is skipped where it did not run.
        for h in (finished, in_flight, fresh):
            report = await client.check_replay(h.id)
            assert report.ok, report.problem
        start = next(e for e in await client.journal(finished.id) if e.kind == "start")
        assert start.data["version"] == report.current_version  # the module's code hash

        # An unsafe deploy is caught before it ships.
        deploy("v3-unsafe")
        report = await client.check_replay(finished.id)
        # (Both versions call the step `tag` at position 2, so the journal's end at 3 is where they part.)
        assert not report.ok and report.position == "3" and "journal ends here" in (report.problem or "")
        assert (await client.check_replay(fresh.id)).ok is False  # its journal holds a patch marker there
    finally:
        deploy("v1")
        await close_within(client)


@pytest.mark.parametrize("bad", [False, True])
def test_podium_replay_cli_checks_every_run_of_a_flow(tmp_path: Path, bad: bool) -> None:
    app = tmp_path / "shop.py"
    app.write_text(
        "import podium\n\n"
        "@podium.step\nasync def s(x: int) -> int:\n    return x\n\n"
        "@podium.flow(name='shop.flow')\nasync def f(ctx: podium.Context, n: int) -> int:\n"
        "    return await s(n) + await s(1)\n"
    )
    env = {**os.environ, "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path}/p.db"}

    def podium_cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "podium.cli", *args]
        return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    for n in (1, 2):
        r = podium_cli("run", f"{app}:f", "--input", str(n))
        assert r.returncode == 0, r.stderr
    if bad:  # a deploy that changed the steps the flow takes
        app.write_text(app.read_text().replace("await s(n) + await s(1)", "await s(n)"))
    r = podium_cli("replay", str(app), "--all", "--flow", "shop.flow")
    assert ("2 runs replayed" in r.stdout) or ("2 runs replayed" in r.stderr), r.stdout + r.stderr
    if bad:
        assert r.returncode == 1 and "do not replay" in r.stderr
    else:
        assert r.returncode == 0, r.stdout + r.stderr
    r = podium_cli("replay", str(app))
    assert r.returncode == 1 and "--run ID" in r.stderr
