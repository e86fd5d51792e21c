"""What the memory layer stores and returns: items in, hits out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Item:
    """One thing to index: a memory or a document chunk, with its vector."""

    key: str
    """Unique within its space: a memory's key, or ``<document>#<n>`` for a chunk."""
    text: str
    vector: list[float] | Any
    """The embedding (a list of floats or a float32 numpy row)."""
    source: str = ""
    """Where it came from (a file path, a URL, ``memory``); results cite it."""
    doc: str | None = None
    """The document a chunk belongs to (ingestion replaces a document's chunks as a whole)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    expires_at: float | None = None


@dataclass(slots=True)
class Hit:
    """One search result. ``id`` is the chunk id (``<collection>:<key>``, e.g. ``kb:guide.md#3``) that
    citations and journals name."""

    id: str
    key: str
    text: str
    score: float
    source: str
    metadata: dict[str, Any]
    doc: str | None = None
    vector_rank: int | None = None
    """Rank (1 = best) in the vector search, or None if the vectors did not find it."""
    text_rank: int | None = None
    """Rank in the BM25 full-text search, or None."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "text": self.text,
            "score": self.score,
            "source": self.source,
            "metadata": self.metadata,
            "doc": self.doc,
            "vector_rank": self.vector_rank,
            "text_rank": self.text_rank,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Hit:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class SpaceInfo:
    """A collection or a memory namespace: its embedder, vector size and size."""

    name: str
    kind: str
    model: str
    dim: int
    count: int
    documents: int
