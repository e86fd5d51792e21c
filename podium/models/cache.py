"""The response cache: an identical request to the same deterministic model is answered from the store.

On by default when the effective temperature is 0 (the embedded models default to 0); ``cache = false``
in a model's table turns it off. The key covers provider, endpoint, model and the whole request (messages,
schema, tools, limits), so a different prompt, schema or model never hits. A hit is still a journaled step
(``cached = true``, cost 0), so a run's journal shows where every answer came from.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Protocol

from .spec import ModelSpec
from .types import Completion, ModelRequest


class CacheStore(Protocol):
    async def cache_get(self, key: str) -> Any: ...

    async def cache_put(self, key: str, value: Any, *, now: float) -> None: ...

    async def cache_scan(self, prefix: str, *, limit: int = 10_000) -> list[tuple[str, Any]]: ...


class ResponseCache:
    """Exact-match cache of completions, persistent in the Podium store; counts hits and misses."""

    def __init__(self, store: CacheStore) -> None:
        self.store = store
        self.hits = 0
        self.misses = 0
        self.semantic = SemanticCache(store)

    @staticmethod
    def applies(spec: ModelSpec, request: ModelRequest) -> bool:
        if not spec.extra.get("cache", True):
            return False
        temperature = request.temperature if request.temperature is not None else spec.temperature
        if temperature is None:
            temperature = 0.0 if spec.provider == "local" else None
        return temperature == 0

    @staticmethod
    def key(spec: ModelSpec, request: ModelRequest) -> str:
        raw = json.dumps(
            [spec.provider, spec.base_url, spec.model, request.model_dump(mode="json")],
            sort_keys=True,
            separators=(",", ":"),
        )
        return "model:" + hashlib.sha256(raw.encode()).hexdigest()

    async def get(self, key: str) -> Completion | None:
        value = await self.store.cache_get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        completion = Completion.model_validate(value)
        completion.cached = True
        completion.cost = 0.0
        completion.latency = 0.0
        return completion

    async def put(self, key: str, completion: Completion) -> None:
        await self.store.cache_put(key, completion.model_dump(mode="json"), now=time.time())


class SemanticCache:
    """Answers a request from a stored completion of a *similar* earlier request of the same model.

    Enabled per model with ``semantic_cache = { threshold = 0.95, embed = "embed" }``: the prompt (all
    messages) is embedded, and a stored completion whose prompt has cosine similarity at or above the
    threshold is returned (journaled with ``cached = true``). Entries live in the Podium store.
    """

    def __init__(self, store: CacheStore) -> None:
        self.store = store
        self.hits = 0
        self.misses = 0

    @staticmethod
    def settings(spec: ModelSpec) -> tuple[float, str] | None:
        raw = spec.extra.get("semantic_cache")
        if not isinstance(raw, dict):
            return None
        return float(raw.get("threshold", 0.95)), str(raw.get("embed", "embed"))

    @staticmethod
    def prefix(spec: ModelSpec) -> str:
        return f"sem:{spec.provider}:{spec.base_url}:{spec.model}:"

    @staticmethod
    def text(request: ModelRequest) -> str:
        return "\n".join(f"{m.role}: {m.content}" for m in request.messages)

    async def get(self, spec: ModelSpec, vector: list[float], threshold: float) -> Completion | None:
        best, best_score = None, threshold
        for _, value in await self.store.cache_scan(self.prefix(spec)):
            score = sum(a * b for a, b in zip(value["vector"], vector, strict=False))
            if score >= best_score:
                best, best_score = value, score
        if best is None:
            self.misses += 1
            return None
        self.hits += 1
        completion = Completion.model_validate(best["completion"])
        completion.cached = True
        completion.cost = 0.0
        completion.latency = 0.0
        return completion

    async def put(
        self, spec: ModelSpec, request: ModelRequest, vector: list[float], completion: Completion
    ) -> None:
        key = self.prefix(spec) + ResponseCache.key(spec, request)
        value = {"vector": vector, "completion": completion.model_dump(mode="json")}
        await self.store.cache_put(key, value, now=time.time())
