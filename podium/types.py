"""Small shared types: JSON values, durations, ids, run status."""

from __future__ import annotations

import enum
import re
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypeAlias

Clock: TypeAlias = Callable[[], float]
"""Seconds since the epoch, like ``time.time`` (the default); tests pass ``podium.testing.ManualClock``."""

JSON: TypeAlias = Any
"""A JSON-compatible value (dict, list, str, int, float, bool or None)."""

Duration: TypeAlias = "float | int | str | timedelta"
"""Seconds as a number, a ``timedelta``, or a string such as ``"500ms"``, ``"10m"`` or ``"1h30m"``."""


class RunStatus(enum.StrEnum):
    """Where a run is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")


def parse_duration(value: Duration) -> float:
    """Turn a duration into seconds.

    >>> parse_duration("1h30m"), parse_duration("250ms"), parse_duration(5)
    (5400.0, 0.25, 5.0)
    """
    from .errors import UsageError

    if isinstance(value, bool):
        raise UsageError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        parts = _PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            try:
                seconds = float(text)
            except ValueError:
                raise UsageError(
                    f"invalid duration {value!r}: use seconds or a string like '500ms', '10m', '1h30m'"
                ) from None
        else:
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise UsageError(f"invalid duration {value!r}")
    if seconds < 0 or seconds != seconds:
        raise UsageError(f"invalid duration {value!r}: must be zero or positive")
    return seconds


_QUEUE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}")


def check_queue_name(name: object) -> str:
    """``name`` if it is a valid queue name (letters, digits, ``_ . : -``; up to 64), else ``UsageError``."""
    from .errors import UsageError

    if not isinstance(name, str) or not _QUEUE_NAME.fullmatch(name):
        raise UsageError(
            f"queue name {name!r} is invalid: use letters, digits, '_', '.', ':' or '-' (up to 64 characters)"
        )
    return name


def new_id() -> str:
    """A new run id: 24 hex characters, sortable by creation time."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


class RenderedPrompt(str):
    """Text rendered from a registry prompt (``Prompt.render``): a ``str`` that remembers where it came from.

    Model calls given one (as the prompt, as ``system=`` or as a message's content) journal its
    ``provenance`` (``{"name", "version", "label"}``) in ``Completion.prompt``. ``system`` is the prompt's
    rendered system text, if it has one.
    """

    provenance: dict[str, Any]
    system: RenderedPrompt | None

    def __new__(
        cls, text: str, provenance: dict[str, Any], system: RenderedPrompt | None = None
    ) -> RenderedPrompt:
        self = super().__new__(cls, text)
        self.provenance = provenance
        self.system = system
        return self

    def __reduce__(self) -> Any:
        return (RenderedPrompt, (str(self), self.provenance, self.system))


MAX_PINS = 64


def check_pins(pins: Mapping[str, str] | None) -> dict[str, str]:
    """``pins`` as a plain dict, checked: at most 64 of them, non-empty string keys (200 characters at
    most) and string values."""
    from .errors import UsageError

    if pins is None:
        return {}
    if not isinstance(pins, Mapping):
        raise UsageError(f"pins must be a mapping of strings to strings, not {type(pins).__name__}")
    if len(pins) > MAX_PINS:
        raise UsageError(f"a run takes at most {MAX_PINS} pins, not {len(pins)}")
    out: dict[str, str] = {}
    for k, v in pins.items():
        if not isinstance(k, str) or not k.strip() or len(k) > 200:
            raise UsageError(f"a pin's key must be a non-empty string of at most 200 characters, not {k!r}")
        if not isinstance(v, str):
            raise UsageError(f"pin {k!r} must be a string, not {type(v).__name__}")
        out[k] = v
    return out
