"""Real crashes: flows run in subprocesses (``crash_app.py``) that are killed with SIGKILL at random points,
then resumed by fresh processes on the same SQLite file.

Every step execution appends ``start`` and ``done`` lines to a ledger (fsynced before the step goes on), and
every step returns the pid of the process that ran it, so the run's output names the execution the journal
kept. From the ledger and the output the tests check the promises of DESIGN.md section 4:

* a completed step is never executed again: nothing of that step runs after the execution the journal
  kept, and that execution wrote exactly one ``done`` line;
* every other execution of a step belongs to a process that was killed (at-least-once after a crash), and a
  step that was in flight at a kill is run again;
* the idempotency key (``podium.current_step().idempotency_key``) is the same in every execution of a step.

A ``done`` line of a killed process whose result the journal did not keep is legitimate: the process died
after the step body finished but before its journal commit. Such lines must be the last ``done`` lines the
killed process wrote (they belong to the group commit that died with it); the tests check that too.

Set ``PODIUM_CRASH_SEED`` to replay a failing choice of kill points (timing still varies).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import podium

APP = Path(__file__).with_name("crash_app.py")
PROCESS_TIMEOUT = 30.0
"""Upper bound for any one subprocess or wait; only there so a broken engine cannot hang the suite."""


# -- the ledger ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    index: int
    event: str  # "start" | "done"
    run_id: str
    tag: str
    key: str
    pid: int


def read_ledger(path: Path) -> list[Line]:
    """The ledger's complete lines (a reader may catch a writer mid-line: that line is left for later)."""
    if not path.exists():
        return []
    lines = []
    for i, text in enumerate(path.read_text(encoding="utf-8").split("\n")[:-1]):
        event, run_id, tag, key, pid = text.split()
        assert event in ("start", "done"), text
        lines.append(Line(i, event, run_id, tag, key, int(pid)))
    return lines


@dataclass
class Findings:
    interrupted: list[tuple[int, str, str]] = field(default_factory=list)
    """(pid, run id, tag): executions a kill cut short before their ``done`` line."""
    lost: list[tuple[int, str, str]] = field(default_factory=list)
    """(pid, run id, tag): executions that finished but died before their journal commit."""

    def __str__(self) -> str:
        return f"{len(self.interrupted)} executions cut short, {len(self.lost)} finished but not journaled"


def check_ledger(lines: list[Line], results: dict[str, list[dict[str, Any]]], killed: set[int]) -> Findings:
    """Check the exactly-once / at-least-once promises; ``results`` maps run id -> the run's step results."""
    kept = {(run_id, r["tag"]): r["pid"] for run_id, rs in results.items() for r in rs}
    by_step: dict[tuple[str, str], list[Line]] = defaultdict(list)
    for line in lines:
        by_step[line.run_id, line.tag].append(line)
    assert set(by_step) == set(kept), "every step of the output (and nothing else) appears in the ledger"

    found = Findings()
    keys: dict[str, tuple[str, str]] = {}
    for (run_id, tag), group in by_step.items():
        where = f"step {tag} of run {run_id}"
        step_keys = {line.key for line in group}
        assert len(step_keys) == 1, f"{where}: idempotency key changed across executions: {step_keys}"
        key = step_keys.pop()
        assert key.startswith(run_id + "/"), f"{where}: key {key!r} does not name the run"
        assert keys.setdefault(key, (run_id, tag)) == (run_id, tag), f"{where} shares key {key!r}"
        assert any(line.event == "start" for line in group)

        owner = kept[run_id, tag]
        mine = [line for line in group if line.pid == owner]
        assert [line.event for line in mine] == ["start", "done"], (
            f"{where}: the execution the journal kept (pid {owner}) must have one start and one done: {mine}"
        )
        assert group[-2:] == mine, (
            f"{where}: something ran after the execution the journal kept (pid {owner}): {group}"
        )
        for pid in sorted({line.pid for line in group} - {owner}):
            assert pid in killed, f"{where}: re-executed although pid {pid} was not killed: {group}"
            events = [line.event for line in group if line.pid == pid]
            assert events in (["start"], ["start", "done"]), f"{where}: pid {pid} ran it oddly: {events}"
            (found.lost if events[-1] == "done" else found.interrupted).append((pid, run_id, tag))

    # A finished-but-unjournaled step died with its group commit: its "done" is among the killed
    # process's last "done" lines. One that is followed by a "done" the journal kept means a lost commit.
    lost_by_pid: dict[int, set[tuple[str, str]]] = defaultdict(set)
    for pid, run_id, tag in found.lost:
        lost_by_pid[pid].add((run_id, tag))
    for pid, lost in lost_by_pid.items():
        dones = [(line.run_id, line.tag) for line in lines if line.pid == pid and line.event == "done"]
        tail = dones[len(dones) - len(lost) :]
        assert set(tail) == lost, f"pid {pid}: a step finished after {lost} was journaled, but they were not"
    return found


# -- subprocesses -------------------------------------------------------------------------------------
class App:
    """One ``crash_app.py`` process."""

    def __init__(self, *args: object, cwd: Path) -> None:
        self.args = [str(a) for a in args]
        self.proc = subprocess.Popen(
            [sys.executable, str(APP), *self.args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> bool:
        """SIGKILL the process; False if it had ended on its own first."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        out, err = self.proc.communicate(timeout=PROCESS_TIMEOUT)
        if self.proc.returncode == -signal.SIGKILL:
            return True
        assert self.proc.returncode == 0, f"{self.args} failed ({self.proc.returncode}):\n{err}"
        self.output = json.loads(out)
        return False

    def finish(self) -> dict[str, Any]:
        """Wait for the process to end by itself; its JSON output."""
        try:
            out, err = self.proc.communicate(timeout=PROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            pytest.fail(f"{self.args} did not finish within {PROCESS_TIMEOUT}s:\n{err}")
        assert self.proc.returncode == 0, f"{self.args} failed ({self.proc.returncode}):\n{err}"
        result: dict[str, Any] = json.loads(out)
        return result


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., App]]:
    """Start ``crash_app.py`` processes; any still running at the end of the test are killed."""
    apps: list[App] = []

    def start(*args: object) -> App:
        app = App(*args, cwd=tmp_path)
        apps.append(app)
        return app

    yield start
    for app in apps:
        if app.alive:
            app.proc.kill()
        app.proc.communicate()


def wait_ledger(app: App, ledger: Path, accept: Callable[[list[Line]], bool], what: str) -> bool:
    """Poll the ledger until ``accept`` holds (True) or the process ended (False)."""
    deadline = time.monotonic() + PROCESS_TIMEOUT
    while not accept(read_ledger(ledger)):
        if not app.alive:
            return False
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)
    return True


@pytest.fixture
def rng() -> random.Random:
    seed = int(os.environ.get("PODIUM_CRASH_SEED") or random.randrange(2**32))
    print(f"PODIUM_CRASH_SEED={seed}")  # shown when the test fails
    return random.Random(seed)


# -- tests --------------------------------------------------------------------------------------------
STEPS = 16
KILLS = 10


def test_chain_resumes_after_repeated_sigkill(tmp_path: Path, spawn: Callable[..., App], rng: random.Random):
    db, ledger = tmp_path / "podium.db", tmp_path / "ledger.txt"
    killed: set[int] = set()
    for i in range(KILLS):
        done = {line.tag for line in read_ledger(ledger) if line.event == "done"}
        todo = [k for k in range(STEPS) if str(k) not in done]
        if not todo:
            break
        app = spawn("chain", db, ledger, "chain-1", "--steps", STEPS, "--lease", 0.3)
        mode = ("at-step", "after-delay", "at-startup")[i % 3]
        if mode == "at-step":  # as soon as a chosen step has started, plus a little
            target = rng.randint(todo[0], min(todo[0] + 2, STEPS - 1))
            wait_ledger(
                app,
                ledger,
                lambda ls: any(
                    line.pid == app.pid and line.event == "start" and int(line.tag) >= target  # noqa: B023
                    for line in ls
                ),
                f"step {target} to start",
            )
            time.sleep(rng.uniform(0, 0.03))
        elif mode == "after-delay":  # anywhere in the next few steps, commits included
            wait_ledger(app, ledger, lambda ls: any(line.pid == app.pid for line in ls), "a first step")  # noqa: B023
            time.sleep(rng.uniform(0, 0.1))
        else:  # while starting, replaying or waiting for the dead process's lease
            time.sleep(rng.uniform(0, 0.5))
        if not app.kill():
            break  # it finished the run before the kill
        killed.add(app.pid)

    final = spawn("chain", db, ledger, "chain-1", "--steps", STEPS, "--lease", 0.3).finish()
    output = final["output"]
    assert [r["tag"] for r in output["results"]] == [str(k) for k in range(STEPS)]
    assert output["total"] == sum(k * k for k in range(STEPS))

    lines = read_ledger(ledger)
    assert {line.run_id for line in lines} == {final["run_id"]}, "one run, whatever process started it"
    found = check_ledger(lines, {final["run_id"]: output["results"]}, killed)
    print(f"killed {len(killed)}: {found}")
    assert len(killed) >= 3
    assert found.interrupted, "no kill hit a step in flight"
    # Steps run one at a time, so a killed process can lose at most the one step it had just finished.
    assert len(found.lost) <= len(killed)
    assert len({pid for pid, _, _ in found.lost}) == len(found.lost)
    for pid, _, tag in found.interrupted:  # in flight at the kill: run again, by a later process
        assert output["results"][int(tag)]["pid"] != pid


def test_parallel_steps_resume_after_sigkill(tmp_path: Path, spawn: Callable[..., App], rng: random.Random):
    db, ledger = tmp_path / "podium.db", tmp_path / "ledger.txt"
    items = 20
    killed: set[int] = set()
    for _ in range(3):
        done = {line.tag for line in read_ledger(ledger) if line.event == "done"}
        todo = [i for i in range(items) if f"item{i}" not in done]
        if len(todo) < 2:
            break
        app = spawn("fanout", db, ledger, "fan-1", "--items", items, "--lease", 0.3)
        m = rng.randint(1, len(todo) // 2)  # kill after m more items finished: others are in flight

        def enough(ls: list[Line], pid: int = app.pid, m: int = m) -> bool:
            return sum(1 for x in ls if x.pid == pid and x.event == "done" and x.tag.startswith("item")) >= m

        wait_ledger(app, ledger, enough, f"{m} items to finish")
        if not app.kill():
            break
        killed.add(app.pid)

    final = spawn("fanout", db, ledger, "fan-1", "--items", items, "--lease", 0.3).finish()
    output = final["output"]
    tags = [r["tag"] for r in output["results"]]
    assert tags == ["before", *(f"item{i}" for i in range(items)), "after"]
    assert output["count"] == items

    lines = read_ledger(ledger)
    found = check_ledger(lines, {final["run_id"]: output["results"]}, killed)
    print(f"killed {len(killed)}: {found}")
    assert killed
    assert found.interrupted, "no kill hit an item in flight"
    item_dones = [line for line in lines if line.event == "done" and line.tag.startswith("item")]
    lost_items = sum(1 for _, _, tag in found.lost if tag.startswith("item"))
    assert len(item_dones) == items + lost_items


async def _journal(db: Path, run_id: str) -> list[podium.JournalEntry]:
    async with podium.Client(podium.Settings(database_url=f"sqlite:///{db}"), worker=False) as c:
        return await c.journal(run_id)


async def _signal(db: Path, key: str) -> str | None:
    """Send the ``stop`` signal to the run with idempotency key ``key`` (if it exists yet)."""
    async with podium.Client(podium.Settings(database_url=f"sqlite:///{db}"), worker=False) as c:
        runs = await c.list(limit=10)
        for r in runs:
            await c.signal(r.id, "stop", key="stop-1")  # the same id every time: delivered once
            return r.id
    return None


def test_races_scopes_and_signals_resume_after_sigkill(
    tmp_path: Path, spawn: Callable[..., App], rng: random.Random
) -> None:
    """SIGKILL during a race, a quorum, a scope's cancellation and between a signal's arrival and its
    delivery; after resume the outcome is the one the journal decided, replay agrees, and no step whose
    result was journaled ran again."""
    import crash_app

    from podium.testing import replay

    db, ledger = tmp_path / "podium.db", tmp_path / "ledger.txt"
    killed: set[int] = set()
    signalled = False
    for i in range(6):
        app = spawn("race", db, ledger, "race-1", "--lease", 0.3)
        phase = ("h", "q", "b", "undo", "b", "q")[i]
        if not signalled and (phase == "undo" or (phase == "b" and rng.random() < 0.7)):
            wait_ledger(app, ledger, lambda ls: any(x.tag == "b1" for x in ls), "the bookings")
            signalled = asyncio.run(_signal(db, "race-1")) is not None
            time.sleep(rng.uniform(0, 0.01))  # the signal is stored; kill before or after it is delivered
        else:

            def reached(ls: list[Line], pid: int = app.pid, phase: str = phase) -> bool:
                return any(x.pid == pid and x.tag.startswith(phase) for x in ls)

            wait_ledger(app, ledger, reached, f"phase {phase}")
            time.sleep(rng.uniform(0, 0.08))
        if not app.kill():
            break
        killed.add(app.pid)
    final = spawn("race", db, ledger, "race-1", "--lease", 0.3)
    if not signalled:
        wait_ledger(
            final, ledger, lambda ls: any(x.tag == "b1" and x.event == "done" for x in ls), "bookings"
        )
        asyncio.run(_signal(db, "race-1"))
    out = final.finish()
    run_id, output = out["run_id"], out["output"]
    journal = asyncio.run(_journal(db, run_id))

    # The journal's decisions are the outcome.
    joins = [e for e in journal if e.kind == "join"]
    assert [j.name for j in joins] == ["first", "wait"]
    assert output["winner"] == f"h{joins[0].data['won'][0]}"
    assert output["quorum"] == [f"q{i}" for i in joins[1].data["won"]]
    assert output == {**output, "cancelled": True, "after": "after"}
    assert sum(1 for e in journal if e.kind == "cancelled") == 1
    # Replaying the journal takes the same decisions and runs nothing new.
    assert asyncio.run(replay(crash_app.race, journal)) == output

    # Exactly-once for every step whose result was journaled (compensations included); the rest were
    # cancelled or killed in flight.
    kept = [e.data["result"] for e in journal if e.kind == "step" and "result" in e.data]
    tags = {r["tag"] for r in kept}
    lines = [x for x in read_ledger(ledger) if x.tag in tags]
    found = check_ledger(lines, {run_id: kept}, killed)
    print(f"killed {len(killed)}: {found}")
    booked = [b for b in ("b1", "b0") if b in tags]  # b1 may have been cancelled in flight
    assert booked and booked[-1] == "b0"
    undo = [e for e in journal if e.name == "crash.undo"]
    assert [e.data["result"]["tag"] for e in undo] == [f"undo-{b}" for b in booked], "newest first, once each"
    assert "never" not in tags


def test_two_workers_one_killed(tmp_path: Path, spawn: Callable[..., App], rng: random.Random):
    db, ledger = tmp_path / "podium.db", tmp_path / "ledger.txt"
    runs, steps = 30, 5
    created = spawn("create", db, ledger, "--runs", runs, "--steps", steps).finish()
    assert len(set(created["run_ids"])) == runs
    assert not read_ledger(ledger), "a worker=False client executes nothing"

    worker = ("work", db, "--expect", runs, "--lease", 1.0, "--concurrency", 4)
    victim, survivor = spawn(*worker), spawn(*worker)
    threshold = rng.randint(3, 12)

    def victim_busy(ls: list[Line]) -> bool:
        return sum(1 for x in ls if x.pid == victim.pid and x.event == "done") >= threshold

    assert wait_ledger(victim, ledger, victim_busy, f"the victim to finish {threshold} steps")
    assert victim.kill()

    report = survivor.finish()
    assert len(report["runs"]) == runs
    assert {r["status"] for r in report["runs"]} == {"completed"}
    assert {r["id"] for r in report["runs"]} == set(created["run_ids"])
    results = {r["id"]: r["output"]["results"] for r in report["runs"]}
    for r in report["runs"]:
        assert [x["tag"] for x in r["output"]["results"]] == [str(k) for k in range(steps)]
        assert r["output"]["total"] == sum(k * k for k in range(steps))

    lines = read_ledger(ledger)
    found = check_ledger(lines, results, {victim.pid})
    print(f"killed 1: {found}")
    assert found.interrupted or found.lost, "the victim had no step in flight"
    taken_over = [
        run_id
        for run_id, rs in results.items()
        if any(line.pid == victim.pid and line.run_id == run_id for line in lines)
        and any(r["pid"] == survivor.pid for r in rs)
    ]
    assert taken_over, "the survivor took over no run of the killed worker"
    assert {r["pid"] for rs in results.values() for r in rs} <= {victim.pid, survivor.pid}


def test_agent_resumes_after_sigkill_without_repeating_a_journaled_tool_call(
    tmp_path: Path, spawn: Callable[..., App], rng: random.Random
) -> None:
    """An agent (a scripted model, one ledger-writing tool, two calls at once every third turn) is SIGKILLed
    at random tool calls, in the tool or anywhere after it (model turn, commit), and resumed by fresh
    processes: no tool call whose result was journaled runs again, and the model's final answer reports
    exactly the tool results the journal kept."""
    import crash_app

    from podium.testing import replay

    db, ledger = tmp_path / "podium.db", tmp_path / "ledger.txt"
    plan = [tag for turn in crash_app.AGENT_PLAN for tag in turn]
    killed: set[int] = set()
    for i in range(6):
        done = {x.tag for x in read_ledger(ledger) if x.event == "done"}
        todo = [tag for tag in plan if tag not in done]
        if len(todo) < 2:
            break
        app = spawn("agent", db, ledger, "agent-1", "--lease", 0.3)
        target = rng.choice(todo[:4])

        def started(ls: list[Line], pid: int = app.pid, tag: str = target) -> bool:
            return any(x.pid == pid and x.tag == tag and x.event == "start" for x in ls)

        wait_ledger(app, ledger, started, f"tool call {target}")
        # in the tool (it takes 20-60 ms), or anywhere up to the next turns
        time.sleep(rng.uniform(0, 0.01) if i % 2 == 0 else rng.uniform(0, 0.15))
        if not app.kill():
            break
        killed.add(app.pid)

    final = spawn("agent", db, ledger, "agent-1", "--lease", 0.3).finish()
    run_id, output = final["run_id"], final["output"]
    journal = asyncio.run(_journal(db, run_id))

    def position(e: podium.JournalEntry) -> list[int]:
        return [int(x) for x in e.position.split(".")]

    steps = sorted((e for e in journal if e.kind == "step"), key=position)
    tools = [e for e in steps if e.name == "tool:record"]
    assert [e.name for e in steps].count("model:crash.scripted") == len(crash_app.AGENT_PLAN) + 1
    assert all("result" in e.data for e in steps), "no model turn or tool call failed"
    kept = [e.data["result"] for e in tools]
    assert [r["tag"] for r in kept] == plan, "each tool call journaled once, in the order asked"
    # The final answer is the model's report of what the tools told it: exactly what the journal kept.
    assert output == {
        "report": {"tags": plan, "pids": [r["pid"] for r in kept]},
        "turns": len(crash_app.AGENT_PLAN) + 1,
        "tool_calls": len(plan),
    }
    assert asyncio.run(replay(crash_app.agent_flow, journal)) == output

    # Exactly once for every journaled tool call; a re-run only for calls a killed process had not journaled.
    lines = read_ledger(ledger)
    assert {x.run_id for x in lines} == {run_id}
    found = check_ledger(lines, {run_id: kept}, killed)
    print(f"killed {len(killed)}: {found}")
    assert len(killed) >= 3
    assert found.interrupted, "no kill hit a tool call in flight"
