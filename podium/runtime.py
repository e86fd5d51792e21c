"""Wiring: settings to concrete parts. The one place that picks a store class and the observers."""

from __future__ import annotations

from collections.abc import Iterable

from .config import Settings
from .errors import ConfigError
from .hooks import Observer
from .storage.base import Store
from .storage.memory import MemoryStore
from .storage.payloads import PayloadOptions
from .storage.sqlite import SQLiteStore


def make_store(settings: Settings) -> Store:
    """The store named by ``settings.database_url``."""
    url = settings.database_url
    st = settings.storage
    if url.startswith("memory://"):
        memory = MemoryStore()
        memory.threshold = st.payload_threshold
        return memory
    payloads = PayloadOptions(
        threshold=st.payload_threshold, blobs=st.blobs, blob_threshold=st.blob_threshold
    )
    if url.startswith(("postgresql://", "postgres://")):
        from .storage.postgres import PostgresStore  # needs podium[postgres]: imported only when used

        return PostgresStore.from_url(url, payloads=payloads)
    return SQLiteStore.from_url(url, payloads=payloads)


def make_observers(settings: Settings, *, store: Store | None = None) -> list[Observer]:
    """The observers that ``settings`` switch on (``settings.observability``): JSON logs of run events,
    Prometheus metrics (their unfinished-runs gauge asks ``store``) and OpenTelemetry traces, in that order.
    With nothing switched on: an empty list, and nothing of OpenTelemetry or prometheus_client imported."""
    obs = settings.observability
    observers: list[Observer] = []
    if obs.log_format == "json":
        from .observability.logs import LogObserver

        observers.append(LogObserver())
    if obs.metrics:
        from .observability.metrics import MetricsObserver

        observers.append(MetricsObserver(store=store))
    if obs.otlp_endpoint:
        try:
            from .observability.tracing import TracingObserver
        except ImportError as exc:
            raise ConfigError(f"otlp_endpoint is set, but tracing cannot start: {exc}") from None
        observers.append(TracingObserver(endpoint=obs.otlp_endpoint))
    return observers


def close_observers(observers: Iterable[Observer]) -> None:
    """Call ``close()`` on the observers that have one (tracing flushes its spans)."""
    for o in observers:
        close = getattr(o, "close", None)
        if callable(close):
            close()


def scratch_store() -> Store:
    """A throwaway store that keeps step results in JSON form, as a durable store does (for replays)."""
    return MemoryStore(json_results=True)
