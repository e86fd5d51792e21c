"""``Memory``: long-term, namespaced memories (per user, per tenant, per agent) with semantic search.

```python
@podium.flow
async def assistant(ctx: podium.Context, msg: dict) -> str:
    mem = Memory(f"user:{msg['user']}", ctx=ctx)
    await mem.put("prefers answers in German", metadata={"kind": "preference"}, ttl="90d")
    facts = await mem.search(msg["text"], k=3, filters={"kind": "preference"})
    ...
```
Inside a flow every call is a journaled step (``memory.put``, ``memory.search``, ...): a replay returns the
journaled keys and hits. Outside a flow (``Memory("user:42")``) the calls run directly.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..config import Settings
from ..errors import UsageError
from ..types import Duration, parse_duration
from .embedder import Embedder, settings_of
from .names import scoped
from .store import VectorStore, store_for
from .types import Hit, Item

if TYPE_CHECKING:
    from ..workflow.context import Context

T = TypeVar("T")


class Memory:
    """The memories of one namespace. ``Memory("user:42", ctx=ctx)`` inside a flow: within the run's tenant.
    Outside a run, ``tenant="acme"`` reaches that tenant's namespace (default: the ``default`` tenant's)."""

    def __init__(
        self,
        namespace: str,
        *,
        ctx: Context | None = None,
        settings: Settings | None = None,
        model: str | None = None,
        tenant: str | None = None,
    ) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise UsageError("a memory namespace needs a non-empty name")
        self.namespace = namespace
        self.space = f"memory:{scoped(namespace, ctx, tenant=tenant)}"
        """The store's space: ``memory:<namespace>`` within the run's tenant (``podium.memory.names``)."""
        self._ctx = ctx
        self._settings = settings_of(ctx, settings)
        self._model = model
        self._embedder: Embedder | None = None

    @property
    def store(self) -> VectorStore:
        return store_for(self._settings)

    def _embed_with(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder.of(self._ctx, self._settings, self._model)
        return self._embedder

    async def _run(self, name: str, fn: Callable[[], Awaitable[T]]) -> T:
        if self._ctx is None:
            return await fn()
        result: T = await self._ctx.step(name, fn)
        return result

    async def put(
        self,
        text: str,
        *,
        key: str | None = None,
        metadata: dict[str, Any] | None = None,
        ttl: Duration | None = None,
    ) -> str:
        """Store ``text`` (replacing the memory with the same ``key``); returns its key. ``ttl`` (``"30d"``,
        seconds) makes it expire: expired memories are never returned and are purged on later writes."""
        if not isinstance(text, str) or not text.strip():
            raise UsageError("a memory needs non-empty text")
        seconds = None if ttl is None else parse_duration(ttl)
        if key is None:
            key = self._ctx.uuid().hex if self._ctx is not None else uuid.uuid4().hex
        chosen = key
        meta = dict(metadata or {})

        async def put() -> str:
            embedder = self._embed_with()
            vector = (await embedder.embed([text]))[0]
            store = self.store
            store.ensure_space(self.space, kind="memory", model=embedder.identity, dim=len(vector))
            now = time.time()
            expires = None if seconds is None else now + seconds
            store.upsert(
                self.space,
                [
                    Item(
                        key=chosen,
                        text=text,
                        vector=vector,
                        source="memory",
                        metadata=meta,
                        expires_at=expires,
                    )
                ],
                now=now,
            )
            store.purge_expired(now=now)
            return chosen

        return await self._run("memory.put", put)

    async def get(self, key: str) -> Hit | None:
        """The memory stored under ``key`` (None if absent or expired)."""

        async def get() -> dict[str, Any] | None:
            hit = self.store.get(self.space, key)
            return None if hit is None else hit.to_json()

        data = await self._run("memory.get", get)
        return None if data is None else Hit.from_json(data)

    async def search(
        self, query: str, *, k: int = 5, filters: dict[str, Any] | None = None, hybrid: bool = True
    ) -> list[Hit]:
        """The ``k`` memories nearest to ``query`` (semantic; with ``hybrid`` also fused with BM25), among
        those matching ``filters`` (see ``podium.memory.filter_sql``)."""

        async def search() -> list[dict[str, Any]]:
            store = self.store
            if store.info(self.space) is None:
                return []
            vector = await query_vector(store, self.space, self._embed_with(), query)
            hits = store.search(
                self.space, vector=vector, text=query if hybrid else None, k=k, filters=filters
            )
            return [h.to_json() for h in hits]

        return [Hit.from_json(h) for h in await self._run("memory.search", search)]

    async def delete(self, key: str) -> bool:
        """Forget one memory; True if it existed."""

        async def delete() -> bool:
            return self.store.delete(self.space, [key]) > 0

        return await self._run("memory.delete", delete)

    async def keys(self) -> list[str]:
        """The keys of the namespace's live memories, oldest first."""

        async def keys() -> list[str]:
            return self.store.keys(self.space)

        return await self._run("memory.keys", keys)

    async def clear(self) -> bool:
        """Delete the whole namespace: rows, vectors, full-text entries, cached query embeddings and the
        saved index. True if it existed."""

        async def clear() -> bool:
            return self.store.delete_space(self.space)

        return await self._run("memory.clear", clear)


async def query_vector(store: VectorStore, space: str, embedder: Embedder, text: str) -> Any:
    """The query's embedding, from the space's cache or the model (then cached in the space)."""
    key = embedder.cache_key(text)
    cached = store.cache_get(space, key)
    if cached is not None:
        return cached
    vector = (await embedder.embed([text], query=True))[0]
    store.cache_put(space, key, vector)
    return vector
