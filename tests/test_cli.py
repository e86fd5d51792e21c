"""The podium command, run as a user runs it: real subprocesses on a real SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def podium(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path}/podium.db",
        "PODIUM_POLL_SECONDS": "0.1",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "podium.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_run_prints_the_output(tmp_path: Path) -> None:
    r = podium(tmp_path, "run", "examples/hello.py:hello", "--input", '"ann"')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == "hello ann"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "examples/hello.py:hello", "--input", "{bad"], "--input is not valid JSON"),
        (["run", "examples/hello.py:hello", "--input", "[1, 2]"], "invalid input for flow 'hello'"),
        (["run", "examples/hello.py:nope"], "has no attribute 'nope'"),
        (["run", "examples/missing.py:hello"], "no such file"),
        (["run", "hello"], "expected MODULE:FLOW"),
        (["show", "0123abc"], "no run with id '0123abc'"),
        (["approve", "0123abc"], "no run with id '0123abc'"),
        (["cancel", "0123abc"], "no run with id '0123abc'"),
        (["signal", "0123abc", "go"], "no run with id '0123abc'"),
        (["runs", "--status", "sleeping"], "unknown status"),
    ],
)
def test_mistakes_print_one_clear_line_and_change_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    r = podium(tmp_path, *args)
    assert r.returncode == 1
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2
    listed = podium(tmp_path, "runs", "--json")
    assert json.loads(listed.stdout) == []


def test_enqueue_then_worker_then_approve_from_the_cli(tmp_path: Path) -> None:
    r = podium(tmp_path, "run", "examples/hello.py:needs_ok", "--input", "900", "--key", "k1", "--no-wait")
    assert r.returncode == 0, r.stderr
    run_id = r.stdout.split("started run ")[1].split()[0]
    # Approving before the flow asked is a clear error, and nothing changes.
    early = podium(tmp_path, "approve", run_id)
    assert early.returncode == 1 and "not waiting for a pending approval" in early.stderr
    env = {
        **os.environ,
        "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path}/podium.db",
        "PODIUM_POLL_SECONDS": "0.1",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "podium.cli", "worker", "examples/hello.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            inbox = podium(tmp_path, "inbox")
            if run_id in inbox.stdout:
                break
            time.sleep(0.2)
        assert run_id in inbox.stdout and "spend" in inbox.stdout
        ok = podium(tmp_path, "approve", run_id, "--payload", '{"amount": 850}', "--by", "ann")
        assert ok.returncode == 0, ok.stderr
        twice = podium(tmp_path, "approve", run_id)
        assert twice.returncode == 1 and "decided already" in twice.stderr
        deadline = time.monotonic() + 30
        shown = {}
        while time.monotonic() < deadline:
            shown = json.loads(podium(tmp_path, "show", run_id, "--json").stdout)
            if shown["status"] == "completed":
                break
            time.sleep(0.2)
        assert shown["output"] == {"approved": True, "amount": 850, "by": "ann"}
        decisions = [e for e in shown["journal"] if e["kind"] == "decision"]
        assert len(decisions) == 1
        again = podium(
            tmp_path, "run", "examples/hello.py:needs_ok", "--input", "900", "--key", "k1", "--no-wait"
        )
        assert run_id in again.stdout  # same key, same run
        text = podium(tmp_path, "show", run_id)
        assert "approved" in text.stdout and "spend" in text.stdout
    finally:
        worker.terminate()
        _out, err = worker.communicate(timeout=20)
    assert worker.returncode == 0, err
    assert "releasing held runs" in err


def test_signal_and_cancel(tmp_path: Path) -> None:
    r = podium(tmp_path, "run", "examples/hello.py:needs_ok", "--input", "5", "--no-wait")
    run_id = r.stdout.split("started run ")[1].split()[0]
    s1 = podium(tmp_path, "signal", run_id, "poke", "--payload", '{"a": 1}', "--key", "e1")
    s2 = podium(tmp_path, "signal", run_id, "poke", "--payload", '{"a": 1}', "--key", "e1")
    assert s1.returncode == 0 and "sent" in s1.stdout
    assert s2.returncode == 0 and "already delivered" in s2.stdout
    c1 = podium(tmp_path, "cancel", run_id)
    c2 = podium(tmp_path, "cancel", run_id)
    assert c1.returncode == 0 and c2.returncode == 0
    shown = json.loads(podium(tmp_path, "show", run_id, "--json").stdout)
    assert shown["status"] == "cancelled"
    assert [e["kind"] for e in shown["journal"]].count("signal") == 1
    assert [e["kind"] for e in shown["journal"]].count("cancel") == 1
    late = podium(tmp_path, "signal", run_id, "poke")
    assert late.returncode == 1 and "cancelled" in late.stderr


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    r = podium(tmp_path, "demo", "--yes", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "approval needed" in r.stdout
    assert r.stdout.count("✔ T-") == 3
    assert "send_reply" in r.stdout


def test_keys_with_a_tenant_and_an_expiry_and_tenant_narrowed_commands(tmp_path: Path) -> None:
    r = podium(
        tmp_path, "keys", "create", "acme-bot", "--role", "operator", "--tenant", "acme", "--expires", "30d"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("pdm_") and "tenant acme" in r.stderr and "expires" in r.stderr
    r = podium(tmp_path, "keys", "create", "root", "--role", "admin")
    assert r.returncode == 0 and "all tenants" in r.stderr
    listed = podium(tmp_path, "keys", "list", "--tenant", "acme")
    assert "acme-bot" in listed.stdout and "root" not in listed.stdout
    assert "root" in podium(tmp_path, "keys", "list").stdout
    bad = podium(tmp_path, "keys", "create", "x", "--tenant", "a b")
    assert bad.returncode == 1 and "invalid tenant" in bad.stderr
    bad = podium(tmp_path, "keys", "create", "x", "--expires", "soon")
    assert bad.returncode == 1 and "invalid duration" in bad.stderr

    r = podium(tmp_path, "run", "examples/hello.py:hello", "--input", '"acme"', "--tenant", "acme")
    assert r.returncode == 0, r.stderr
    podium(tmp_path, "run", "examples/hello.py:hello", "--input", '"globex"', "--tenant", "globex")
    acme = json.loads(podium(tmp_path, "runs", "--json", "--tenant", "acme").stdout)
    assert [(x["input"], x["tenant"]) for x in acme] == [("acme", "acme")]
    every = json.loads(podium(tmp_path, "runs", "--json").stdout)
    assert sorted(x["tenant"] for x in every) == ["acme", "globex"]
    globex_id = next(x["id"] for x in every if x["tenant"] == "globex")
    hidden = podium(tmp_path, "show", globex_id, "--tenant", "acme")
    assert hidden.returncode == 1 and f"no run with id '{globex_id}'" in hidden.stderr
    shown = podium(tmp_path, "show", globex_id)
    assert shown.returncode == 0 and "tenant" in shown.stdout and "globex" in shown.stdout
