"""Typed, frozen settings. The only module that reads environment variables.

| variable | default | meaning |
|---|---|---|
| ``PODIUM_DATABASE_URL`` | ``sqlite:///.podium/podium.db`` | ``sqlite:///PATH``, ``postgresql://``, ``memory://``|
| ``PODIUM_LEASE_SECONDS`` | ``30`` | how long a worker's claim on a run lasts without a heartbeat |
| ``PODIUM_POLL_SECONDS`` | ``1.0`` | how often an idle worker looks for runnable runs |
| ``PODIUM_HOLD_SECONDS`` | ``2.0`` | shorter timers wait in memory; longer ones release the run |
| ``PODIUM_CONCURRENCY`` | ``100`` | runs one worker executes at once |
| ``PODIUM_CONFIG`` | ``podium.toml`` | the configuration file (models, ...), if it exists |
| ``PODIUM_OTLP_ENDPOINT`` | unset | OTLP/HTTP traces to ``http://host:4318`` (``podium[otel]``) |
| ``PODIUM_METRICS`` | ``0`` | ``1``: keep Prometheus metrics in workers started by a ``Client`` |
| ``PODIUM_LOG_FORMAT`` | ``text`` | ``json``: JSON log lines (``podium worker``, ``podium serve``) |
| ``PODIUM_LOG_LEVEL`` | ``INFO`` | the level of those logs (``DEBUG`` adds every step) |
| ``PODIUM_AUDIT`` | ``1`` | ``0``: record no audit trail |
| ``PODIUM_AUDIT_KEY`` | beside a SQLite database | the Ed25519 key file that signs audit checkpoints |
| ``PODIUM_QUEUES`` | unset | queue limits, ``gpu=2,io=8``: runs of a queue at once, across all workers |
| ``PODIUM_RAY_ADDRESS`` | unset | where ``executor="ray"`` steps run: ``auto``, ``ray://host:10001`` |

The observability variables may also be set in ``[observability]`` of ``podium.toml`` (``otlp_endpoint``,
``metrics``, ``log_format``, ``log_level``), queue limits in ``[queues]`` (``gpu = 2``), Ray in ``[ray]``
(``address``, ``num_cpus``, ``num_gpus``, ``object_store_memory``); a variable wins over the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError, UsageError
from .types import check_queue_name, parse_duration

DEFAULT_DATABASE_URL = "sqlite:///.podium/podium.db"
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, kw_only=True)
class Observability:
    """What to observe, resolved from settings and ``[observability]`` (see ``Settings.observability``)."""

    otlp_endpoint: str | None = None
    metrics: bool = False
    log_format: str = "text"
    log_level: str = "INFO"


@dataclass(frozen=True, kw_only=True)
class Storage:
    """Journal economy, from ``[storage]`` in ``podium.toml`` (see docs/journal.md)::

    [storage]
    payload_threshold = 4096   # values this large (JSON bytes) are stored once, by hash, compressed
    blobs = ".podium/blobs"    # optional: a directory for very large payloads
    blob_threshold = 1048576   # ... from this size on
    retention = "30d"          # default retention of finished runs' payloads (flows may set their own)
    gc_interval = "1h"         # how often a worker collects garbage (0: never)

    [tenants.acme]
    retention = "7d"           # a tenant's own default (a flow's own retention still wins)
    """

    payload_threshold: int = 4096
    blobs: Path | None = None
    blob_threshold: int = 1 << 20
    retention: float | None = None
    """Seconds; None: keep payloads of flows without their own ``retention`` forever."""
    gc_interval: float = 3600.0


@dataclass(frozen=True, kw_only=True)
class RaySettings:
    """Where ``executor="ray"`` steps run (``[ray]`` in ``podium.toml``, see ``Settings.ray``).

    ``address`` None starts a local Ray instance in the worker process on first use (``num_cpus``,
    ``num_gpus`` and ``object_store_memory`` size it; None lets Ray decide); ``"auto"`` or
    ``"ray://host:10001"`` connects to a running cluster instead.
    """

    address: str | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None
    object_store_memory: int | None = None


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
    otlp_endpoint: str | None = None
    """OTLP/HTTP endpoint for traces; None: ``[observability] otlp_endpoint``, else no tracing."""
    metrics: bool | None = None
    """Prometheus metrics in a ``Client``'s worker; None: ``[observability] metrics`` (default off)."""
    log_format: str | None = None
    """``text`` or ``json``; None: ``[observability] log_format`` (default ``text``)."""
    log_level: str | None = None
    """None: ``[observability] log_level`` (default ``INFO``)."""
    audit: bool = True
    """Record security-relevant events in the tamper-evident audit trail (``podium audit verify``)."""
    audit_key: str | None = None
    """The file of the Ed25519 key that signs audit checkpoints; None: ``audit.key`` beside a SQLite
    database, and no checkpoints on PostgreSQL (set it there, to a file outside the database's reach)."""
    queues: Mapping[str, int] | None = None
    """Queue limits (runs of a queue at once, across all workers); merged over ``[queues]`` of
    ``podium.toml`` (a queue named in both takes the value given here). See ``Settings.queue_limits``."""
    ray_address: str | None = None
    """The Ray cluster for ``executor="ray"`` steps; None: ``[ray] address``, else a local instance."""

    def __post_init__(self) -> None:
        if not self.database_url.startswith(("sqlite://", "memory://", "postgresql://", "postgres://")):
            raise ConfigError(
                f"unsupported database URL {self.database_url!r}: "
                "use sqlite:///PATH, postgresql://USER@HOST/DB or memory://"
            )
        for name in ("lease_seconds", "poll_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if self.hold_seconds < 0:
            raise ConfigError("hold_seconds must not be negative")
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        self.observability  # noqa: B018 - validates the observability settings now
        self.storage  # noqa: B018 - and the storage settings
        self.queue_limits  # noqa: B018 - and the queue limits
        self.ray  # noqa: B018 - and the Ray settings

    @property
    def queue_limits(self) -> dict[str, int]:
        """Runs at once per queue, across all workers: ``[queues]`` of ``podium.toml`` updated with
        ``queues``; ``ConfigError`` on a bad name or a limit that is not a positive integer."""
        section = self.config.get("queues") or {}
        if not isinstance(section, Mapping):
            raise ConfigError("[queues] in podium.toml must be a table of queue = limit")
        out: dict[str, int] = {}
        for where, table in (("[queues] in podium.toml", section), ("queue limits", self.queues or {})):
            for name, value in table.items():
                try:
                    check_queue_name(name)
                except UsageError as exc:
                    raise ConfigError(f"{where}: {exc}") from None
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ConfigError(
                        f"{where}: the limit of queue {name!r} must be a positive integer, not {value!r}"
                    )
                out[name] = value
        return out

    @property
    def ray(self) -> RaySettings:
        """Ray settings: ``ray_address`` (or ``PODIUM_RAY_ADDRESS``) wins over ``[ray] address``;
        ``ConfigError`` on a bad value."""
        section = self.config.get("ray") or {}
        if not isinstance(section, Mapping):
            raise ConfigError("[ray] in podium.toml must be a table")
        unknown = set(section) - {"address", "num_cpus", "num_gpus", "object_store_memory"}
        if unknown:
            raise ConfigError(f"[ray]: unknown key(s) {', '.join(sorted(unknown))}")
        address = self.ray_address if self.ray_address is not None else section.get("address")
        if address is not None and (
            not isinstance(address, str)
            or not address
            or not (address == "auto" or address.startswith("ray://") or ":" in address)
        ):
            raise ConfigError(f'Ray address {address!r}: use "auto", "ray://HOST:PORT" or HOST:PORT')
        sizes: dict[str, int | None] = {}
        for key in ("num_cpus", "num_gpus", "object_store_memory"):
            value = section.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ConfigError(f"[ray] {key} must be a non-negative integer, not {value!r}")
            sizes[key] = value
        return RaySettings(address=address or None, **sizes)

    @property
    def audit_key_path(self) -> Path | None:
        """Where the audit signing key is (see ``audit_key``), or None for no signed checkpoints."""
        if self.audit_key:
            return Path(self.audit_key)
        if self.database_url.startswith("sqlite:///"):
            db = self.database_url.removeprefix("sqlite:///").split("?", 1)[0]
            if db and db != ":memory:":
                return Path(db).parent / "audit.key"
        return None

    @property
    def observability(self) -> Observability:
        """Tracing, metrics and log settings: a field set here (or by a variable) wins over
        ``[observability]`` in ``podium.toml``; ``ConfigError`` on a bad value."""
        section = self.config.get("observability") or {}
        if not isinstance(section, Mapping):
            raise ConfigError("[observability] in podium.toml must be a table")
        unknown = set(section) - {"otlp_endpoint", "metrics", "log_format", "log_level"}
        if unknown:
            raise ConfigError(f"[observability]: unknown key(s) {', '.join(sorted(unknown))}")
        endpoint = self.otlp_endpoint if self.otlp_endpoint is not None else section.get("otlp_endpoint")
        if endpoint is not None and (
            not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://"))
        ):
            raise ConfigError(f"otlp_endpoint {endpoint!r} must be an http:// or https:// URL")
        metrics = self.metrics if self.metrics is not None else section.get("metrics", False)
        if not isinstance(metrics, bool):
            raise ConfigError(f"[observability] metrics must be true or false, not {metrics!r}")
        fmt = self.log_format if self.log_format is not None else section.get("log_format", "text")
        if fmt not in LOG_FORMATS:
            raise ConfigError(f"log format {fmt!r}: use text or json")
        level = self.log_level if self.log_level is not None else section.get("log_level", "INFO")
        if not isinstance(level, str) or level.upper() not in LOG_LEVELS:
            raise ConfigError(f"log level {level!r}: use one of {', '.join(LOG_LEVELS)}")
        return Observability(
            otlp_endpoint=endpoint or None, metrics=metrics, log_format=fmt, log_level=level.upper()
        )

    @property
    def storage(self) -> Storage:
        """``[storage]`` of ``podium.toml``; ``ConfigError`` on a bad value."""
        section = self.config.get("storage") or {}
        if not isinstance(section, Mapping):
            raise ConfigError("[storage] in podium.toml must be a table")
        known = {"payload_threshold", "blobs", "blob_threshold", "retention", "gc_interval"}
        unknown = set(section) - known
        if unknown:
            raise ConfigError(f"[storage]: unknown key(s) {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for key in ("payload_threshold", "blob_threshold"):
            if key in section:
                n = section[key]
                if isinstance(n, bool) or not isinstance(n, int) or n < 64:
                    raise ConfigError(f"[storage] {key} must be a number of bytes (at least 64), not {n!r}")
                values[key] = n
        if "blobs" in section:
            if not isinstance(section["blobs"], str) or not section["blobs"]:
                raise ConfigError(f"[storage] blobs must be a directory path, not {section['blobs']!r}")
            values["blobs"] = Path(section["blobs"])
        for key in ("retention", "gc_interval"):
            if key in section:
                try:
                    values[key] = parse_duration(section[key])
                except Exception:
                    raise ConfigError(f"[storage] {key}: {section[key]!r} is not a duration") from None
        st = Storage(**values)
        if st.blob_threshold < st.payload_threshold:
            raise ConfigError("[storage] blob_threshold must not be below payload_threshold")
        return st

    @property
    def tenant_retention(self) -> dict[str, float]:
        """Each tenant's own payload retention (seconds), from ``[tenants.NAME] retention`` of
        ``podium.toml``; ``ConfigError`` on a bad value. A flow's own ``retention`` wins over its tenant's,
        which wins over ``[storage] retention``."""
        section = self.config.get("tenants") or {}
        if not isinstance(section, Mapping):
            raise ConfigError("[tenants] in podium.toml must be a table of [tenants.NAME] tables")
        out: dict[str, float] = {}
        from .policies.access import check_tenant

        for name, table in section.items():
            check_tenant(name)
            if not isinstance(table, Mapping):
                raise ConfigError(f"[tenants.{name}] in podium.toml must be a table")
            unknown = set(table) - {"retention"}
            if unknown:
                raise ConfigError(f"[tenants.{name}]: unknown key(s) {', '.join(sorted(unknown))}")
            if "retention" in table:
                raw = table["retention"]
                try:
                    seconds = parse_duration(raw)
                except Exception:
                    raise ConfigError(f"[tenants.{name}] retention: {raw!r} is not a duration") from None
                if seconds < 0:
                    raise ConfigError(f"[tenants.{name}] retention must not be negative, not {raw!r}")
                out[name] = seconds
        return out

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
        if raw := env.get("PODIUM_OTLP_ENDPOINT"):
            values["otlp_endpoint"] = raw
        if raw := env.get("PODIUM_METRICS"):
            flag = raw.strip().lower()
            if flag not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ConfigError(f"PODIUM_METRICS={raw!r}: use 1 or 0")
            values["metrics"] = flag in ("1", "true", "yes", "on")
        if raw := env.get("PODIUM_AUDIT"):
            flag = raw.strip().lower()
            if flag not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ConfigError(f"PODIUM_AUDIT={raw!r}: use 1 or 0")
            values["audit"] = flag in ("1", "true", "yes", "on")
        if raw := env.get("PODIUM_AUDIT_KEY"):
            values["audit_key"] = raw
        if raw := env.get("PODIUM_LOG_FORMAT"):
            values["log_format"] = raw.strip().lower()
        if raw := env.get("PODIUM_LOG_LEVEL"):
            values["log_level"] = raw.strip().upper()
        if raw := env.get("PODIUM_QUEUES"):
            values["queues"] = _parse_queues(raw)
        if raw := env.get("PODIUM_RAY_ADDRESS"):
            values["ray_address"] = raw.strip()
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


def _parse_queues(raw: str) -> dict[str, int]:
    """``PODIUM_QUEUES``: ``name=limit`` pairs separated by commas."""
    out: dict[str, int] = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        name, sep, limit = part.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = int(limit)
        except ValueError:
            raise ConfigError(f"PODIUM_QUEUES={raw!r}: use name=limit pairs, like gpu=2,io=8") from None
    return out


def load_config(path: str | Path) -> dict[str, Any]:
    """Parse a ``podium.toml``; ``ConfigError`` with the line on a syntax error."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


_SECRETS: set[str] = set()


def secret(name: str) -> str | None:
    """The value of environment variable ``name`` (API keys are read here, when a call needs them). The
    value is remembered, so that ``redact_secrets`` takes it out of anything journaled, logged or traced."""
    value = os.environ.get(name)
    if value and len(value) >= 8:
        _SECRETS.add(value)
    return value


def redact_secrets(text: str) -> str:
    """``text`` with every secret this process has read (``secret``) replaced by ``[REDACTED]``: a provider
    that echoes a key in an error message does not put it in the journal, the logs or a trace."""
    if not _SECRETS or not text:
        return text
    for value in _SECRETS:
        if value in text:
            text = text.replace(value, "[REDACTED]")
    return text
