"""Podium's one exception tree.

```
PodiumError                      base of everything Podium raises
├── UsageError                   a caller's mistake; nothing was changed
│   ├── ConfigError              bad settings (database URL, durations, ...)
│   ├── UnknownFlowError         no flow registered under that name
│   ├── InvalidInputError        the input does not fit the flow's signature
│   ├── RunNotFoundError         no run with that id
│   ├── PromptNotFoundError      no prompt, version or label with that name in the registry
│   ├── PermissionDeniedError    the principal may not do that (its role, or a ``[[permissions]]`` rule)
│   ├── PolicyViolationError     a policy refused a start or an approval decision
│   └── InvalidStateError        the run cannot do that now (approve a run that is not waiting, ...)
│       └── SignalRefusedError   a signal that needs a milestone the run is not in
├── RunError                     a run (or a step in it) failed; has ``type`` and ``retryable``
│   ├── ApplicationError         raised on purpose by user code, optionally non-retryable
│   │   └── PolicyDeniedError    a policy denied a model call or blocked an answer in a run
│   ├── StepError                a step failed after its retries (replayed identically from the journal)
│   ├── StepTimeoutError         a step attempt took longer than its timeout
│   ├── RunTimeoutError          the run exceeded its run-level timeout
│   ├── RunFailedError           ``handle.result()`` of a run that failed
│   ├── RunCancelledError        ``handle.result()`` of a run that was cancelled
│   └── NondeterminismError      replay met code that asks for a different step than the journal holds
└── StoreError                   the store failed or refused (infrastructure, retry later)
    └── LeaseLostError           another worker took this run over; this worker stops touching it
```
Cancellation of a running flow is delivered as ``asyncio.CancelledError`` (a ``BaseException``), so an
``except Exception`` in flow code cannot swallow it.
"""

from __future__ import annotations

from typing import Any


class PodiumError(Exception):
    """Base class of every error Podium raises."""


class UsageError(PodiumError):
    """The caller made a mistake (bad argument, unknown name, wrong state). Nothing was changed."""


class ConfigError(UsageError):
    """Settings are invalid."""


class UnknownFlowError(UsageError):
    """No flow is registered under the given name."""


class InvalidInputError(UsageError):
    """A flow's input (or a decision's payload) failed validation."""


class RunNotFoundError(UsageError):
    """No run has the given id."""


class PromptNotFoundError(UsageError):
    """The prompt registry holds no prompt, version or label by the given name."""


class PermissionDeniedError(UsageError):
    """The principal acting (an API key, the MCP server's key, a ``--tenant`` CLI) may not do this: its
    role lacks the action, or a ``[[permissions]]`` rule keeps it off the flow. Nothing was changed.

    Another tenant's run is not "forbidden" but absent: it raises ``RunNotFoundError`` (no existence leak).
    """


class PolicyViolationError(UsageError):
    """A policy (``podium.policies``) refused a request to the control plane; nothing was changed."""


class InvalidStateError(UsageError):
    """The run is not in a state that allows the operation."""


class SignalRefusedError(InvalidStateError):
    """The signal requires a milestone the run is not in now; nothing was changed."""


class RunError(PodiumError):
    """A run or step failed.

    ``type`` is a stable name for the failure (by default the class name of the original exception);
    ``retryable`` tells whether retrying the same work may succeed.
    """

    def __init__(self, message: str, *, type: str | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.type = type or self.__class__.__name__
        self.retryable = retryable

    def to_dict(self) -> dict[str, Any]:
        """The JSON form journaled for this error."""
        return {"type": self.type, "message": self.message, "retryable": self.retryable}


class ApplicationError(RunError):
    """Raise this from step or flow code to fail on purpose.

    >>> raise ApplicationError("card declined", type="CardDeclined", retryable=False)  # doctest: +SKIP
    """


class PolicyDeniedError(ApplicationError):
    """A policy (``podium.policies``) denied a model call or blocked an answer inside a run."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type="PolicyDenied", retryable=False)


class StepError(RunError):
    """A step failed after all its attempts. Raised identically live and on replay.

    ``step`` is the step's id in the run, ``name`` its name, ``attempts`` how often it ran.
    """

    def __init__(
        self,
        message: str,
        *,
        type: str | None = None,
        retryable: bool = True,
        step: str = "",
        name: str = "",
        attempts: int = 1,
    ) -> None:
        super().__init__(message, type=type, retryable=retryable)
        self.step = step
        self.name = name
        self.attempts = attempts

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "step": self.step, "name": self.name, "attempts": self.attempts}


class StepTimeoutError(RunError):
    """A step attempt exceeded its timeout."""


class RunTimeoutError(RunError):
    """The run exceeded its run-level timeout."""


class RunFailedError(RunError):
    """The awaited run failed; ``error`` holds the journaled failure."""

    def __init__(self, run_id: str, error: dict[str, Any]) -> None:
        super().__init__(
            f"run {run_id} failed: {error.get('type', 'Error')}: {error.get('message', '')}",
            type=str(error.get("type", "Error")),
            retryable=bool(error.get("retryable", False)),
        )
        self.run_id = run_id
        self.error = error


class RunCancelledError(RunError):
    """The awaited run was cancelled."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} was cancelled", retryable=False)
        self.run_id = run_id


class NondeterminismError(RunError):
    """Replayed code asked for a different step than the journal holds at that position."""

    def __init__(self, *, run_id: str, position: str, journaled: str, requested: str) -> None:
        super().__init__(
            f"nondeterminism in run {run_id} at position {position}: the journal holds {journaled} "
            f"but the flow code asked for {requested}. The flow's code changed while this run was in "
            "flight; restore the old code path for runs started before the change.",
            retryable=False,
        )
        self.run_id = run_id
        self.position = position
        self.journaled = journaled
        self.requested = requested


class StoreError(PodiumError):
    """The store failed; the operation may be retried."""


class LeaseLostError(StoreError):
    """This worker no longer holds the run's lease (another worker took it over)."""
