"""One module per model API. Each provider turns a ``ModelRequest`` into a ``Completion``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from ..spec import ModelSpec
from ..types import Completion, Embedding, ModelRequest, Usage, estimate_tokens


class ChatProvider(Protocol):
    """Chat completions (text, structured output, tool calls)."""

    async def complete(self, spec: ModelSpec, request: ModelRequest) -> Completion: ...

    def stream(self, spec: ModelSpec, request: ModelRequest) -> AsyncIterator[str | Usage]:
        """Text deltas as they are generated, optionally followed by the provider's ``Usage``."""
        ...


class EmbeddingProvider(Protocol):
    """Text embeddings."""

    async def embed(self, spec: ModelSpec, texts: list[str], *, query: bool = False) -> Embedding: ...


def priced(spec: ModelSpec, started: float, *, provider: str, usage: Usage, **fields: Any) -> Completion:
    """A ``Completion`` with its cost (from ``spec``'s prices) and latency (since ``started``) filled in."""
    return Completion(
        model=spec.model,
        provider=provider,
        usage=usage,
        cost=spec.cost(usage.input_tokens, usage.output_tokens),
        latency=time.perf_counter() - started,
        **fields,
    )


def embedding(
    spec: ModelSpec,
    started: float,
    *,
    provider: str,
    vectors: list[list[float]],
    texts: list[str],
    usage: Usage | None = None,
) -> Embedding:
    """An ``Embedding`` priced from ``usage`` (or from estimated tokens of ``texts``) and timed."""
    if usage is None:
        usage = Usage(input_tokens=sum(estimate_tokens(t) for t in texts), estimated=True)
    return Embedding(
        model=spec.model,
        provider=provider,
        vectors=vectors,
        usage=usage,
        cost=spec.cost(usage.input_tokens, 0),
        latency=time.perf_counter() - started,
    )
