"""The public API is what `podium` exports; this pins it so that changes are deliberate."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import podium
from podium.config import Settings

ROOT = Path(__file__).resolve().parent.parent

EXPECTED = [
    "Agent", "AgentError", "AgentResult", "ApiKey", "ApplicationError", "Approval", "CancelScope", "Client",
    "ConfigError", "Context", "EngineEvent", "FeedEntry", "Finished", "Flow", "Group", "InvalidInputError",
    "InvalidStateError", "JournalEntry", "LeaseLostError", "Milestone", "NondeterminismError", "Observer",
    "PendingApproval", "PermissionDeniedError", "PodiumError", "PolicyDeniedError", "PolicyViolationError",
    "Principal", "Prompt", "PromptNotFoundError", "Prompts", "RenderedPrompt",
    "RetryPolicy", "Run", "RunCancelledError", "RunError",
    "RunFailedError", "RunHandle", "RunNotFoundError", "RunStatus", "RunTimeoutError", "Settings",
    "SignalRefusedError", "StepError", "StepFunction", "StepInfo", "StepTimeoutError", "StoreError",
    "TaskHandle", "TimelineRow", "Tool", "ToolResult", "Toolset", "UnknownFlowError", "UsageError",
    "Worker", "__version__", "current_step", "flow", "run", "step", "tool",
]  # fmt: skip


def test_all_is_pinned_and_sorted() -> None:
    assert podium.__all__ == EXPECTED
    assert sorted(podium.__all__) == podium.__all__
    for name in podium.__all__:
        assert hasattr(podium, name), name


def test_public_names_have_docstrings() -> None:
    missing = [n for n in podium.__all__ if not n.startswith("__") and not getattr(podium, n).__doc__]
    assert missing == []


def test_error_tree() -> None:
    assert issubclass(podium.UsageError, podium.PodiumError)
    for cls in (
        podium.UnknownFlowError,
        podium.InvalidInputError,
        podium.RunNotFoundError,
        podium.InvalidStateError,
        podium.ConfigError,
        podium.PromptNotFoundError,
        podium.PermissionDeniedError,
    ):
        assert issubclass(cls, podium.UsageError)
    for cls in (
        podium.StepError,
        podium.StepTimeoutError,
        podium.RunTimeoutError,
        podium.RunFailedError,
        podium.RunCancelledError,
        podium.NondeterminismError,
        podium.ApplicationError,
    ):
        assert issubclass(cls, podium.RunError)
    assert issubclass(podium.LeaseLostError, podium.StoreError)
    err = podium.ApplicationError("declined", type="CardDeclined", retryable=False)
    assert err.to_dict() == {"type": "CardDeclined", "message": "declined", "retryable": False}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PODIUM_DATABASE_URL": "mysql://x"}, "unsupported database URL"),
        ({"PODIUM_LEASE_SECONDS": "soon"}, "PODIUM_LEASE_SECONDS='soon' is not a duration"),
        ({"PODIUM_CONCURRENCY": "many"}, "PODIUM_CONCURRENCY='many' is not an integer"),
        ({"PODIUM_CONCURRENCY": "0"}, "concurrency must be at least 1"),
    ],
)
def test_bad_settings_are_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(podium.ConfigError, match=message):
        Settings.from_env(env)


def test_settings_from_environment() -> None:
    s = Settings.from_env(
        {
            "PODIUM_DATABASE_URL": "memory://",
            "PODIUM_LEASE_SECONDS": "1m",
            "PODIUM_HOLD_SECONDS": "500ms",
            "PODIUM_CONCURRENCY": "7",
        }
    )
    assert (s.database_url, s.lease_seconds, s.hold_seconds, s.concurrency) == ("memory://", 60.0, 0.5, 7)


@pytest.mark.parametrize("value", ["10 parsecs", "-5", "1h-", "", True])
def test_bad_durations(value: object) -> None:
    from podium.types import parse_duration

    with pytest.raises(podium.UsageError):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("script", ["examples/hello.py", "examples/checkout.py", "examples/prompts.py"])
def test_examples_run_as_scripts(tmp_path: Path, script: str) -> None:
    env = {"PODIUM_DATABASE_URL": f"sqlite:///{tmp_path}/p.db", "PATH": "/usr/bin:/bin"}
    if "PYTHONPATH" in os.environ:  # the package under test, as this process imports it
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    r = subprocess.run(
        [sys.executable, str(ROOT / script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()


def test_readme_quick_flow_runs(tmp_path: Path) -> None:
    """The README's first example, with a stand-in for the payment API it calls."""
    readme = (ROOT / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace("print(podium.run(", "result = (podium.run(")
    path = tmp_path / "readme_example.py"
    path.write_text(
        "import types\n"
        "payments = types.SimpleNamespace(charge=lambda order, amount, idempotency_key: "
        "f'{order}:{amount}:{idempotency_key.count(\"/\")}')\n" + code
    )
    import os

    old = os.environ.get("PODIUM_DATABASE_URL")
    os.environ["PODIUM_DATABASE_URL"] = f"sqlite:///{tmp_path}/readme.db"
    try:
        ns = runpy.run_path(str(path), run_name="readme_example")
    finally:
        if old is None:
            os.environ.pop("PODIUM_DATABASE_URL", None)
        else:
            os.environ["PODIUM_DATABASE_URL"] = old
    assert ns["result"] == "o-1:67.0:1"
