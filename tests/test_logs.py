"""Structured logs: every line one JSON object with ts/level/logger/message and the run and step it belongs
to; run and step events logged by LogObserver; ``podium worker`` and ``podium serve`` with
``PODIUM_LOG_FORMAT=json`` write nothing else to stderr."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import WAIT_SECONDS, eventually
from subproc import Podium

import podium
from podium.errors import ConfigError
from podium.observability.logs import JsonFormatter, LogObserver
from podium.runtime import make_observers

app_log = logging.getLogger("tests.app")
ATTEMPTS: dict[str, int] = {}


@podium.step(retries=1)
async def charge(amount: int) -> int:
    app_log.info("charging %d", amount)
    ATTEMPTS["charge"] = ATTEMPTS.get("charge", 0) + 1
    if ATTEMPTS["charge"] == 1:
        raise ValueError("card declined once")
    return amount


@podium.flow(name="logs.pay")
async def pay(ctx: podium.Context, amount: int) -> int:
    app_log.info("paying", extra={"customer": "ann"})
    return await charge(amount)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything logged at DEBUG and above, formatted by JsonFormatter."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    ATTEMPTS.clear()
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def records(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line is one JSON object


async def test_lines_carry_the_run_and_step_they_belong_to(captured: io.StringIO) -> None:
    settings = podium.Settings(database_url="memory://", poll_seconds=0.05)
    async with podium.Client(settings, observers=[LogObserver()]) as client:
        h = await client.start(pay, 5)
        assert await h.result(timeout=WAIT_SECONDS) == 5
    lines = records(captured.getvalue())
    for r in lines:
        assert {"ts", "level", "logger", "message"} <= set(r)
        datetime.fromisoformat(r["ts"].replace("Z", "+00:00"))
        assert r["ts"].endswith("Z")
    mine = [r for r in lines if r.get("run_id") == h.id]
    flow_line = next(r for r in mine if r["message"] == "paying")
    assert flow_line["logger"] == "tests.app" and flow_line["flow"] == "logs.pay"
    assert flow_line["customer"] == "ann" and "step" not in flow_line  # flow code: no step
    step_lines = [r for r in mine if r["message"] == "charging 5"]
    assert len(step_lines) == 2  # the attempt that failed and the retry
    for r in step_lines:
        assert (r["flow"], r["step"], r["position"], r["level"]) == ("logs.pay", "charge", "0", "INFO")
    events = [(r["event"], r["level"], r.get("step")) for r in mine if r["logger"] == "podium.events"]
    assert events == [
        ("run.claimed", "INFO", None),
        ("step.started", "DEBUG", "charge"),
        ("step.retrying", "INFO", "charge"),
        ("step.ended", "DEBUG", "charge"),
        ("run.ended", "INFO", None),
    ]
    retry = next(r for r in mine if r.get("event") == "step.retrying")
    assert retry["error_type"] == "ValueError" and retry["error"] == "card declined once"
    assert retry["message"] == "step charge attempt 1 failed, retrying: card declined once"
    end = next(r for r in mine if r.get("event") == "run.ended")
    assert end["message"] == "run completed" and end["status"] == "completed" and end["duration_s"] >= 0


def test_exceptions_and_odd_extras_stay_one_json_line(captured: io.StringIO) -> None:
    log = logging.getLogger("tests.odd")
    try:
        raise KeyError("missing")
    except KeyError:
        log.exception("it broke\non two lines", extra={"run_id": "r1", "blob": object(), "n": 3})
    (line,) = captured.getvalue().splitlines()
    r = json.loads(line)
    assert r["message"] == "it broke\non two lines" and r["level"] == "ERROR" and r["run_id"] == "r1"
    assert "KeyError: 'missing'" in r["exc"] and r["n"] == 3 and r["blob"].startswith("<object")


def test_switched_on_by_podium_log_format() -> None:
    settings = podium.Settings.from_env({"PODIUM_LOG_FORMAT": "json", "PODIUM_LOG_LEVEL": "debug"})
    assert settings.observability.log_format == "json" and settings.observability.log_level == "DEBUG"
    assert [type(o).__name__ for o in make_observers(settings)] == ["LogObserver"]
    assert make_observers(podium.Settings.from_env({})) == []
    with pytest.raises(ConfigError, match="use text or json"):
        podium.Settings.from_env({"PODIUM_LOG_FORMAT": "xml"})


# -- real processes -------------------------------------------------------------------------------------

FLOWS = """
import logging
import podium

@podium.step
async def greet(name: str) -> str:
    logging.getLogger("flows").info("greeting %s", name)
    return "hello " + name

@podium.flow(name="logcli.hello")
async def hello(ctx: podium.Context, name: str) -> str:
    return await greet(name)
"""


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path}/podium.db",
        "PODIUM_POLL_SECONDS": "0.05",
        "PODIUM_LOG_FORMAT": "json",
        "PODIUM_LOG_LEVEL": "DEBUG",
        "PODIUM_CONFIG": str(tmp_path / "podium.toml"),
    }


async def test_podium_worker_writes_only_json_lines(tmp_path: Path) -> None:
    (tmp_path / "podium.toml").write_text("")
    (tmp_path / "logcli_flows.py").write_text(textwrap.dedent(FLOWS))
    err = await Podium.start("worker", str(tmp_path / "logcli_flows.py"), env=_env(tmp_path))
    try:
        await err.wait_for("Ctrl-C stops")
        sys.path.insert(0, str(tmp_path))
        try:
            import logcli_flows  # type: ignore[import-not-found]
        finally:
            sys.path.remove(str(tmp_path))
        settings = podium.Settings(database_url=f"sqlite:///{tmp_path}/podium.db")
        async with podium.Client(settings, worker=False) as control:
            h = await control.start(logcli_flows.hello, "ann")
            await eventually(
                lambda: control.get(h.id), lambda r: r.status.terminal, what="the worker to finish the run"
            )
        await err.wait_for('"run completed"')
    finally:
        text = await err.stop()
    assert err.proc.returncode == 0, text
    lines = records(text)
    cli = [r["message"] for r in lines if r["logger"] == "podium.cli"]
    assert cli[0].startswith("worker ") and cli[-1] == "stopping: releasing held runs"
    mine = [r for r in lines if r.get("run_id") == h.id]
    assert [r["message"] for r in mine] == [
        "run claimed",
        "step greet started",
        "greeting ann",
        "step greet ended",
        "run completed",
    ]
    greeting = mine[2]
    assert (greeting["logger"], greeting["flow"], greeting["step"], greeting["position"]) == (
        "flows",
        "logcli.hello",
        "greet",
        "0",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_podium_serve_writes_only_json_lines(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn", reason="needs `pip install podium[server]`")
    (tmp_path / "podium.toml").write_text("")
    port = _free_port()
    err = await Podium.start("serve", "--port", str(port), env=_env(tmp_path))
    try:
        await err.wait_for("Uvicorn running")
        async with httpx.AsyncClient() as http:
            r = await http.get(f"http://127.0.0.1:{port}/healthz")
            assert r.status_code == 200
        await err.wait_for("/healthz")
    finally:
        text = await err.stop()
    lines = records(text)
    loggers = {r["logger"] for r in lines}
    assert {"uvicorn.error", "uvicorn.access"} <= loggers
    access = next(r for r in lines if r["logger"] == "uvicorn.access")
    assert "GET /healthz" in access["message"] and access["level"] == "INFO"
