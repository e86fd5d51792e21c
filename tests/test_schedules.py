"""Cron schedules: fired by workers, each occurrence exactly one run, missed-run policies, pause/resume,
claims left by a dead worker, and the ``podium schedule`` commands. Time is a ``ManualClock``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import WAIT_SECONDS, close_within, eventually, settings_for

import podium
from podium.storage.sqlite import SQLiteStore
from podium.testing import ManualClock
from podium.triggers import cron
from podium.triggers.schedule import Scheduler

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC, a multiple of 5 minutes
MINUTE = 60.0


@podium.flow(name="sched.tick")
async def tick(ctx: podium.Context, n: int) -> int:
    return n * 2


def at(t: float) -> str:
    """The run key of schedule ``sched.tick``'s occurrence at ``t``."""
    return cron.run_key("sched.tick", t)


async def keys(client: podium.Client, count: int) -> list[str]:
    """Wait until ``count`` runs exist and have completed; their keys, oldest occurrence first."""
    runs = await eventually(
        lambda: client.list(limit=1000),
        lambda rs: len(rs) >= count and all(r.status is podium.RunStatus.COMPLETED for r in rs),
        what=f"{count} completed runs",
    )
    return sorted(r.key or "" for r in runs)


def scheduler(client: podium.Client) -> Scheduler:
    assert client.worker is not None and client.worker.scheduler is not None
    return client.worker.scheduler


async def test_a_schedule_starts_one_run_per_occurrence(store_url: str) -> None:
    clock = ManualClock(start=T0)
    client = podium.Client(settings_for(store_url), clock=clock)
    await client.open()
    try:
        s = await client.add_schedule(tick, "*/5 * * * *", 21)
        assert (s.name, s.flow, s.cron, s.tz, s.missed, s.paused) == (
            "sched.tick",
            "sched.tick",
            "*/5 * * * *",
            "UTC",
            "skip",
            False,
        )
        assert s.next_at == T0 + 5 * MINUTE and s.last_at is None
        clock.advance("4m")
        assert await client.list() == []
        clock.advance("1m")
        assert await keys(client, 1) == [at(T0 + 5 * MINUTE)]
        run = (await client.list())[0]
        assert run.output == 42 and run.key == "schedule:sched.tick:2027-01-15T08:05:00Z"
        clock.advance("5m")
        assert await keys(client, 2) == [at(T0 + 5 * MINUTE), at(T0 + 10 * MINUTE)]
        s = await client.get_schedule("sched.tick")
        assert s.last_at == T0 + 10 * MINUTE and s.next_at == T0 + 15 * MINUTE
        assert scheduler(client).started == 2 and scheduler(client).repeated == 0
    finally:
        await close_within(client)


@pytest.mark.parametrize(
    ("missed", "expected"),
    [
        ("skip", []),  # the latest missed occurrence (+60m) is 2 minutes late: not on time
        ("once", [60]),
        ("catchup", [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60]),
    ],
)
async def test_missed_run_policies_when_no_worker_was_running(
    tmp_path: Path, missed: str, expected: list[int]
) -> None:
    clock = ManualClock(start=T0)
    settings = settings_for(f"sqlite:///{tmp_path}/podium.db")
    async with podium.Client(settings, worker=False, clock=clock) as control:
        await control.add_schedule(tick, "*/5 * * * *", 1, missed=missed)
    clock.advance("62m")  # twelve occurrences fall while no worker runs
    client = podium.Client(settings, clock=clock)
    await client.open()
    try:
        want = [at(T0 + m * MINUTE) for m in expected]
        if want:
            assert await keys(client, len(want)) == want
        s = await eventually(
            lambda: client.get_schedule("sched.tick"),
            lambda s: s.next_at == T0 + 65 * MINUTE,
            what="the schedule to move past now",
        )
        assert s.last_at == (T0 + expected[-1] * MINUTE if expected else None)
        assert sorted(r.key or "" for r in await client.list()) == want
        clock.advance("3m")  # +65m: on time again, whatever the policy
        assert (await keys(client, len(want) + 1))[-1] == at(T0 + 65 * MINUTE)
    finally:
        await close_within(client)


async def test_catchup_runs_at_most_the_latest_hundred_missed_occurrences(tmp_path: Path) -> None:
    clock = ManualClock(start=T0)
    settings = settings_for(f"sqlite:///{tmp_path}/podium.db").with_(concurrency=200)
    async with podium.Client(settings, worker=False, clock=clock) as control:
        await control.add_schedule(tick, "* * * * *", 1, missed="catchup")
    clock.advance("3h")  # 180 missed occurrences, one a minute
    client = podium.Client(settings, clock=clock)
    await client.open()
    try:
        got = await keys(client, cron.CATCHUP_LIMIT)
        assert got == [at(T0 + m * MINUTE) for m in range(81, 181)]
        s = await client.get_schedule("sched.tick")
        assert s.next_at == T0 + 181 * MINUTE
        assert len(await client.list(limit=1000)) == cron.CATCHUP_LIMIT
    finally:
        await close_within(client)


async def test_an_occurrence_a_little_late_is_on_time_for_skip(store_url: str) -> None:
    clock = ManualClock(start=T0)
    client = podium.Client(settings_for(store_url), clock=clock)
    await client.open()
    try:
        await client.add_schedule(tick, "*/5 * * * *", 1)  # skip
        clock.advance(5 * MINUTE + 30)  # the worker "wakes" 30 s late
        assert await keys(client, 1) == [at(T0 + 5 * MINUTE)]
    finally:
        await close_within(client)


async def test_two_workers_on_one_sqlite_file_fire_each_occurrence_once(tmp_path: Path) -> None:
    """Two workers with their own connections to one database race for the same occurrences."""
    clock = ManualClock(start=T0)
    url = f"sqlite:///{tmp_path}/podium.db"
    settings = settings_for(url).with_(concurrency=200)
    stores = [SQLiteStore(tmp_path / "podium.db"), SQLiteStore(tmp_path / "podium.db")]
    workers = [podium.Worker(s, settings, clock=clock) for s in stores]
    control = podium.Client(settings, worker=False, clock=clock)
    await control.open()
    for s in stores:
        await s.open()
    for w in workers:
        await w.start()
    try:
        for i in range(20):
            await control.add_schedule(tick, "* * * * *", i, name=f"every-minute-{i}")
        for minute in range(1, 6):
            clock.advance("1m")  # wakes both workers' schedulers at once
            # Wait until every occurrence of this minute is started and its claim forgotten: moving the
            # clock on a minute earlier would expire a live worker's claims (a lease is 2 s) and let the
            # other worker claim them again, as it would a dead worker's.
            await eventually(
                lambda: control.store.schedule_next_at(["sched.tick"]),
                lambda t, m=minute: t == T0 + (m + 1) * MINUTE,
                what=f"the claims of minute {minute} to be done",
            )
            assert len(await control.list(limit=1000)) == 20 * minute
        runs = await eventually(
            lambda: control.list(limit=1000),
            lambda rs: all(r.status is podium.RunStatus.COMPLETED for r in rs),
            what="every run to complete",
        )
        want = {cron.run_key(f"every-minute-{i}", T0 + m * MINUTE) for i in range(20) for m in range(1, 6)}
        got = Counter(r.key for r in runs)
        assert set(got) == want and max(got.values()) == 1
        schedulers = [w.scheduler for w in workers]
        assert all(s is not None for s in schedulers)
        # Neither worker started an occurrence the other had claimed: claims, not only keys, kept them apart.
        assert sum(s.started for s in schedulers if s) == 100
        assert sum(s.repeated for s in schedulers if s) == 0
        assert all(s.last_at == T0 + 5 * MINUTE for s in await control.schedules())
    finally:
        for w in workers:
            await w.stop()
        for s in stores:
            await s.close()
        await close_within(control)


async def test_occurrences_claimed_by_a_worker_that_died_are_started_by_another(tmp_path: Path) -> None:
    """A worker claims two occurrences (advancing the schedules), starts the run of one and dies before
    forgetting its claims. Once the claims expire, a live worker starts the other, and finds the first."""
    clock = ManualClock(start=T0)
    settings = settings_for(f"sqlite:///{tmp_path}/podium.db")
    async with podium.Client(settings, worker=False, clock=clock) as dead:
        await dead.add_schedule(tick, "*/5 * * * *", 1, name="a")
        await dead.add_schedule(tick, "*/5 * * * *", 2, name="b")
        clock.advance("5m")
        now = clock()
        fires = await dead.store.schedule_claim_due(
            "dead-worker",
            ["sched.tick"],
            now=now,
            lease_until=now + settings.lease_seconds,
            limit=10,
            plan=cron.plan,
        )
        assert sorted(f.name for f in fires) == ["a", "b"]
        first = next(f for f in fires if f.name == "a")
        handle = await dead.start(tick, first.input, key=cron.run_key("a", first.at))
        # ... and the process dies here: no schedule_fired, no run for "b".
    assert all(s.next_at == T0 + 10 * MINUTE for s in await dead_schedules(settings, clock))
    live = podium.Client(settings, clock=clock)
    await live.open()
    try:
        assert await live.list() == [await live.get(handle.id)]  # the claims still hold: nothing new
        clock.advance(settings.lease_seconds + 1)  # the dead worker's claims expire
        runs = await eventually(
            lambda: live.list(),
            lambda rs: len(rs) == 2 and all(r.status is podium.RunStatus.COMPLETED for r in rs),
            what="both occurrences' runs",
        )
        assert sorted(r.key or "" for r in runs) == [
            cron.run_key("a", T0 + 5 * MINUTE),
            cron.run_key("b", T0 + 5 * MINUTE),
        ]
        assert (scheduler(live).started, scheduler(live).repeated) == (1, 1)
        assert await live.store.schedule_next_at(["sched.tick"]) == T0 + 10 * MINUTE  # no claims left
    finally:
        await close_within(live)


async def test_a_schedules_runs_start_in_its_tenant_also_after_its_claim_expired(store_url: str) -> None:
    clock = ManualClock(start=T0)
    settings = settings_for(store_url)
    client = podium.Client(settings, clock=clock)
    await client.open()
    try:
        acme = await client.add_schedule(tick, "*/5 * * * *", 1, name="acme-tick", tenant="acme")
        assert acme.tenant == "acme"
        assert (await client.add_schedule(tick, "*/5 * * * *", 2, name="plain")).tenant == "default"
        await client.add_schedule(tick, "*/5 * * * *", 3, name="globex-tick", tenant="globex")
        assert {s.name: s.tenant for s in await client.schedules()} == {
            "acme-tick": "acme",
            "globex-tick": "globex",
            "plain": "default",
        }
        clock.advance("5m")
        runs = await eventually(
            lambda: client.list(),
            lambda rs: len(rs) == 3 and all(r.status is podium.RunStatus.COMPLETED for r in rs),
            what="three runs",
        )
        assert {r.input: r.tenant for r in runs} == {1: "acme", 2: "default", 3: "globex"}
        # Declaring it again in another tenant is a new definition: its next runs start there.
        moved = await client.add_schedule(tick, "*/5 * * * *", 1, name="acme-tick", tenant="initech")
        assert moved.tenant == "initech"
        with pytest.raises(podium.ConfigError, match="invalid tenant"):
            await client.add_schedule(tick, "*/5 * * * *", 1, name="bad", tenant="a/b")
    finally:
        await close_within(client)
    if store_url.startswith("memory"):
        return  # the rest reopens the database
    # An occurrence claimed by a worker that died keeps its tenant until another starts it.
    async with podium.Client(settings, worker=False, clock=clock) as dead:
        clock.advance("5m")
        now = clock()
        fires = await dead.store.schedule_claim_due(
            "dead", ["sched.tick"], now=now, lease_until=now + 1, limit=10, plan=cron.plan
        )
        assert {f.name: f.tenant for f in fires} == {
            "acme-tick": "initech",
            "globex-tick": "globex",
            "plain": "default",
        }
        again = await dead.store.schedule_claim_due(
            "live", ["sched.tick"], now=now + 2, lease_until=now + 9, limit=10, plan=cron.plan
        )
        assert {f.name: f.tenant for f in again} == {f.name: f.tenant for f in fires}


async def dead_schedules(settings: podium.Settings, clock: ManualClock) -> list[podium.records.Schedule]:
    async with podium.Client(settings, worker=False, clock=clock) as c:
        return await c.schedules()


async def test_pause_resume_and_delete(store_url: str) -> None:
    clock = ManualClock(start=T0)
    client = podium.Client(settings_for(store_url), clock=clock)
    await client.open()
    try:
        await client.add_schedule(tick, "*/5 * * * *", 1)
        paused = await client.pause_schedule("sched.tick")
        assert paused.paused and (await client.pause_schedule("sched.tick")).paused  # idempotent
        clock.advance("30m")
        assert await client.list() == []
        resumed = await client.resume_schedule("sched.tick")
        assert not resumed.paused and resumed.next_at == T0 + 35 * MINUTE  # no catching up on the pause
        clock.advance("5m")
        assert await keys(client, 1) == [at(T0 + 35 * MINUTE)]
        assert await client.delete_schedule("sched.tick") is True
        assert await client.delete_schedule("sched.tick") is False
        assert await client.schedules() == []
        clock.advance("1h")
        assert len(await client.list()) == 1
        with pytest.raises(podium.UsageError, match=re.escape("no schedule named 'sched.tick'")):
            await client.pause_schedule("sched.tick")
    finally:
        await close_within(client)


async def test_declaring_a_schedule_again_keeps_it_and_a_new_definition_replaces_it(store_url: str) -> None:
    clock = ManualClock(start=T0)
    async with podium.Client(settings_for(store_url), worker=False, clock=clock) as client:
        first = await client.add_schedule(tick, "*/5  *  * * *", 1, name="job")  # spaces are normalized
        clock.advance("2m")
        again = await client.add_schedule(tick, "*/5 * * * *", 1, name="job")
        assert again == first  # unchanged: same next occurrence
        await client.pause_schedule("job")
        changed = await client.add_schedule(tick, "0 * * * *", 1, name="job", tz="Europe/Paris")
        assert (changed.cron, changed.tz, changed.paused) == ("0 * * * *", "Europe/Paris", True)
        assert changed.next_at == T0 + 60 * MINUTE and changed.created_at == first.created_at
        assert [s.name for s in await client.schedules()] == ["job"]


async def test_schedules_follow_their_time_zone(store_url: str) -> None:
    clock = ManualClock(start=datetime(2027, 3, 26, 12, tzinfo=UTC).timestamp())
    async with podium.Client(settings_for(store_url), worker=False, clock=clock) as client:
        s = await client.add_schedule(tick, "0 9 * * *", 1, tz="Europe/Paris")
        assert s.next_at == datetime(2027, 3, 27, 8, tzinfo=UTC).timestamp()  # 09:00 CET
        clock.advance("2d")
        s = await client.add_schedule(tick, "0 9 * * *", 1, tz="Europe/Paris", name="after-dst")
        assert s.next_at == datetime(2027, 3, 29, 7, tzinfo=UTC).timestamp()  # 09:00 CEST


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron": "*/5 * * *"}, "invalid cron expression"),
        ({"cron": "61 * * * *"}, "invalid cron expression"),
        ({"cron": "0 0 30 2 *"}, "never falls due"),
        ({"cron": "* * * * *", "tz": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"cron": "* * * * *", "missed": "sometimes"}, "unknown missed-run policy 'sometimes'"),
        ({"cron": "* * * * *", "name": "has space"}, "invalid schedule name"),
        ({"cron": "* * * * *", "input": "not a number"}, "invalid input for flow 'sched.tick'"),
        ({"cron": "* * * * *", "flow": "no.such.flow"}, "unknown flow 'no.such.flow'"),
    ],
)
async def test_mistakes_are_usage_errors_and_store_nothing(kwargs: dict[str, str], message: str) -> None:
    async with podium.Client(settings_for("memory://"), worker=False) as client:
        args = {"flow": tick, "input": 1, **kwargs}
        with pytest.raises(podium.UsageError, match=re.escape(message)):
            await client.add_schedule(**args)
        assert await client.schedules() == []


async def test_start_many_starts_runs_in_one_call_idempotently(store_url: str) -> None:
    client = podium.Client(settings_for(store_url).with_(concurrency=2))
    await client.open()
    try:
        handles = await client.start_many([(tick, i, f"many-{i}") for i in range(5)])
        assert [h.created for h in handles] == [True] * 5
        assert [await h.result(timeout=WAIT_SECONDS) for h in handles] == [0, 2, 4, 6, 8]
        again = await client.start_many([(tick, 0, "many-0"), ("sched.tick", 9, None)])
        assert again[0].id == handles[0].id and [h.created for h in again] == [False, True]
        assert await again[1].result(timeout=WAIT_SECONDS) == 18
        with pytest.raises(podium.InvalidInputError):
            await client.start_many([(tick, 1, "fine"), (tick, "not a number", "bad")])
        assert len(await client.list()) == 6  # a refused input creates none of the batch
    finally:
        await close_within(client)


# -- the command line, and two worker processes --------------------------------------------------------


def podium_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path}/podium.db", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "podium.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_schedule_commands(tmp_path: Path) -> None:
    r = podium_cli(
        tmp_path, "schedule", "add", "examples/hello.py:hello", "--cron", "*/5 * * * *", "--input", '"ann"'
    )
    assert r.returncode == 0, r.stderr
    assert "schedule 'hello'" in r.stdout and "podium worker examples/hello.py" in r.stdout
    r = podium_cli(
        tmp_path,
        *("schedule", "add", "examples/hello.py:hello", "--cron", "0 9 * * mon-fri", "--input", '"bob"'),
        *("--name", "morning", "--tz", "Europe/Paris", "--missed", "once"),
    )
    assert r.returncode == 0, r.stderr
    listed = podium_cli(tmp_path, "schedule", "list")
    assert listed.returncode == 0
    assert "hello" in listed.stdout and "morning" in listed.stdout and "Europe/Paris" in listed.stdout
    assert podium_cli(tmp_path, "schedule", "pause", "morning").returncode == 0
    rows = json.loads(podium_cli(tmp_path, "schedule", "list", "--json").stdout)
    assert [(s["name"], s["paused"], s["missed"]) for s in rows] == [
        ("hello", False, "skip"),
        ("morning", True, "once"),
    ]
    assert podium_cli(tmp_path, "schedule", "resume", "morning").returncode == 0
    assert podium_cli(tmp_path, "schedule", "delete", "hello").returncode == 0
    rows = json.loads(podium_cli(tmp_path, "schedule", "list", "--json").stdout)
    assert [(s["name"], s["paused"]) for s in rows] == [("morning", False)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "*/5 * * *"], "invalid cron expression '*/5 * * *'"),
        (["--cron", "* * * * *", "--input", "{bad"], "--input is not valid JSON"),
        (["--cron", "* * * * *", "--input", "[1]"], "invalid input for flow 'hello'"),
        (["--cron", "* * * * *", "--input", '"x"', "--missed", "never"], "unknown missed-run policy"),
        (["--cron", "* * * * *", "--input", '"x"', "--tz", "Nowhere"], "unknown time zone"),
    ],
)
def test_schedule_mistakes_print_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    r = podium_cli(tmp_path, "schedule", "add", "examples/hello.py:hello", *args)
    assert r.returncode == 1 and message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 2
    assert json.loads(podium_cli(tmp_path, "schedule", "list", "--json").stdout) == []


@pytest.mark.parametrize(
    "args",
    [
        ["schedule", "add", "examples/hello.py:nope", "--cron", "* * * * *"],
        ["schedule", "pause", "nope"],
        ["schedule", "resume", "nope"],
        ["schedule", "delete", "nope"],
    ],
)
def test_unknown_flows_and_schedules_print_one_clear_line(tmp_path: Path, args: list[str]) -> None:
    r = podium_cli(tmp_path, *args)
    assert r.returncode == 1
    assert "has no attribute 'nope'" in r.stderr or "no schedule named 'nope'" in r.stderr
    assert "Traceback" not in r.stderr


def test_two_worker_processes_fire_every_second_once(tmp_path: Path) -> None:
    """Real time, real processes: a schedule due every second, two `podium worker`s on one SQLite file."""
    r = podium_cli(
        tmp_path, "schedule", "add", "examples/hello.py:hello", "--cron", "* * * * * *", "--input", '"x"'
    )
    assert r.returncode == 0, r.stderr
    env = {
        **os.environ,
        "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path}/podium.db",
        "PODIUM_POLL_SECONDS": "0.2",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "podium.cli", "worker", "examples/hello.py"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    db = Database(tmp_path / "podium.db")
    try:
        for p in procs:  # each says so once it is set up and handles Ctrl-C
            assert p.stderr is not None and "worker" in p.stderr.readline()
        assert db.wait_for_runs(4), "four occurrences within the time limit"
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            _, errors = p.communicate(timeout=WAIT_SECONDS)
            assert p.returncode == 0, errors
    keys = db.run_keys()
    assert len(keys) == len(set(keys))
    started = {datetime.fromisoformat(k.removeprefix("schedule:hello:")).timestamp() for k in keys}
    # A worker stopped between claiming occurrences and forgetting the claims leaves them claimed (their
    # runs may exist already); the next worker claims them again and the run keys prevent a second run.
    times = sorted(started | set(db.claimed()))
    assert times == [times[0] + i for i in range(len(times))], "an occurrence was lost"


class Database:
    """The test's database read from outside the workers (plain sqlite3)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _rows(self, sql: str) -> list[tuple[object, ...]]:
        import sqlite3
        from contextlib import closing

        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            return db.execute(sql).fetchall()

    def run_keys(self) -> list[str]:
        return [str(r[0]) for r in self._rows("SELECT key FROM runs")]

    def claimed(self) -> list[float]:
        return [float(str(r[0])) for r in self._rows("SELECT at FROM schedule_fires")]

    def wait_for_runs(self, count: int) -> bool:
        import time

        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if (
                self.path.exists()
                and len(self._rows("SELECT id FROM runs WHERE status = 'completed'")) >= count
            ):
                return True
            time.sleep(0.05)
        return False


def test_a_worker_killed_while_schedules_fall_due_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """SIGKILL a worker at a random moment of a schedule due every second (catch up missed occurrences);
    a second worker takes over: every occurrence from the first to the last has exactly one run."""
    import random
    import time

    r = podium_cli(
        tmp_path,
        "schedule", "add", "examples/hello.py:hello", "--cron", "* * * * * *", "--input", '"x"',
        "--missed", "catchup",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    env = {
        **os.environ,
        "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path}/podium.db",
        "PODIUM_POLL_SECONDS": "0.2",
        "PODIUM_LEASE_SECONDS": "1",
    }
    cmd = [sys.executable, "-m", "podium.cli", "worker", "examples/hello.py"]
    db = Database(tmp_path / "podium.db")
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert db.wait_for_runs(2), "the first worker fired the schedule"
        time.sleep(random.uniform(0, 1))  # anywhere in the second: claiming, starting or running
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=WAIT_SECONDS)
        before = len(db.run_keys())
        time.sleep(1.5)  # occurrences fall due with no worker up
    finally:
        if first.poll() is None:
            first.kill()
    second = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert db.wait_for_runs(before + 3), "the second worker caught up and went on"
    finally:
        second.send_signal(signal.SIGINT)
        _, errors = second.communicate(timeout=WAIT_SECONDS)
    assert second.returncode == 0, errors
    keys = db.run_keys()
    assert len(keys) == len(set(keys)), "an occurrence ran twice"
    started = sorted(datetime.fromisoformat(k.removeprefix("schedule:hello:")).timestamp() for k in keys)
    claimed = set(db.claimed())
    times = sorted(set(started) | claimed)
    assert times == [times[0] + i for i in range(len(times))], "an occurrence was lost"
