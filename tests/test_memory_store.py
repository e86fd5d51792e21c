"""The memory stores' contract, on SQLite and on PostgreSQL (pgvector): hybrid search (BM25 + vectors, RRF),
filters, TTL, the ANN index (usearch beside SQLite and its persistence; HNSW in PostgreSQL), deleting a
space, and clear errors. Mechanics only: vectors come from the hashing embedder or are made here."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from memory_helpers import open_store, sql_rows

from podium.errors import ConfigError
from podium.memory import (
    DimensionMismatchError,
    Item,
    SQLiteMemoryStore,
    UnknownCollectionError,
    VectorStore,
    filter_sql,
    fts_query,
)
from podium.memory.query import filter_pg
from podium.testing.embedding import hash_vector

np = pytest.importorskip("numpy", reason="the memory layer needs `pip install podium[memory]`")

DOCS = {
    "tea": ("Green tea is brewed at eighty degrees for two minutes.", {"topic": "drinks", "year": 2021}),
    "coffee": (
        "Espresso is coffee brewed by forcing hot water through ground beans.",
        {"topic": "drinks", "year": 2019},
    ),
    "bread": ("Sourdough bread rises slowly with wild yeast.", {"topic": "baking", "year": 2022}),
    "cake": ("A sponge cake needs eggs, flour and sugar.", {"topic": "baking", "year": 2018}),
    "harbour": ("The harbour office opens at nine and closes at five.", {"topic": "places", "year": 2020}),
}


POSTGRES_ONLY = pytest.mark.parametrize("memory_url", ["postgres"], indirect=True)
"""A test of pgvector's own machinery (SQLite's counterpart is a test of its own)."""


def items() -> list[Item]:
    return [
        Item(key=k, text=t, vector=hash_vector(t), source=f"docs/{k}.md", doc=f"docs/{k}.md", metadata=m)
        for k, (t, m) in DOCS.items()
    ]


@pytest.fixture
def store(memory_url: str) -> Iterator[VectorStore]:
    s = open_store(memory_url)
    s.ensure_space("collection:kb", kind="collection", model="test:hash", dim=64)
    s.upsert("collection:kb", items())
    yield s
    s.close()


def test_hybrid_search_fuses_bm25_and_vectors_and_cites_chunks(store: VectorStore) -> None:
    hits = store.search(
        "collection:kb", vector=hash_vector("how is green tea brewed"), text="green tea brewed", k=3
    )
    assert hits[0].key == "tea"
    assert hits[0].id == "kb:tea" and hits[0].source == "docs/tea.md"
    assert hits[0].vector_rank == 1 and hits[0].text_rank == 1
    assert hits[0].score == pytest.approx(2 / 61, abs=1e-6)  # reciprocal rank fusion: 1/(60+1) twice
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    text_only = store.search("collection:kb", text="sourdough yeast", k=2)
    assert [h.key for h in text_only][:1] == ["bread"] and text_only[0].vector_rank is None
    vector_only = store.search("collection:kb", vector=hash_vector("sponge cake eggs"), k=1)
    assert vector_only[0].key == "cake" and vector_only[0].text_rank is None


def test_metadata_filters(store: VectorStore) -> None:
    q = {"vector": hash_vector("brewed"), "text": "brewed", "k": 5}
    assert {h.key for h in store.search("collection:kb", **q, filters={"topic": "drinks"})} == {
        "tea",
        "coffee",
    }
    assert {h.key for h in store.search("collection:kb", **q, filters={"topic": ["baking", "places"]})} <= {
        "bread",
        "cake",
        "harbour",
    }
    recent = store.search("collection:kb", vector=hash_vector("x"), k=5, filters={"year": {"$gte": 2021}})
    assert {h.key for h in recent} == {"tea", "bread"}
    by_source = store.search(
        "collection:kb", vector=hash_vector("x"), k=5, filters={"source": "docs/cake.md"}
    )
    assert [h.key for h in by_source] == ["cake"]
    assert store.search("collection:kb", **q, filters={"topic": []}) == []
    with pytest.raises(ConfigError, match="unknown operator"):
        filter_sql({"year": {"$regex": "x"}})
    with pytest.raises(ConfigError, match="unknown operator"):
        filter_pg({"year": {"$regex": "x"}})
    with pytest.raises(ConfigError, match="filter values must be"):
        store.search("collection:kb", text="tea", filters={"year": {"$gt": [1]}})
    assert [h.key for h in store.search("collection:kb", text="tea", filters={"year": {"$gt": "2000"}})] == []


def test_upsert_replaces_delete_forgets_and_ttl_expires(store: VectorStore) -> None:
    store.upsert(
        "collection:kb",
        [Item(key="tea", text="Black tea steeps in boiling water.", vector=hash_vector("black tea"))],
    )
    hit = store.get("collection:kb", "tea")
    assert hit is not None and hit.text.startswith("Black tea")
    assert store.search("collection:kb", text="eighty degrees", k=5) == []  # the old text is gone from BM25
    assert store.delete("collection:kb", ["tea", "nope"]) == 1
    assert store.get("collection:kb", "tea") is None
    assert "tea" not in {h.key for h in store.search("collection:kb", vector=hash_vector("black tea"), k=5)}
    store.upsert(
        "collection:kb",
        [Item(key="soon", text="ephemeral zebra", vector=hash_vector("zebra"), expires_at=100.0)],
    )
    assert store.get("collection:kb", "soon", now=99.0) is not None
    assert store.get("collection:kb", "soon", now=101.0) is None
    found = store.search("collection:kb", vector=hash_vector("zebra"), text="zebra", k=5, now=101.0)
    assert "soon" not in {h.key for h in found}
    assert store.purge_expired(now=101.0) == 1


def test_unknown_collection_and_dimension_mismatch_are_clear_errors(store: VectorStore) -> None:
    with pytest.raises(UnknownCollectionError, match=r"unknown collection 'nope' \(known: kb\)"):
        store.search("collection:nope", text="x")
    with pytest.raises(DimensionMismatchError, match=r"holds 64-d vectors of 'test:hash'.*32-d"):
        store.ensure_space("collection:kb", kind="collection", model="test:hash", dim=32)
    with pytest.raises(DimensionMismatchError, match="expected 64-d vectors, got 3-d"):
        store.upsert("collection:kb", [Item(key="bad", text="bad", vector=[1.0, 0.0, 0.0])])
    assert store.get("collection:kb", "bad") is None  # nothing half-written
    assert store.info("collection:kb").count == len(DOCS)  # type: ignore[union-attr]


def test_fts_query_quotes_words_and_ignores_operators() -> None:
    assert fts_query('what is "NEAR" AND tea?') == '"near" OR "tea"'
    assert fts_query("the of") == '"the" OR "of"'
    assert fts_query("  ?! ") is None


def _random_space(store: VectorStore, n: int, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mat = rng.standard_normal((n, dim)).astype(np.float32)
    mat /= np.linalg.norm(mat, axis=1, keepdims=True)
    store.ensure_space("collection:big", kind="collection", model="test:random", dim=dim)
    store.upsert("collection:big", [Item(key=str(i), text=f"row {i}", vector=mat[i]) for i in range(n)])
    return mat, rng.standard_normal((20, dim)).astype(np.float32)


def test_ann_index_agrees_with_exact_search_and_is_reloaded_by_another_store(tmp_path: Path) -> None:
    pytest.importorskip("usearch")
    path = tmp_path / "podium.db"
    exact_store = SQLiteMemoryStore(path, ann_min=10**9)
    mat, queries = _random_space(exact_store, 600)
    ann_store = SQLiteMemoryStore(path, ann_min=100)
    recall = []
    for q in queries:
        want = [h.key for h in exact_store.search("collection:big", vector=q, k=10)]
        got = [h.key for h in ann_store.search("collection:big", vector=q, k=10)]
        recall.append(len(set(want) & set(got)) / 10)
    assert ann_store.index("collection:big").mode == "ann"
    assert exact_store.index("collection:big").mode == "exact"
    assert sum(recall) / len(recall) >= 0.95
    # writes by another connection (another process) are seen: the index syncs from the rows
    exact_store.delete("collection:big", ["0", "1"])
    exact_store.upsert("collection:big", [Item(key="new", text="new row", vector=mat[0])])
    top = ann_store.search("collection:big", vector=mat[0], k=3)
    assert top[0].key == "new" and "0" not in {h.key for h in top}
    ann_store.close()  # saves the index beside the database
    assert list((tmp_path / "podium.db.vectors").glob("*.usearch"))
    again = SQLiteMemoryStore(path, ann_min=100)
    assert again.search("collection:big", vector=mat[5], k=1)[0].key == "5"
    assert again.index("collection:big").mode == "ann"
    again.close()
    exact_store.close()


def test_filtered_search_on_a_large_space_uses_the_matching_rows(memory_url: str) -> None:
    store = open_store(memory_url, ann_min=100)
    mat, _ = _random_space(store, 300)
    store.upsert("collection:big", [Item(key="tagged", text="tagged", vector=-mat[7], metadata={"t": 1})])
    hits = store.search("collection:big", vector=mat[7], k=3, filters={"t": 1})
    assert [h.key for h in hits] == ["tagged"]  # far from the query, but the only row the filter allows
    store.close()


def test_deleting_a_space_leaves_no_trace_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "podium.db"
    store = SQLiteMemoryStore(path, ann_min=10)
    store.ensure_space("memory:user:7", kind="memory", model="test:hash", dim=64)
    secret = "zanzibarqux"
    store.upsert(
        "memory:user:7",
        [
            Item(key=f"k{i}", text=f"{secret} number {i}", vector=hash_vector(f"{secret} {i}"))
            for i in range(30)
        ],
    )
    store.cache_put("memory:user:7", "q:1", np.ones(64, dtype=np.float32))
    assert store.search("memory:user:7", vector=hash_vector(secret), text=secret, k=3)
    store.flush()
    assert list((tmp_path / "podium.db.vectors").glob("*.usearch")) or not _has_usearch()
    assert store.delete_space("memory:user:7")
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with pytest.raises(UnknownCollectionError):
        store.search("memory:user:7", text=secret)
    db = sqlite3.connect(path)
    for table in ("mem_items", "mem_cache", "mem_docs", "mem_spaces"):
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE name LIKE 'mem_fts_%'").fetchone()[0] == 0
    db.close()
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert secret.encode() not in raw
    assert not list((tmp_path / "podium.db.vectors").glob("*.usearch"))


@POSTGRES_ONLY
def test_hnsw_index_agrees_with_exact_search_and_sees_every_write(memory_url: str) -> None:
    exact_store = open_store(memory_url, ann_min=10**9)
    mat, queries = _random_space(exact_store, 600)
    ann_store = open_store(memory_url, ann_min=100)
    recall = []
    for q in queries:
        want = [h.key for h in exact_store.search("collection:big", vector=q, k=10)]
        got = [h.key for h in ann_store.search("collection:big", vector=q, k=10)]
        recall.append(len(set(want) & set(got)) / 10)
    assert sum(recall) / len(recall) >= 0.95
    exact_store.delete("collection:big", ["0", "1"])
    exact_store.upsert("collection:big", [Item(key="new", text="new row", vector=mat[0])])
    top = ann_store.search("collection:big", vector=mat[0], k=3)
    assert top[0].key == "new" and "0" not in {h.key for h in top}
    assert _hnsw_scans(memory_url, ann_store, "collection:big") > 0  # the space's own HNSW index
    assert _hnsw_scans(memory_url, exact_store, "collection:big") == 0  # under ann_min: exact
    ann_store.close()
    exact_store.close()


@POSTGRES_ONLY
def test_filtered_search_walks_the_hnsw_index_until_enough_rows_pass(memory_url: str) -> None:
    exact_store = open_store(memory_url, ann_min=10**9)
    rng = np.random.default_rng(3)
    mat = rng.standard_normal((600, 32)).astype(np.float32)
    exact_store.ensure_space("collection:f", kind="collection", model="test:random", dim=32)
    exact_store.upsert(
        "collection:f",
        [Item(key=str(i), text=f"row {i}", vector=mat[i], metadata={"odd": i % 2}) for i in range(600)],
    )
    ann_store = open_store(memory_url, ann_min=100)
    recall = []
    for q in rng.standard_normal((10, 32)).astype(np.float32):
        want = [h.key for h in exact_store.search("collection:f", vector=q, k=10, filters={"odd": 1})]
        got = [h.key for h in ann_store.search("collection:f", vector=q, k=10, filters={"odd": 1})]
        assert len(got) == 10 and all(int(key) % 2 == 1 for key in got)
        recall.append(len(set(want) & set(got)) / 10)
    assert sum(recall) / len(recall) >= 0.9
    assert _hnsw_scans(memory_url, ann_store, "collection:f") > 0
    ann_store.close()
    exact_store.close()


@POSTGRES_ONLY
def test_deleting_a_space_leaves_no_row_vector_or_index_in_postgres(memory_url: str) -> None:
    store = open_store(memory_url, ann_min=10)
    store.ensure_space("memory:user:7", kind="memory", model="test:hash", dim=64)
    store.ensure_space("memory:user:8", kind="memory", model="test:hash", dim=64)
    secret = "zanzibarqux"
    store.upsert(
        "memory:user:7",
        [
            Item(key=f"k{i}", text=f"{secret} number {i}", vector=hash_vector(f"{secret} {i}"))
            for i in range(30)
        ],
    )
    store.upsert("memory:user:8", [Item(key="other", text="other text", vector=hash_vector("other"))])
    store.cache_put("memory:user:7", "q:1", np.ones(64, dtype=np.float32))
    assert store.search("memory:user:7", vector=hash_vector(secret), text=secret, k=3)
    sid = store.require("memory:user:7")[0]
    assert store.delete_space("memory:user:7")
    with pytest.raises(UnknownCollectionError):
        store.search("memory:user:7", text=secret)
    for table in ("mem_items", "mem_cache", "mem_docs", "mem_spaces"):
        assert sql_rows(memory_url, f"SELECT count(*) FROM {table} WHERE {_space_col(table)} = {sid}") == [
            (0,)
        ]
    assert sql_rows(memory_url, f"SELECT count(*) FROM mem_items WHERE text LIKE '%{secret}%'") == [(0,)]
    indexes = [
        r[0]
        for r in sql_rows(
            memory_url,
            "SELECT indexname FROM pg_indexes WHERE tablename = 'mem_items' "
            "AND schemaname = current_schema()",
        )
    ]
    assert f"mem_items_hnsw_{sid}" not in indexes
    assert f"mem_items_hnsw_{store.require('memory:user:8')[0]}" in indexes  # the other space keeps its own
    assert [h.key for h in store.search("memory:user:8", vector=hash_vector("other"), text="other")] == [
        "other"
    ]
    store.close()


def _hnsw_scans(url: str, store: VectorStore, space: str) -> int:
    """How many more scans of the space's HNSW index a vector search by ``store`` makes (from the server's
    statistics)."""
    index = f"mem_items_hnsw_{store.require(space)[0]}"
    query = (
        "SELECT idx_scan FROM pg_stat_user_indexes "
        f"WHERE indexrelname = '{index}' AND schemaname = current_schema()"
    )
    conn = store.conn  # type: ignore[attr-defined]
    conn.execute("SELECT pg_stat_force_next_flush()")
    before = sql_rows(url, query)[0][0]
    store.search(space, vector=[1.0] * 32, k=5)
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT 1")  # the flush happens when the session goes idle
    deadline = time.monotonic() + 3
    while True:
        after = sql_rows(url, query)[0][0]
        if after > before or time.monotonic() > deadline:
            return int(after - before)
        time.sleep(0.05)


def _space_col(table: str) -> str:
    return "id" if table == "mem_spaces" else "space"


def _has_usearch() -> bool:
    try:
        import usearch  # noqa: F401
    except ImportError:
        return False
    return True
