"""A plain Python callable, or a scikit-learn style estimator, as a model."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..errors import ModelError
from ..spec import ModelSpec
from ..types import Completion, Embedding, ModelRequest, Usage, estimate_tokens
from . import embedding, priced


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):
        return await fn(*args)
    return await asyncio.to_thread(fn, *args)


class FunctionProvider:
    """Calls ``target(request) -> str | Completion`` for chat, ``target(texts) -> vectors`` for embeddings.

    An object with ``predict`` (a fitted scikit-learn classifier or regressor) is called as
    ``predict([last user message])[0]``; its answer becomes the completion's text.
    """

    def __init__(self, target: Any) -> None:
        self.target = target

    async def complete(self, spec: ModelSpec, request: ModelRequest) -> Completion:
        started = time.perf_counter()
        prompt = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        try:
            if hasattr(self.target, "predict"):
                out: Any = (await asyncio.to_thread(self.target.predict, [prompt]))[0]
                out = out.item() if hasattr(out, "item") else out
            else:
                out = await _call(self.target, request)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(
                f"model {spec.name!r} ({spec.model}) raised {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(out, Completion):
            return out
        text = out if isinstance(out, str) else str(out)
        u = Usage(
            input_tokens=sum(estimate_tokens(m.content) for m in request.messages),
            output_tokens=estimate_tokens(text),
            estimated=True,
        )
        return priced(spec, started, provider="function", usage=u, text=text, finish_reason="stop")

    async def stream(self, spec: ModelSpec, request: ModelRequest) -> AsyncIterator[str]:
        completion = await self.complete(spec, request)
        for word in completion.text.split(" "):
            yield word + " "

    async def embed(self, spec: ModelSpec, texts: list[str], *, query: bool = False) -> Embedding:
        started = time.perf_counter()
        try:
            rows = await _call(self.target, texts)
            vectors = [[float(x) for x in row] for row in rows]
        except Exception as exc:
            raise ModelError(f"embedding model {spec.name!r} raised {type(exc).__name__}: {exc}") from exc
        return embedding(spec, started, provider="function", vectors=vectors, texts=texts)
