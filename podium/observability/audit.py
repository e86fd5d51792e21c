"""The tamper-evident audit trail: recording security-relevant events, signed checkpoints, verification.

Every entry covers the previous entry's hash and its payload's hash (``podium.storage.audit``), so editing,
inserting, deleting or reordering an entry breaks the chain where it happened. Checkpoints sign the chain's
head with an Ed25519 key kept outside the database (``PODIUM_AUDIT_KEY``, by default ``.podium/audit.key``):
someone who can write to the database but has not the key cannot rewrite the chain and re-sign it.

```python
report = await verify(client.store, public_key=trusted_hex)
report.ok, report.first_bad, report.problem
```
A payload erased for a data subject (``store.audit_erase``) keeps its hash: the chain still verifies.
What verification cannot see: entries removed from the end after the last checkpoint (checkpoint often).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigError
from ..storage.audit import (
    GENESIS,
    AuditCheckpoint,
    AuditDraft,
    AuditRecord,
)
from ..storage.base import Store

ACTIONS = (
    "run.started",
    "run.cancelled",
    "approval.decided",
    "policy.decision",
    "key.created",
    "key.revoked",
    "data.deleted",
)
"""The actions Podium records. Others may be recorded with ``Auditor.record``."""

CHECKPOINT_EVERY = 1000
"""A checkpoint is signed after this many new entries (and when an ``Auditor`` closes)."""


def _signing() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:  # pragma: no cover - a core install without the extra
        raise ConfigError(
            "signed audit checkpoints need the cryptography package: pip install podium[governance]"
        ) from None
    return ed25519


def load_key(path: Path, *, create: bool = True) -> Any:
    """The Ed25519 private key in ``path`` (hex of its 32-byte seed); created (mode 0600) if missing."""
    ed25519 = _signing()
    if path.exists():
        try:
            seed = bytes.fromhex(path.read_text().strip())
            return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        except ValueError as exc:
            raise ConfigError(f"{path} is not an audit signing key (hex of 32 bytes): {exc}") from None
    if not create:
        raise ConfigError(f"no audit signing key at {path}")
    from cryptography.hazmat.primitives import serialization

    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(seed.hex() + "\n")
    return key


def public_hex(key: Any) -> str:
    """The hex public key of a private key."""
    from cryptography.hazmat.primitives import serialization

    raw: bytes = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def _message(seq: int, head: str) -> bytes:
    return f"podium-audit:{seq}:{head}".encode()


class Auditor:
    """Records entries in a store's audit chain and signs checkpoints (when a key is configured)."""

    def __init__(
        self,
        store: Store,
        *,
        key_path: Path | None = None,
        checkpoint_every: int = CHECKPOINT_EVERY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.key_path = key_path
        self.checkpoint_every = checkpoint_every
        self.clock = clock
        self._since = 0  # entries appended by this auditor since its last checkpoint
        self._head: AuditRecord | None = None

    async def record(
        self, action: str, *, subject: str | None = None, actor: str | None = None, payload: Any = None
    ) -> AuditRecord:
        """Append one entry; returns it as stored."""
        (rec,) = await self.record_many([AuditDraft(action, self.clock(), actor, subject, payload)])
        return rec

    async def record_many(self, drafts: Sequence[AuditDraft]) -> list[AuditRecord]:
        records = await self.store.audit_append(drafts)
        if records:
            self._head = records[-1]
            self._since += len(records)
            if self.key_path is not None and self._since >= self.checkpoint_every:
                await self.checkpoint()
        return records

    async def checkpoint(self) -> AuditCheckpoint | None:
        """Sign the chain's head (None if the chain is empty or no key is configured)."""
        if self.key_path is None:
            return None
        head = await _head(self.store, self._head.seq - 1 if self._head else 0)
        if head is None:
            return None
        key = load_key(self.key_path)
        cp = AuditCheckpoint(
            seq=head.seq,
            hash=head.hash,
            at=self.clock(),
            public_key=public_hex(key),
            signature=key.sign(_message(head.seq, head.hash)).hex(),
        )
        await self.store.audit_checkpoint(cp)
        self._since = 0
        return cp

    async def close(self) -> None:
        """Sign a last checkpoint if entries were added since the previous one."""
        if self._since and self.key_path is not None:
            await self.checkpoint()


async def _head(store: Store, after: int = 0) -> AuditRecord | None:
    """The chain's last entry, scanning from ``after`` (the last entry this process knows of)."""
    last: AuditRecord | None = None
    while True:
        page = await store.audit_scan(after, limit=10_000)
        if not page:
            return last
        last = page[-1]
        after = last.seq


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What ``verify`` found. ``first_bad`` is the seq of the first entry that is wrong or missing."""

    entries: int
    checkpoints: int
    erased: int
    first_bad: int | None = None
    problem: str | None = None
    trusted_key: bool = False  # checkpoints were checked against a key given by the caller

    @property
    def ok(self) -> bool:
        return self.first_bad is None


async def verify(store: Store, *, public_key: str | None = None, page: int = 10_000) -> AuditReport:
    """Check the whole chain and its checkpoints; stops at the first problem.

    With ``public_key`` (hex), every checkpoint must be signed by it; without, each checkpoint is checked
    against the key stored beside it (which someone with write access could replace).
    """
    checkpoints = await store.audit_checkpoints()
    by_seq = {c.seq: c for c in checkpoints}
    ed25519 = _signing() if checkpoints else None
    n = erased = 0
    prev, expected = GENESIS, 1

    def report(bad: int | None = None, problem: str | None = None) -> AuditReport:
        return AuditReport(n, len(checkpoints), erased, bad, problem, public_key is not None)

    for cp in checkpoints:  # signatures first: cheap, and a forged one says the most
        key_hex = public_key or cp.public_key
        try:
            assert ed25519 is not None
            ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex)).verify(
                bytes.fromhex(cp.signature), _message(cp.seq, cp.hash)
            )
        except Exception:
            return report(cp.seq, f"the checkpoint at entry {cp.seq} has a bad signature")
    sha256 = hashlib.sha256
    after = 0
    while True:
        rows = await store.audit_scan(after, limit=page)
        if not rows:
            break
        for r in rows:  # the hot loop: entry_hash and payload_hash, inlined
            seq = r.seq
            if seq != expected:
                return report(expected, f"entry {expected} is missing (deleted, or the chain was renumbered)")
            if r.prev != prev:
                return report(
                    seq, f"entry {seq} does not follow entry {seq - 1}: inserted, reordered or edited"
                )
            line = (
                f"{prev}\n{seq}\n{r.at!r}\n{r.actor or ''}\n{r.action}\n{r.subject or ''}\n{r.payload_hash}"
            )
            if sha256(line.encode()).hexdigest() != r.hash:
                return report(seq, f"entry {seq} was edited: its hash does not match its fields")
            if r.payload is None:
                erased += 1
            elif sha256(r.payload.encode()).hexdigest() != r.payload_hash:
                return report(seq, f"entry {seq}'s payload was edited")
            if seq in by_seq and by_seq[seq].hash != r.hash:
                return report(seq, f"entry {seq} differs from the signed checkpoint at {seq}")
            prev, expected = r.hash, seq + 1
        n += len(rows)
        after = rows[-1].seq
    beyond = [c.seq for c in checkpoints if c.seq >= expected]
    if beyond:
        return report(
            expected, f"entries from {expected} on were deleted (a checkpoint covers entry {beyond[-1]})"
        )
    return report()


def entry_json(r: AuditRecord) -> dict[str, Any]:
    """An entry as a JSON object (the export format: one per line)."""
    return {
        "seq": r.seq,
        "at": r.at,
        "actor": r.actor,
        "action": r.action,
        "subject": r.subject,
        "payload": None if r.payload is None else json.loads(r.payload),
        "payload_hash": r.payload_hash,
        "prev": r.prev,
        "hash": r.hash,
    }


async def export(store: Store, out: IO[str], *, after: int = 0) -> int:
    """Write the chain as JSONL (one entry per line, in order); how many entries were written."""
    n = 0
    while True:
        rows = await store.audit_scan(after, limit=10_000)
        if not rows:
            return n
        for r in rows:
            out.write(json.dumps(entry_json(r), ensure_ascii=False) + "\n")
        n += len(rows)
        after = rows[-1].seq
