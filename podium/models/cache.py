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


class ResponseCache:
    """Exact-match cache of completions, persistent in the Podium store; counts hits and misses."""

    def __init__(self, store: CacheStore) -> None:
        self.store = store
        self.hits = 0
        self.misses = 0

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
