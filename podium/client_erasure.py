"""The erasure part of ``Client``: forget everything Podium holds about one data subject (a person).

```python
report = await client.erase_subject("user-42", by="dpo@example.org")
report.runs, report.payloads, report.spaces, report.unfinished
```
A run names its subject at start (``client.start(flow, x, subject="user-42")``; child runs inherit it).
Erasing the subject erases, for each of its finished runs: the input, output and error, every journal entry's
data, the token stream and the stored payloads (kept only while another run still references the same
bytes), and the payloads of its audit entries (the audit chain keeps their hashes, so it still verifies).
Memory namespaces, collections and conversation threads named after the subject (``user-42`` or
``user-42/...``) are deleted with their vectors and caches. The erasure itself is audited
(``data.deleted``). Runs not finished yet are left alone and reported: cancel them, or erase again once
they end.

Runs with a subject never write the shared model response cache, so no cached answer outlives an erasure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, UsageError
from .policies.access import DEFAULT_TENANT

if TYPE_CHECKING:
    from .config import Settings
    from .observability.audit import Auditor
    from .storage.base import Store

_SUBJECT = re.compile(r"[^\s/][^\s]{0,199}")


def check_subject(subject: str | None) -> None:
    """A subject id: a non-empty string of at most 200 characters, no spaces, not starting with ``/``."""
    if subject is None:
        return
    if not isinstance(subject, str) or not _SUBJECT.fullmatch(subject):
        raise UsageError(
            f"a data subject must be an id of 1 to 200 characters without spaces or a leading '/', "
            f"not {subject!r}"
        )


@dataclass(slots=True)
class ErasureReport:
    """What ``erase_subject`` erased, and what it could not yet."""

    subject: str
    runs: list[str] = field(default_factory=list)
    """Runs erased (their skeletons stay: steps, times, statuses)."""
    events: int = 0
    """Journal entries whose data was erased."""
    payloads: int = 0
    """Stored payloads deleted (no other run referenced them)."""
    audit_entries: int = 0
    """Audit entries whose payload was erased (their hashes stay in the chain)."""
    spaces: list[str] = field(default_factory=list)
    """Memory namespaces and collections deleted."""
    threads: list[str] = field(default_factory=list)
    """Conversation threads deleted."""
    unfinished: list[str] = field(default_factory=list)
    """The subject's runs still under way: not erased (cancel them, or erase again once they end)."""


class ErasureMixin:
    """Erasure of a data subject (a part of ``Client``)."""

    if TYPE_CHECKING:
        store: Store
        settings: Settings
        clock: Callable[[], float]
        auditor: Auditor | None

        def _check_open(self) -> None: ...

    async def erase_subject(self, subject: str, *, by: str | None = None) -> ErasureReport:
        """Erase what Podium holds about ``subject``: its finished runs' data, its memories and threads,
        its audit entries' payloads; record the erasure in the audit trail. See the module's doc."""
        self._check_open()
        check_subject(subject)
        report = ErasureReport(subject)
        # The memory layer first: on SQLite it shares the run store's file, whose erasure ends with a WAL
        # checkpoint that takes every erased page to the file.
        runs = await self.store.runs_of_subject(subject)
        tenants = {r.tenant for r in runs}
        report.spaces, report.threads = _erase_memory(self.settings, subject, tenants)
        report.unfinished = sorted(r.id for r in runs if not r.status.terminal)
        done = await self.store.erase_runs([r.id for r in runs if r.status.terminal])
        report.runs, report.events, report.payloads = sorted(done.runs), done.events, done.payloads
        report.audit_entries = done.audit
        if self.auditor is not None:
            facts: dict[str, Any] = {
                "subject": subject,
                "runs": len(report.runs),
                "events": report.events,
                "payloads": report.payloads,
                "audit_entries": report.audit_entries,
                "spaces": report.spaces,
                "threads": report.threads,
                "unfinished": report.unfinished,
            }
            await self.auditor.record("data.deleted", subject=subject, actor=by, payload=facts)
        return report


def _erase_memory(
    settings: Settings, subject: str, tenants: Collection[str] = ()
) -> tuple[list[str], list[str]]:
    """Delete the memory spaces and threads named ``subject`` or ``subject/...``, also within each of
    ``tenants`` (the tenants of the subject's runs, whose memory names are ``<tenant>/...``); nothing without
    the memory layer's extra, or when none were made."""
    try:
        from .memory.store import store_for
    except ImportError:  # podium[memory] not installed: there is no memory to erase
        return [], []
    try:
        store = store_for(settings)
    except ConfigError:  # no memory layer can open here (PostgreSQL without pgvector): none was ever made
        return [], []
    names = [subject] + [f"{t}/{subject}" for t in sorted(tenants) if t != DEFAULT_TENANT]
    spaces = [s.name for s in store.spaces() if any(_named_after(s.name.partition(":")[2], n) for n in names)]
    for name in spaces:
        store.delete_space(name)
    threads = sorted({t for n in names for t in store.threads(n) if _named_after(t, n)})
    for thread in threads:
        store.delete_thread(thread)
    store.flush()
    return sorted(spaces), sorted(threads)


def _named_after(name: str, subject: str) -> bool:
    return name == subject or name.startswith(subject + "/")
