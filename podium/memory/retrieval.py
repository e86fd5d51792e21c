"""``ctx.retrieve``: hybrid search of a collection as one journaled step, with an optional rerank step.

The step's result (chunk ids, scores, ranks, texts and sources) is the journal entry, so every answer built
on it can be audited (which chunks did the model see?) and a replay sees exactly the same chunks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import UsageError
from ..policies.access import DEFAULT_TENANT
from .embedder import Embedder, settings_of
from .fusion import unknown
from .longterm import query_vector
from .names import scoped, tenant_of
from .store import store_for
from .types import Hit

if TYPE_CHECKING:
    from ..workflow.context import Context

Reranker = Callable[[str, list[str]], Any]
"""``rerank(query, texts) -> scores`` (sync or async): higher is better."""

MODES = ("hybrid", "vector", "text")


async def search_collection(
    collection: str,
    query: str,
    *,
    k: int = 5,
    filters: dict[str, Any] | None = None,
    mode: str = "hybrid",
    ctx: Context | None = None,
    settings: Settings | None = None,
    tenant: str | None = None,
) -> list[Hit]:
    """Search a collection now (no step): what ``ctx.retrieve`` runs inside its step. Outside a run,
    ``tenant`` names the tenant whose collection it is (default: ``default``)."""
    if mode not in MODES:
        raise UsageError(f"retrieval mode {mode!r}: use one of {', '.join(MODES)}")
    if not isinstance(query, str) or not query.strip():
        raise UsageError("retrieval needs a non-empty query")
    if k < 1:
        raise UsageError("k must be at least 1")
    settings = settings_of(ctx, settings)
    store = store_for(settings)
    space = f"collection:{scoped(collection, ctx, tenant=tenant)}"
    info = store.info(space)
    if info is None:
        tenant = tenant or tenant_of(ctx)
        if tenant != DEFAULT_TENANT:  # name the tenant's own collections only
            mine = [s.name for s in store.spaces("collection") if s.name.startswith(f"collection:{tenant}/")]
            raise unknown(f"collection:{collection}", [n.replace(f"{tenant}/", "", 1) for n in mine])
        store.require(space)  # raises UnknownCollectionError naming the known ones
    assert info is not None
    vector = None
    if mode != "text":
        embedder = Embedder.of(ctx, settings)
        if embedder.identity != info.model:
            from .errors import DimensionMismatchError

            raise DimensionMismatchError(
                f"collection {collection!r} was embedded with {info.model!r}, but the embedder is now "
                f"{embedder.identity!r}: re-ingest it, or set [memory] embed to the model it was built with"
            )
        vector = await query_vector(store, space, embedder, query)
    return store.search(space, vector=vector, text=query if mode != "vector" else None, k=k, filters=filters)


async def retrieve(
    ctx: Context,
    query: str,
    *,
    collection: str,
    k: int = 5,
    filters: dict[str, Any] | None = None,
    mode: str = "hybrid",
    rerank: Reranker | str | None = None,
    candidates: int | None = None,
) -> list[Hit]:
    """``ctx.retrieve``: step ``retrieve:<collection>`` (and ``rerank:<collection>`` when asked)."""
    want = max(k, candidates or (3 * k if rerank is not None else k))

    async def search() -> list[dict[str, Any]]:
        hits = await search_collection(collection, query, k=want, filters=filters, mode=mode, ctx=ctx)
        return [h.to_json() for h in hits]

    found: list[dict[str, Any]] = await ctx.step(f"retrieve:{collection}", search)
    hits = [Hit.from_json(h) for h in found]
    if rerank is None or not hits:
        return hits[:k]
    scorer = _reranker(ctx, rerank)

    async def reorder() -> list[dict[str, Any]]:
        scores = scorer(query, [h.text for h in hits])
        if inspect.isawaitable(scores):
            scores = await scores
        values = [float(s) for s in scores]
        if len(values) != len(hits):
            raise UsageError(f"the reranker gave {len(values)} scores for {len(hits)} texts")
        order = sorted(range(len(hits)), key=lambda i: (-values[i], i))[:k]
        return [{"id": hits[i].id, "score": round(values[i], 6)} for i in order]

    ranked: list[dict[str, Any]] = await ctx.step(f"rerank:{collection}", reorder)
    by_id = {h.id: h for h in hits}
    out = []
    for r in ranked:
        h = by_id[r["id"]]
        h.score = r["score"]
        out.append(h)
    return out


def _reranker(ctx: Context, rerank: Reranker | str) -> Reranker:
    """A callable reranker, or the name of an embedding model that re-scores by cosine similarity."""
    if callable(rerank):
        return rerank
    if not isinstance(rerank, str):
        raise UsageError(f"rerank must be a callable or the name of an embedding model, not {rerank!r}")
    embedder = Embedder.of(ctx, settings_of(ctx), rerank)

    async def by_similarity(query: str, texts: Sequence[str]) -> list[float]:
        q = (await embedder.embed([query], query=True))[0]
        m = await embedder.embed(list(texts))
        return [float(x) for x in m @ q]

    return by_similarity
