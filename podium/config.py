"""Typed, frozen settings. The only module that reads environment variables.

| variable | default | meaning |
|---|---|---|
| ``PODIUM_DATABASE_URL`` | ``sqlite:///.podium/podium.db`` | ``sqlite:///PATH``, ``memory://`` |
| ``PODIUM_LEASE_SECONDS`` | ``30`` | how long a worker's claim on a run lasts without a heartbeat |
| ``PODIUM_POLL_SECONDS`` | ``1.0`` | how often an idle worker looks for runnable runs |
| ``PODIUM_HOLD_SECONDS`` | ``2.0`` | shorter timers wait in memory; longer ones release the run |
| ``PODIUM_CONCURRENCY`` | ``100`` | runs one worker executes at once |
| ``PODIUM_CONFIG`` | ``podium.toml`` | the configuration file (models, ...), if it exists |
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .types import parse_duration

DEFAULT_DATABASE_URL = "sqlite:///.podium/podium.db"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Podium's settings. Build with ``Settings.from_env()`` or directly with keywords."""

    database_url: str = DEFAULT_DATABASE_URL
    lease_seconds: float = 30.0
    poll_seconds: float = 1.0
    hold_seconds: float = 2.0
    concurrency: int = 100
    config: Mapping[str, Any] = field(default_factory=dict)
    """The parsed configuration file (``podium.toml``): ``models`` and future sections."""

    def __post_init__(self) -> None:
        if not self.database_url.startswith(("sqlite://", "memory://")):
            raise ConfigError(
                f"unsupported database URL {self.database_url!r}: use sqlite:///PATH or memory://"
            )
        for name in ("lease_seconds", "poll_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if self.hold_seconds < 0:
            raise ConfigError("hold_seconds must not be negative")
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``PODIUM_*`` environment variables, then keyword overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if url := env.get("PODIUM_DATABASE_URL"):
            values["database_url"] = url
        for key, name in (
            ("PODIUM_LEASE_SECONDS", "lease_seconds"),
            ("PODIUM_POLL_SECONDS", "poll_seconds"),
            ("PODIUM_HOLD_SECONDS", "hold_seconds"),
        ):
            if raw := env.get(key):
                try:
                    values[name] = parse_duration(raw)
                except Exception:
                    raise ConfigError(f"{key}={raw!r} is not a duration") from None
        if raw := env.get("PODIUM_CONCURRENCY"):
            try:
                values["concurrency"] = int(raw)
            except ValueError:
                raise ConfigError(f"PODIUM_CONCURRENCY={raw!r} is not an integer") from None
        path = Path(env.get("PODIUM_CONFIG", "podium.toml"))
        if path.is_file():
            values["config"] = load_config(path)
        elif "PODIUM_CONFIG" in env:
            raise ConfigError(f"PODIUM_CONFIG={str(path)!r}: no such file")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


def load_config(path: str | Path) -> dict[str, Any]:
    """Parse a ``podium.toml``; ``ConfigError`` with the line on a syntax error."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def secret(name: str) -> str | None:
    """The value of environment variable ``name`` (API keys are read here, when a call needs them)."""
    return os.environ.get(name)
