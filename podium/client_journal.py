"""The journal economy part of ``Client``: retention now (``podium gc``), storage by flow and age, token
streams."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import TYPE_CHECKING

from .engine.retention import collect_garbage
from .errors import UsageError
from .types import Duration, parse_duration
from .workflow.flow import registered

if TYPE_CHECKING:
    from .config import Settings
    from .storage.base import Store, StreamChunk
    from .storage.payloads import Collected, Usage


class JournalMixin:
    """Retention, storage usage and token streams (a part of ``Client``)."""

    if TYPE_CHECKING:
        store: Store
        clock: Callable[[], float]
        settings: Settings

        def _check_open(self) -> None: ...

    async def collect_garbage(self, *, older_than: Duration | None = None) -> Collected:
        """Apply retention now (``podium gc``): delete the payloads of finished runs, keeping their skeletons.

        Without ``older_than``: each registered flow's ``retention``, then ``[tenants.NAME] retention`` for
        the runs of that tenant, then ``[storage] retention`` for every other run (nothing, if none is set).
        With it: every flow's runs that ended that long ago.
        """
        self._check_open()
        if older_than is not None:
            seconds = parse_duration(older_than)
            if seconds < 0:
                raise UsageError(f"older_than must not be negative, not {older_than!r}")
            return await collect_garbage(self.store, now=self.clock(), retention={}, default=seconds)
        retention = {name: fl.retention for name, fl in registered().items()}
        default = self.settings.storage.retention
        tenants = self.settings.tenant_retention
        return await collect_garbage(
            self.store, now=self.clock(), retention=retention, default=default, tenants=tenants
        )

    async def tokens(self, run_id: str, *, after: int = 0, limit: int = 1000) -> builtins.list[StreamChunk]:
        """The run's streamed model text (``ModelHandle.stream``) as chunks with ``id > after``, in order.

        A chunk whose ``text`` is None is a reset: the step (``chunk.step``) streams again from the start
        (a retry, or another worker after a crash); drop what was shown of that step's earlier epochs.
        Concatenating a step's chunks of its last epoch gives the text the model produced.
        """
        self._check_open()
        if not 1 <= limit <= 10_000:
            raise UsageError("limit must be between 1 and 10000")
        return await self.store.stream_read(run_id, after=after, limit=limit)

    async def storage_usage(self) -> builtins.list[Usage]:
        """Journal and payload bytes by flow and by age of run (``podium stats``)."""
        self._check_open()
        return await self.store.storage_usage(now=self.clock())
