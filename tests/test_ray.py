"""Steps run as Ray tasks (``@podium.step(executor="ray")``) on a real local Ray instance (``num_cpus=2``):
results journaled like any step's, the function's errors, retries when a Ray worker process dies, timeouts,
unpicklable arguments, and a ``podium worker`` SIGKILLed while a Ray step runs.

Ray starts once for the module. Without Ray installed the module is skipped, unless ``PODIUM_REQUIRE_RAY=1``
(then it fails).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import settings_for

import podium

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
WAIT = 120.0
"""Upper bound for a subprocess or a wait: only there so a broken engine cannot hang the suite."""

os.environ.setdefault(
    "RAY_USAGE_STATS_ENABLED", "0"
)  # read when ray is imported and started: nothing calls home
os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
try:
    import ray
except ImportError:  # pragma: no cover - CI installs podium[ray]
    if os.environ.get("PODIUM_REQUIRE_RAY") == "1":
        raise
    pytest.skip("Ray is not installed: pip install podium[ray]", allow_module_level=True)

import ray_app  # noqa: E402 - after the skip: it declares Ray steps


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local Ray instance for the module; the workers here find it initialised and use it."""
    before = os.environ.get("PYTHONPATH")
    path = before or ""
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(TESTS), path) if p)  # Ray workers
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    try:
        yield
    finally:
        ray.shutdown()
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


async def steps(client: podium.Client, run_id: str) -> dict[str, dict[str, Any]]:
    return {e.name or "": e.data for e in await client.journal(run_id) if e.kind == "step"}


async def test_ray_steps_run_in_ray_workers_and_are_journaled(tmp_path: Path) -> None:
    async with podium.Client(settings_for(f"sqlite:///{tmp_path}/p.db")) as client:
        handle = await client.start(ray_app.basics, 5)
        out = await handle.result(timeout=WAIT)
        journal = await steps(client, handle.id)
    assert out["a"]["value"] == 10 and out["b"]["value"] == 20 and out["c"]["value"] == 40
    assert out["a"]["pid"] != out["local_pid"] and out["b"]["pid"] != out["local_pid"]  # not in the worker
    assert out["a"]["key"] == f"{handle.id}/0"  # current_step() works inside the Ray task
    assert journal["ray.double"]["result"] == out["a"] and journal["ray.double"]["attempts"] == 1
    assert journal["ray.adouble"]["result"] == out["b"]
    assert journal["ray.double.again"]["result"] == out["c"]


async def test_ray_steps_fan_out_with_ctx_map(tmp_path: Path) -> None:
    async with podium.Client(settings_for(f"sqlite:///{tmp_path}/p.db")) as client:
        handle = await client.start(ray_app.fanout, 6)
        out = await handle.result(timeout=WAIT)
        entries = await client.journal(handle.id)
    assert out == [0, 2, 4, 6, 8, 10]
    positions = sorted(e.position for e in entries if e.kind == "step")
    assert positions == [f"0.{i}.0" for i in range(6)]


async def test_a_ray_worker_dying_mid_step_is_retried(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    async with podium.Client(settings_for(f"sqlite:///{tmp_path}/p.db")) as client:
        handle = await client.start(ray_app.crashing, str(marker))
        pid = await handle.result(timeout=WAIT)
        entries = await client.journal(handle.id)
    killed = int(marker.read_text())
    assert pid != killed  # the second attempt ran in a new Ray worker process
    attempts = [e for e in entries if e.kind == "attempt"]
    assert len(attempts) == 1
    error = attempts[0].data["error"]
    assert error["type"] == "RayWorkerDied" and error["retryable"] is True
    assert "died" in error["message"]
    step = next(e for e in entries if e.kind == "step")
    assert step.data["attempts"] == 2 and step.data["result"] == pid


async def test_the_functions_own_error_is_the_steps_error(tmp_path: Path) -> None:
    async with podium.Client(settings_for(f"sqlite:///{tmp_path}/p.db")) as client:
        handle = await client.start(ray_app.failing, None)
        out = await handle.result(timeout=WAIT)
        entries = await client.journal(handle.id)
    assert out == "ValueError: bad value 7"
    assert [e.data["error"]["type"] for e in entries if e.kind == "attempt"] == ["ValueError"]
    step = next(e for e in entries if e.kind == "step")
    assert step.data["attempts"] == 2 and step.data["error"]["type"] == "ValueError"


async def test_a_step_timeout_cancels_the_ray_task(tmp_path: Path) -> None:
    async with podium.Client(settings_for(f"sqlite:///{tmp_path}/p.db")) as client:
        handle = await client.start(ray_app.timing_out, None)
        assert await handle.result(timeout=WAIT) == "StepTimeoutError"
        # the cancelled task gave its CPU back: both of Ray's CPUs serve the next steps
        again = await client.start(ray_app.basics, 2)
        out = await again.result(timeout=WAIT)
    assert out["c"]["value"] == 16


async def test_unpicklable_arguments_are_a_clear_non_retryable_error(tmp_path: Path) -> None:
    async with podium.Client(settings_for(f"sqlite:///{tmp_path}/p.db")) as client:
        handle = await client.start(ray_app.unpicklable, None)
        out = await handle.result(timeout=WAIT)
        entries = await client.journal(handle.id)
    assert out.startswith("UnpicklableStep: step 'ray.lock' runs on Ray, so its function and arguments")
    assert not [e for e in entries if e.kind == "attempt"]  # not retried: it cannot succeed


def test_bad_ray_step_options_are_usage_errors() -> None:
    with pytest.raises(podium.UsageError, match="unknown step executor 'dask'"):
        podium.step(executor="dask")(lambda: None)
    with pytest.raises(podium.UsageError, match='need executor="ray"'):
        podium.step(num_gpus=1)(lambda: None)
    with pytest.raises(podium.UsageError, match="num_cpus must be a non-negative number"):
        podium.step(executor="ray", num_cpus=-1)(lambda: None)
    with pytest.raises(podium.UsageError, match="resources must map"):
        podium.step(executor="ray", resources={"tpu": "many"})(lambda: None)  # type: ignore[dict-item]
    with pytest.raises(podium.ConfigError, match=r"\[ray\] num_cpus must be a non-negative integer"):
        podium.Settings(database_url="memory://", config={"ray": {"num_cpus": "two"}})
    with pytest.raises(podium.ConfigError, match="Ray address 'nowhere'"):
        podium.Settings(database_url="memory://", ray_address="nowhere")


# -- a podium worker SIGKILLed while its Ray step runs ---------------------------------------------------


def read_ledger(path: Path) -> list[tuple[str, str, int]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        event, step, pid, _ = line.split(" ", 3)
        out.append((event, step, int(pid)))
    return out


def worker_process(db: str, toml: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PODIUM_CONFIG": str(toml),
        "PODIUM_LEASE_SECONDS": "2",
        "PODIUM_POLL_SECONDS": "0.1",
        "PYTHONPATH": os.pathsep.join((str(ROOT), str(TESTS))),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "podium.cli", "worker", str(TESTS / "ray_app.py"), "--db", db]
    with log.open("wb") as out:  # the child has its own copy of the descriptor
        return subprocess.Popen(cmd, env=env, cwd=TESTS, stdout=out, stderr=subprocess.STDOUT)


def wait_for(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie waiting for its parent has finished too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


async def test_a_worker_killed_during_a_ray_step_resumes_elsewhere_without_repeating_steps(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path}/p.db"
    ledger, go = tmp_path / "ledger", tmp_path / "go"
    toml = tmp_path / "podium.toml"
    toml.write_text("[ray]\nnum_cpus = 2\nobject_store_memory = 100_000_000\n")
    async with podium.Client(settings_for(db), worker=False) as client:
        handle = await client.start(ray_app.pipeline, {"ledger": str(ledger), "go": str(go)})
    first = worker_process(db, toml, tmp_path / "first.log")
    try:
        wait_for(lambda: ("start", "train") in [(e, s) for e, s, _ in read_ledger(ledger)], "the Ray step")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=WAIT)
    ray_pid = next(p for e, s, p in read_ledger(ledger) if (e, s) == ("start", "train"))
    wait_for(lambda: gone(ray_pid), "the dead worker's Ray processes to end with it")
    go.write_text("go")
    second = worker_process(db, toml, tmp_path / "second.log")
    try:
        async with podium.Client(settings_for(db), worker=False) as client:
            out = await client.result(handle.id, timeout=WAIT)
            journal = await steps(client, handle.id)
            run = await client.get(handle.id)
    finally:
        second.send_signal(signal.SIGTERM)  # a clean stop: it shuts its local Ray down
        second.wait(timeout=WAIT)
    lines = read_ledger(ledger)
    done = [s for e, s, _ in lines if e == "done"]
    assert done == ["prepare", "train", "publish"], lines  # nothing finished ran twice
    assert [s for e, s, _ in lines if e == "start"] == ["train", "train"]  # the killed attempt, then one
    second_ray_pid = next(p for e, s, p in lines if (e, s) == ("done", "train"))
    assert out == f"published model trained in {second_ray_pid}" and second_ray_pid != ray_pid
    assert journal["ray.prepare"]["attempts"] == journal["ray.train"]["attempts"] == 1
    assert run.status is podium.RunStatus.COMPLETED
    assert second.returncode == 0, (tmp_path / "second.log").read_text()[-2000:]


MISSING_RAY = """
import asyncio, sys
sys.modules["ray"] = None  # as if Ray were not installed: `import ray` raises ImportError
import podium

@podium.step(executor="ray", retries=3)
def remote_step() -> int:
    return 1

@podium.flow
async def needs_ray(ctx: podium.Context) -> str:
    try:
        await remote_step()
    except podium.StepError as exc:
        return f"{exc.type} retryable={exc.retryable} attempts={exc.attempts}: {exc.message}"
    return "ran"

async def main() -> None:
    async with podium.Client(podium.Settings(database_url="memory://")) as client:
        print(await (await client.start(needs_ray)).result(timeout=30))

asyncio.run(main())
"""


def test_without_ray_a_ray_step_fails_once_with_the_install_hint() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", MISSING_RAY], env=env, capture_output=True, text=True, timeout=WAIT
    )
    assert done.returncode == 0, done.stderr
    hint = "steps with executor='ray' need Ray: pip install podium[ray]"
    assert done.stdout.strip() == f"RayNotInstalled retryable=False attempts=1: {hint}"
