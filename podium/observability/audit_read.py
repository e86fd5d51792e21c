"""Reading the audit trail per tenant (``GET /api/audit``, ``ActingClient.audit``).

An entry belongs to the tenant its payload names (``run.started``, ``run.cancelled``, ``approval.decided``,
``policy.decision``, ``key.created``, ``key.revoked`` record it). An entry whose payload does not (an older
entry, or one erased for a data subject: the hash stays, the payload goes) belongs to the tenant of the run or
API key it is about (its ``subject``), which the store still knows. Anything else (``data.deleted``, platform
keys, entries about nothing a tenant owns) is for platform principals only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..storage.audit import AuditRecord
from ..storage.base import Store
from .audit import entry_json

SCAN = 1000
"""Entries read from the store at a time."""

MAX_SCAN = 100_000
"""Entries one call reads at most while looking for a tenant's: the page's ``next`` resumes after them."""


@dataclass
class AuditPage:
    """Entries of one reader's view, in order, and ``next``: the ``after`` of the following page (the last
    entry read, visible or not), or None at the end of the chain."""

    entries: list[dict[str, Any]]
    next: int | None


class _Tenants:
    """The tenant of each entry (see the module's docstring), with the runs and keys looked up once."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._runs: dict[str, str | None] = {}
        self._keys: dict[str, str | None] | None = None

    async def of(self, r: AuditRecord) -> str | None:
        if r.payload is not None:
            try:
                payload = json.loads(r.payload)
            except ValueError:
                payload = None
            if isinstance(payload, dict) and "tenant" in payload:
                tenant = payload["tenant"]
                return tenant if isinstance(tenant, str) else None
        if not r.subject:
            return None
        if r.action.startswith("key."):
            if self._keys is None:
                self._keys = {k.id: k.tenant for k in await self.store.key_list()}
            return self._keys.get(r.subject)
        if r.subject not in self._runs:
            run = await self.store.get_run(r.subject)
            self._runs[r.subject] = None if run is None else run.tenant
        return self._runs[r.subject]


async def read(
    store: Store,
    *,
    tenant: str | None = None,
    after: int = 0,
    limit: int = 100,
    action: str | None = None,
) -> AuditPage:
    """Up to ``limit`` entries after ``after`` (a ``seq``), of ``tenant`` only (None: every entry), of one
    ``action`` if given; each as in ``podium audit export`` plus its ``tenant``."""
    tenants = _Tenants(store)
    found: list[dict[str, Any]] = []
    scanned = 0
    while scanned < MAX_SCAN:
        rows = await store.audit_scan(after, limit=SCAN)
        if not rows:
            return AuditPage(found, None)
        for r in rows:
            after = r.seq
            scanned += 1
            if action is not None and r.action != action:
                continue
            owner = await tenants.of(r)
            if tenant is not None and owner != tenant:
                continue
            found.append({**entry_json(r), "tenant": owner})
            if len(found) == limit:
                return AuditPage(found, after)
    return AuditPage(found, after)
