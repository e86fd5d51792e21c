"""Embedding for the memory layer: the configured embedding model, called in batches inside steps.

Vectors are not journaled (hundreds of floats per text would bloat the journal); the rows they go into are
written inside the same step, and the step's small result (ids, counts) is what the journal keeps.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import UsageError
from .store import memory_config
from .vectors import as_matrix

if TYPE_CHECKING:
    from ..workflow.context import Context

BATCH = 32
"""Texts per call to the embedding model."""


def settings_of(ctx: Context | None, settings: Settings | None = None) -> Settings:
    """The settings in force: given, the worker's (inside a flow), or from the environment."""
    if settings is not None:
        return settings
    if ctx is not None:  # the engine's execution knows its worker's settings
        driver = ctx._driver
        found = getattr(driver, "settings", None) or getattr(
            getattr(driver, "worker", None), "settings", None
        )
        if isinstance(found, Settings):
            return found
    return Settings.from_env()


def models_of(ctx: Context | None, settings: Settings) -> Any:
    if ctx is not None:
        return ctx._driver.models
    from ..models.registry import Models

    return Models.from_config(settings.config)


class Embedder:
    """One embedding model: ``identity`` (recorded with each collection) and batched ``embed``."""

    def __init__(self, models: Any, name: str) -> None:
        self.name = name
        self.spec = models.spec(name)
        if self.spec.kind != "embedding":
            raise UsageError(f'model {name!r} is a chat model; the memory layer needs kind = "embedding"')
        self.provider = models.provider(self.spec)
        self.identity = f"{self.spec.provider}:{self.spec.model}"

    @classmethod
    def of(cls, ctx: Context | None, settings: Settings, name: str | None = None) -> Embedder:
        model = name or str(memory_config(settings).get("embed", "embed"))
        return cls(models_of(ctx, settings), model)

    async def embed(self, texts: list[str], *, query: bool = False, batch: int = BATCH) -> Any:
        """Unit-length float32 rows, one per text."""
        import numpy

        if not texts:
            return numpy.zeros((0, 0), dtype=numpy.float32)
        parts = []
        for i in range(0, len(texts), batch):
            result = await self.provider.embed(self.spec, texts[i : i + batch], query=query)
            parts.append(as_matrix(result.vectors))
        return numpy.concatenate(parts) if len(parts) > 1 else parts[0]

    def cache_key(self, text: str) -> str:
        return "q:" + hashlib.sha256(f"{self.identity}\0{text}".encode()).hexdigest()
