"""Memory errors: part of Podium's one tree (``UsageError`` subclasses: a caller's mistake; nothing
changed)."""

from __future__ import annotations

from ..errors import UsageError


class UnknownCollectionError(UsageError):
    """No collection (or memory namespace) has that name."""


class DimensionMismatchError(UsageError):
    """The embedder gives vectors of another size (or is another model) than the collection holds."""


class IngestError(UsageError):
    """A document cannot be ingested (empty, binary, unsupported type, unreadable)."""
