"""Memories, threads and collections are isolated per tenant: inside a run of tenant ``acme`` the memory
layer stores every name as ``acme/<name>``, so two tenants' flows using the same names never see each
other's data; the default tenant keeps its names as written (on SQLite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from memory_helpers import hash_settings

import podium
from podium.memory import Memory, close_stores, store_for
from podium.memory.ingest import ingest_flow
from podium.memory.retrieval import search_collection
from podium.memory.threads import Thread

pytest.importorskip("numpy", reason="the memory layer needs `pip install podium[memory]`")


@pytest.fixture(autouse=True)
def _fresh_stores() -> Any:
    yield
    close_stores()


@podium.flow(name="tenants.note")
async def note(ctx: podium.Context, text: str) -> dict[str, Any]:
    """Remember ``text`` and add it to thread ``t``; return what this tenant sees under those names."""
    mem = Memory("user:1", ctx=ctx)
    await mem.put(text, key=f"k-{ctx.tenant}")
    thread = Thread("t", ctx=ctx)
    await thread.add("user", text)
    return {
        "keys": await mem.keys(),
        "found": [h.text for h in await mem.search("secret", k=5)],
        "history": [m.content for m in await thread.history()],
    }


@podium.flow(name="tenants.ask")
async def ask(ctx: podium.Context, collection: str) -> list[str]:
    return [h.text for h in await ctx.retrieve("refund policy", collection=collection, k=3)]


async def test_two_tenants_using_the_same_names_never_see_each_others_memories(tmp_path: Path) -> None:
    settings = hash_settings(tmp_path / "podium.db")
    async with podium.Client(settings) as client:
        out = {}
        for tenant, text in [("acme", "acme secret A"), ("globex", "globex secret G"), ("default", "plain")]:
            out[tenant] = await (await client.start(note, text, tenant=tenant)).result(timeout=30)
    assert out["acme"] == {"keys": ["k-acme"], "found": ["acme secret A"], "history": ["acme secret A"]}
    g = "globex secret G"
    assert out["globex"] == {"keys": ["k-globex"], "found": [g], "history": [g]}
    assert out["default"]["keys"] == ["k-default"] and out["default"]["history"] == ["plain"]
    store = store_for(settings)
    names = {s.name for s in store.spaces("memory")}
    assert names == {"memory:user:1", "memory:acme/user:1", "memory:globex/user:1"}  # default: as written
    assert sorted(store.threads()) == ["acme/t", "globex/t", "t"]
    # Outside a run the names are as written: the default tenant's data.
    assert await Memory("user:1", settings=settings).keys() == ["k-default"]
    assert [m.content for m in await Thread("t", settings=settings).history()] == ["plain"]
    # ... unless a platform tool names the tenant; a run cannot name another tenant than its own.
    assert await Memory("user:1", settings=settings, tenant="acme").keys() == ["k-acme"]
    history = await Thread("t", settings=settings, tenant="globex").history()
    assert [m.content for m in history] == ["globex secret G"]
    async with podium.Client(settings) as client:
        handle = await client.start(reach, "globex", tenant="acme")
        with pytest.raises(podium.RunFailedError, match="tenant 'acme' cannot reach tenant 'globex'"):
            await handle.result(timeout=30)
    with pytest.raises(podium.ConfigError, match="invalid tenant"):
        Memory("user:1", settings=settings, tenant="a/b")


@podium.flow(name="tenants.reach")
async def reach(ctx: podium.Context, tenant: str) -> list[str]:
    return await Memory("user:1", ctx=ctx, tenant=tenant).keys()


async def test_a_tenants_collection_is_invisible_to_other_tenants(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text("# Refunds\n\nThe acme refund policy: refunds within 5 days.\n")
    settings = hash_settings(tmp_path / "podium.db")
    async with podium.Client(settings) as client:
        job = {"path": str(docs), "collection": "kb", "base": str(tmp_path)}
        await (await client.start(ingest_flow, job, tenant="acme")).result(timeout=60)
        assert [s.name for s in store_for(settings).spaces("collection")] == ["collection:acme/kb"]

        found = await (await client.start(ask, "kb", tenant="acme")).result(timeout=30)
        assert any("acme refund policy" in t for t in found)
        hits = await search_collection("kb", "refund policy", settings=settings, tenant="acme")
        assert any("acme refund policy" in h.text for h in hits)
        # Another tenant asking for the same name, or naming its way in, finds no such collection, and the
        # error names none of acme's collections.
        for tenant, name in [("globex", "kb"), ("globex", "acme/kb"), ("default", "kb")]:
            handle = await client.start(ask, name, tenant=tenant)
            with pytest.raises(podium.RunFailedError, match=r"unknown collection") as caught:
                await handle.result(timeout=30)
            if tenant != "default":
                assert "known: none yet" in str(caught.value)


@podium.flow(name="tenants.prefs")
async def prefs(ctx: podium.Context, text: str) -> None:
    assert ctx.subject is not None
    await Memory(f"{ctx.subject}/prefs", ctx=ctx).put(text, key="p")
    await Thread(ctx.subject, ctx=ctx).add("user", text)


async def test_erasing_a_subject_erases_its_memories_within_its_runs_tenants(tmp_path: Path) -> None:
    settings = hash_settings(tmp_path / "podium.db")
    async with podium.Client(settings) as client:
        await (await client.start(prefs, "likes tea", tenant="acme", subject="u-7")).result(timeout=30)
        await (await client.start(prefs, "likes coffee", tenant="acme", subject="u-8")).result(timeout=30)
        report = await client.erase_subject("u-7")
    assert report.spaces == ["memory:acme/u-7/prefs"] and report.threads == ["acme/u-7"]
    store = store_for(settings)
    assert [s.name for s in store.spaces("memory")] == ["memory:acme/u-8/prefs"]
    assert store.threads() == ["acme/u-8"]
