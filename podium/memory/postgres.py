"""The PostgreSQL memory store (``podium[postgres]`` and pgvector on the server): many processes on many
hosts share one database's collections, memories and threads.

Vectors are pgvector ``vector`` values; each space has a partial HNSW index (cosine) of its own, so spaces
of different sizes live in one table and a search never walks another space's graph. Full text is a
generated ``tsvector`` ranked by ``ts_rank`` (length-normalised); the two result lists are fused by
reciprocal rank exactly as in the SQLite store (``fusion.py``), with the same filters, TTL and errors.
Small spaces (under ``ann_min`` rows) are searched exactly; a filtered search walks the HNSW index until
enough rows pass (pgvector's iterative scan), and searches the rows that pass exactly if the walk ends short.

The store is synchronous (the ``VectorStore`` protocol is): one connection, one lock, autocommit reads and
one transaction per write. Commits do not wait for the disk (``synchronous_commit=off``): a write made inside
a step reaches it with the step's journal entry, whose commit flushes the WAL up to itself. ``CREATE
EXTENSION IF NOT EXISTS vector`` runs on first use.
"""

from __future__ import annotations

import re
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..errors import ConfigError, StoreError
from .fusion import (
    POSTINGS_MAX,
    check_space,
    dump,
    fuse,
    hit,
    rare_words,
    short,
    unit_vectors,
    unknown,
)
from .query import filter_pg, query_words
from .schema import PG_MIGRATIONS
from .types import Hit, Item, SpaceInfo
from .vectors import np

try:
    import psycopg
    from psycopg.adapt import Dumper
    from psycopg.pq import Format
except ImportError as exc:  # pragma: no cover - exercised where psycopg is not installed
    raise ConfigError(
        "a postgresql:// memory URL needs psycopg 3 (and pgvector on the server): "
        "pip install podium[postgres]"
    ) from exc

ANN_MIN = 2_000
"""Spaces with fewer rows are searched exactly (a scan of the space's rows: 2-6 microseconds a row here, so
40-110 ms at 20,000 rows, where the HNSW index answers in 2-5 ms whatever the size)."""

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
"""The HNSW graph's parameters (pgvector's defaults): links per node and the build's candidate list."""

EF_SEARCH = 100
"""``hnsw.ef_search``: the search's candidate list (at least the number of candidates asked for). At
100,000 x 384, recall@10 against exact search was 1.000 from 40 to 200 on vectors of real e5 embeddings
(100: 2.5-7 ms a query), and 0.25 / 0.33 / 0.44 / 0.63 / 0.82 at 40 / 64 / 100 / 200 / 400 on Gaussian
clusters, the hard case (bench/memory.py --store postgres; docs/memory.md). 100 is about usearch's 96."""

HNSW_MAX_DIM = 2_000
"""pgvector indexes ``vector`` values of at most this size; larger spaces are always searched exactly."""

NO_PGVECTOR = (
    "pgvector is not installed on the PostgreSQL server ({url}): install it there (Debian and Ubuntu: "
    "apt-get install postgresql-<version>-pgvector; ./dev test builds it from source), or keep memory in "
    'SQLite with [memory] url = "sqlite:///PATH" in podium.toml'
)


class _Vec:
    """A float32 row sent to PostgreSQL as a pgvector value (binary format)."""

    __slots__ = ("row",)

    def __init__(self, row: Any) -> None:
        self.row = row


class _VecDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        row = obj.row
        return struct.pack(">HH", len(row), 0) + bytes(row.astype(">f4").tobytes())


class PostgresMemoryStore:
    """Collections, memory namespaces and threads in a PostgreSQL database (tables ``mem_*`` in the
    connection's schema). Thread-safe (one lock)."""

    def __init__(self, url: str, *, ann_min: int = ANN_MIN, ef_search: int = EF_SEARCH) -> None:
        self.url = url
        self.ann_min = ann_min
        self.ef_search = ef_search
        self._lock = threading.RLock()
        self._df: dict[int, tuple[int, dict[str, int]]] = {}  # space -> (version, word -> chunks)
        self._counts: dict[int, tuple[int, int]] = {}  # space -> (version, rows)
        self._vector_oid = 0
        self._ef = 0  # the session's hnsw.ef_search
        self._schema = "public"
        self.conn = self._connect()

    # -- plumbing -----------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL ({_safe(self.url)}): {exc}") from exc
        try:
            self._vector_oid = self._ensure_pgvector(conn)
            dumper = type("VecDumper", (_VecDumper,), {"oid": self._vector_oid})
            conn.adapters.register_dumper(_Vec, dumper)
            self._migrate(conn)
            row = conn.execute("SELECT quote_ident(current_schema())").fetchone()
            assert row is not None
            self._schema = str(row[0])  # the tables' schema (the extension's may follow it on the path)
            # Never sort a space's rows where its HNSW index can answer (stale statistics after a large
            # ingestion would otherwise pick a sort); every other query here either must sort or has an
            # index order as good. (A plan that must sort then costs "disabled": JIT, which compiles costly
            # plans and takes tens of milliseconds to, is off.)
            conn.execute("SET enable_sort = off")
            conn.execute("SET jit = off")
            # Like the SQLite store's synchronous=NORMAL: a commit does not wait for the disk; the WAL is
            # one sequence, so the next synchronous commit (a step's journal entry) flushes this one too.
            conn.execute("SET synchronous_commit = off")
            try:
                conn.execute("SET hnsw.iterative_scan = strict_order")  # pgvector 0.8: filtered ANN
            except psycopg.Error:
                pass
        except BaseException:
            conn.close()
            raise
        self._ef = 0
        return conn

    def _ensure_pgvector(self, conn: psycopg.Connection[Any]) -> int:
        """Create the extension if it is missing, put its schema on this session's search path; returns the
        ``vector`` type's oid."""
        find = "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'vector'"
        try:
            row = conn.execute(find).fetchone()
            if row is None:
                if (
                    conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
                    is None
                ):
                    raise StoreError(NO_PGVECTOR.format(url=_safe(self.url)))
                public = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'public'").fetchone()
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('podium.pgvector', 0))")
                    conn.execute(
                        "CREATE EXTENSION IF NOT EXISTS vector" + (" SCHEMA public" if public else "")
                    )
                row = conn.execute(find).fetchone()
                assert row is not None
            schema = str(row[0])
            path = conn.execute("SELECT current_schemas(false)").fetchone()
            if path is None or schema.strip('"') not in path[0]:
                conn.execute(
                    "SELECT set_config('search_path', current_setting('search_path') || ', ' || %s, false)",
                    (schema,),
                )
            oid = conn.execute(
                "SELECT t.oid FROM pg_type t JOIN pg_extension e ON e.extnamespace = t.typnamespace "
                "WHERE e.extname = 'vector' AND t.typname = 'vector'"
            ).fetchone()
        except psycopg.errors.InsufficientPrivilege as exc:
            raise StoreError(
                f"PostgreSQL ({_safe(self.url)}): this user may not create the pgvector extension ({exc}): "
                "ask the database's owner to run CREATE EXTENSION vector"
            ) from exc
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL ({_safe(self.url)}): {exc}") from exc
        assert oid is not None
        return int(oid[0])

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        try:
            with conn.transaction():
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended('podium.memory:' || current_schema(), 0))"
                )
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS memory_migrations "
                    "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION)"
                )
                done = {r[0] for r in conn.execute("SELECT version FROM memory_migrations")}
                for version, sql in PG_MIGRATIONS:
                    if version not in done:
                        conn.execute(sql.encode())  # several statements: simple query protocol
                        conn.execute("INSERT INTO memory_migrations VALUES (%s, %s)", (version, time.time()))
        except psycopg.Error as exc:
            raise StoreError(
                f"PostgreSQL ({_safe(self.url)}): cannot create the memory tables: {exc}"
            ) from exc
        self.version = max(v for v, _ in PG_MIGRATIONS)

    def _db(self) -> psycopg.Connection[Any]:
        if self.conn.closed or self.conn.broken:
            self.conn = self._connect()
        return self.conn

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            db = self._db()
            try:
                with db.transaction():
                    yield db
            except psycopg.Error as exc:
                raise StoreError(f"memory store (PostgreSQL): {exc}") from exc

    @contextmanager
    def _read(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            try:
                yield self._db()
            except psycopg.Error as exc:
                raise StoreError(f"memory store (PostgreSQL): {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def flush(self) -> None:
        """Nothing to do: every write is committed, and the HNSW indexes live in the database."""

    # -- spaces -------------------------------------------------------------------------------
    def _space_row(
        self, db: psycopg.Connection[Any], name: str, *, lock: bool = False
    ) -> tuple[Any, ...] | None:
        return db.execute(
            "SELECT id, kind, model, dim, version FROM mem_spaces WHERE name = %s"
            + (" FOR UPDATE" if lock else ""),
            (name,),
        ).fetchone()

    def info(self, name: str) -> SpaceInfo | None:
        with self._read() as db:
            row = self._space_row(db, name)
            if row is None:
                return None
            r = db.execute(
                "SELECT (SELECT count(*) FROM mem_items WHERE space = %s), "
                "(SELECT count(*) FROM mem_docs WHERE space = %s)",
                (row[0], row[0]),
            ).fetchone()
            assert r is not None
            return SpaceInfo(name=name, kind=row[1], model=row[2], dim=row[3], count=r[0], documents=r[1])

    def spaces(self, kind: str | None = None) -> list[SpaceInfo]:
        with self._read() as db:
            names = [
                r[0]
                for r in db.execute(
                    "SELECT name FROM mem_spaces WHERE (%s::text IS NULL OR kind = %s) ORDER BY name",
                    (kind, kind),
                )
            ]
        return [i for i in (self.info(n) for n in names) if i is not None]

    def ensure_space(self, name: str, *, kind: str, model: str, dim: int) -> SpaceInfo:
        """Create the space (and its HNSW index), or check that ``model`` and ``dim`` are what it holds."""
        with self._tx() as db:
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended('podium.space:' || %s, 0))", (name,))
            row = self._space_row(db, name)
            if row is None:
                got = db.execute(
                    "INSERT INTO mem_spaces (name, kind, model, dim, created_at) VALUES (%s, %s, %s, %s, %s) "
                    "RETURNING id",
                    (name, kind, model, dim, time.time()),
                ).fetchone()
                assert got is not None
                sid = int(got[0])
                db.execute(f"DROP INDEX IF EXISTS {self._schema}.mem_items_hnsw_{sid}")  # left by a DELETE
                if dim <= HNSW_MAX_DIM:
                    db.execute(
                        f"CREATE INDEX mem_items_hnsw_{sid} ON mem_items USING hnsw "
                        f"((embedding::vector({int(dim)})) vector_cosine_ops) "
                        f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
                        f"WHERE space = {sid} AND vector_dims(embedding) = {int(dim)}"
                    )
            else:
                check_space(name, row[2], row[3], model, dim)
        info = self.info(name)
        assert info is not None
        return info

    def require(self, name: str) -> tuple[int, str, str, int, int]:
        """The space's (id, kind, model, dim, version); ``UnknownCollectionError`` naming the known ones."""
        with self._read() as db:
            row = self._space_row(db, name)
            if row is None:
                raise unknown(name, [r[0] for r in db.execute("SELECT name FROM mem_spaces ORDER BY name")])
        return (int(row[0]), row[1], row[2], int(row[3]), int(row[4]))

    def _require_tx(self, db: psycopg.Connection[Any], name: str) -> tuple[int, int]:
        """Inside a write: move the space's version on (other processes' caches see the change) and lock its
        row (writes to one space are serialised); returns its id and dim."""
        row = db.execute(
            "UPDATE mem_spaces SET version = version + 1 WHERE name = %s RETURNING id, dim", (name,)
        ).fetchone()
        if row is None:
            self.require(name)
        assert row is not None
        return int(row[0]), int(row[1])

    @staticmethod
    def _bump(db: psycopg.Connection[Any], sid: int) -> None:
        db.execute("UPDATE mem_spaces SET version = version + 1 WHERE id = %s", (sid,))

    def delete_space(self, name: str) -> bool:
        """Delete a space with every copy of its data: rows (with their vectors and full text), documents,
        cache entries and its HNSW index. PostgreSQL reclaims the deleted rows' pages at its next
        (auto)vacuum."""
        with self._tx() as db:
            row = self._space_row(db, name, lock=True)
            if row is None:
                return False
            sid = int(row[0])
            db.execute("DELETE FROM mem_items WHERE space = %s", (sid,))
            db.execute("DELETE FROM mem_cache WHERE space = %s", (sid,))
            db.execute("DELETE FROM mem_docs WHERE space = %s", (sid,))
            db.execute("DELETE FROM mem_spaces WHERE id = %s", (sid,))
            db.execute(f"DROP INDEX IF EXISTS {self._schema}.mem_items_hnsw_{sid}")
            self._df.pop(sid, None)
            self._counts.pop(sid, None)
        return True

    # -- items --------------------------------------------------------------------------------
    def upsert(self, name: str, items: Sequence[Item], *, now: float | None = None) -> list[str]:
        """Insert or replace items (by key) in an existing space; returns their chunk ids."""
        if not items:
            return []
        now = time.time() if now is None else now
        items = list({it.key: it for it in items}.values())  # one row per key: the last one wins
        with self._tx() as db:
            sid, dim = self._require_tx(db, name)
            mat = unit_vectors(name, dim, [it.vector for it in items])
            sql = (
                "INSERT INTO mem_items (space, key, doc, source, text, metadata, embedding, created_at, "
                "expires_at) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s) "
                "ON CONFLICT (space, key) DO UPDATE SET doc = excluded.doc, source = excluded.source, "
                "text = excluded.text, metadata = excluded.metadata, embedding = excluded.embedding, "
                "created_at = excluded.created_at, expires_at = excluded.expires_at"
            )
            rows = [
                (sid, it.key, it.doc, it.source, it.text, dump(it.metadata), _Vec(mat[i]), now, it.expires_at)
                for i, it in enumerate(items)
            ]
            if len(rows) == 1:
                db.execute(sql, rows[0])  # one round trip (executemany adds a pipeline's)
            else:
                with db.cursor() as cur:
                    cur.executemany(sql, rows)
        return [f"{short(name)}:{it.key}" for it in items]

    def delete(self, name: str, keys: Sequence[str]) -> int:
        """Delete items by key; returns how many existed."""
        with self._tx() as db:
            row = self._space_row(db, name, lock=True)
            if row is None:
                return 0
            n = db.execute(
                "DELETE FROM mem_items WHERE space = %s AND key = ANY(%s)", (row[0], list(keys))
            ).rowcount
            if n:
                db.execute("DELETE FROM mem_cache WHERE space = %s AND key = ANY(%s)", (row[0], list(keys)))
                self._bump(db, row[0])
            return n

    def purge_expired(self, *, now: float | None = None) -> int:
        """Delete items whose TTL ran out (searches never return them anyway)."""
        now = time.time() if now is None else now
        with self._tx() as db:
            gone = db.execute(
                "DELETE FROM mem_items WHERE expires_at IS NOT NULL AND expires_at <= %s RETURNING space",
                (now,),
            ).fetchall()
            for sid in sorted({r[0] for r in gone}):
                self._bump(db, sid)
        return len(gone)

    _ROW = "i.id, i.key, i.text, i.source, i.metadata, i.doc"

    def get(self, name: str, key: str, *, now: float | None = None) -> Hit | None:
        now = time.time() if now is None else now
        with self._read() as db:
            row = self._space_row(db, name)
            if row is None:
                return None
            r = db.execute(
                f"SELECT {self._ROW} FROM mem_items i WHERE i.space = %s AND i.key = %s "
                "AND (i.expires_at IS NULL OR i.expires_at > %s)",
                (row[0], key, now),
            ).fetchone()
        return None if r is None else hit(name, r, 1.0)

    def keys(self, name: str, *, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        with self._read() as db:
            row = self._space_row(db, name)
            if row is None:
                return []
            return [
                r[0]
                for r in db.execute(
                    "SELECT key FROM mem_items WHERE space = %s AND (expires_at IS NULL OR expires_at > %s) "
                    "ORDER BY id",
                    (row[0], now),
                )
            ]

    # -- cache of query embeddings ------------------------------------------------------------
    def cache_get(self, name: str, key: str) -> Any:
        with self._read() as db:
            row = self._space_row(db, name)
            if row is None:
                return None
            r = db.execute(
                "SELECT value FROM mem_cache WHERE space = %s AND key = %s", (row[0], key)
            ).fetchone()
        return None if r is None else np().frombuffer(bytes(r[0]), dtype=np().float32)

    def cache_put(self, name: str, key: str, vector: Any) -> None:
        with self._tx() as db:
            row = self._space_row(db, name)
            if row is None:
                return
            blob = np().asarray(vector, dtype=np().float32).tobytes()
            db.execute(
                "INSERT INTO mem_cache VALUES (%s, %s, %s) "
                "ON CONFLICT (space, key) DO UPDATE SET value = excluded.value",
                (row[0], key, blob),
            )

    # -- search -------------------------------------------------------------------------------
    def search(
        self,
        name: str,
        *,
        vector: Any = None,
        text: str | None = None,
        k: int = 10,
        filters: dict[str, Any] | None = None,
        now: float | None = None,
        candidates: int | None = None,
    ) -> list[Hit]:
        """Hybrid search: vector and/or full-text results, fused by reciprocal rank when both are given.

        Expired items and items that fail ``filters`` are never returned. Each result list contributes
        its best ``candidates`` (default ``max(4 k, 40)``) to the fusion.
        """
        if k <= 0:
            return []
        now = time.time() if now is None else now
        where, args = filter_pg(filters)
        where += " AND (i.expires_at IS NULL OR i.expires_at > %s)"
        args = [*args, now]
        n_cand = candidates or max(4 * k, 40)
        sid, _, _, dim, version = self.require(name)
        rows: dict[int, tuple[Any, ...]] = {}
        with self._read() as db:
            vec: list[tuple[int, float]] = []
            txt: list[tuple[int, float]] = []
            if vector is not None:
                q = unit_vectors(name, dim, [vector])[0]
                vec = self._vector_hits(
                    db, sid, dim, version, q, n_cand, where, args, rows, filtered=bool(filters)
                )
            if text:
                txt = self._text_hits(
                    db, sid, version, text, n_cand, where, args, rows, keep_one=vector is None
                )
        return fuse(name, vec, txt, rows, k, both=vector is not None and bool(text))

    def _count(self, db: psycopg.Connection[Any], sid: int, where: str, args: list[Any], limit: int) -> int:
        """How many of the space's rows pass ``where`` (counting stops at ``limit``)."""
        r = db.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM mem_items i WHERE i.space = {sid}{where} "
            f"LIMIT {int(limit)}) s",
            args,
        ).fetchone()
        return int(r[0]) if r else 0

    def _vector_hits(
        self,
        db: psycopg.Connection[Any],
        sid: int,
        dim: int,
        version: int,
        q: Any,
        n_cand: int,
        where: str,
        args: list[Any],
        rows: dict[int, tuple[Any, ...]],
        *,
        filtered: bool,
    ) -> list[tuple[int, float]]:
        """The space's ``n_cand`` nearest rows (id, cosine similarity), best first; their rows into
        ``rows``."""
        cached = self._counts.get(sid)
        if cached is None or cached[0] != version:
            cached = self._counts[sid] = (version, self._count(db, sid, "", [], self.ann_min))
        exact = cached[1] < self.ann_min or dim > HNSW_MAX_DIM
        vec = f"i.embedding::vector({int(dim)})"
        sql = (
            f"SELECT 1 - ({vec} <=> %s), {self._ROW} FROM mem_items i "
            f"WHERE i.space = {sid} AND vector_dims(i.embedding) = {int(dim)}{where} ORDER BY "
        )
        params = [_Vec(q), *args, _Vec(q)]
        found: list[tuple[Any, ...]] = []
        if (
            not exact
        ):  # the space's HNSW index (the session's enable_sort=off: chosen on stale statistics too)
            ef = min(1000, max(self.ef_search, n_cand))
            if ef != self._ef:
                db.execute(f"SET hnsw.ef_search = {ef}")
                self._ef = ef
            found = db.execute(sql + f"{vec} <=> %s LIMIT {int(n_cand)}", params).fetchall()
            # Fewer than asked: the walk (iterative with a filter) ended before enough rows passed; the rows
            # that pass are then searched exactly.
            exact = len(found) < n_cand
        if exact:  # "+ 0": an expression no index answers, so the rows are sorted by their exact distance
            found = db.execute(sql + f"({vec} <=> %s) + 0, i.id LIMIT {int(n_cand)}", params).fetchall()
        rows.update((r[1], r[1:]) for r in found)
        return [(int(r[1]), float(r[0])) for r in found]

    def _text_hits(
        self,
        db: psycopg.Connection[Any],
        sid: int,
        version: int,
        text: str,
        n_cand: int,
        where: str,
        args: list[Any],
        rows: dict[int, tuple[Any, ...]],
        *,
        keep_one: bool,
    ) -> list[tuple[int, float]]:
        """The space's ``n_cand`` best full-text matches (id, ts_rank), best first; their rows into
        ``rows``."""
        cached = self._df.get(sid)
        if cached is None or len(cached[1]) > 50_000:
            cached = self._df[sid] = (version, {})
        elif cached[0] != version:  # counts only steer the choice of words: keep them, but a word no chunk
            # held may be in one now
            cached = self._df[sid] = (version, {w: n for w, n in cached[1].items() if n})
        known = cached[1]

        def count(w: str) -> int:
            if w not in known:
                match = " AND i.tsv @@ to_tsquery('simple', %s)"
                known[w] = self._count(db, sid, match, [_lexeme(w)], POSTINGS_MAX + 1)
            return known[w]

        words = rare_words(query_words(text), count, keep_one=keep_one)
        if not words:
            return []
        found = db.execute(
            f"SELECT ts_rank(i.tsv, q, 1) AS r, {self._ROW} FROM mem_items i, to_tsquery('simple', %s) q "
            f"WHERE i.space = {sid} AND i.tsv @@ q{where} ORDER BY r DESC, i.id LIMIT {int(n_cand)}",
            [" | ".join(_lexeme(w) for w in words), *args],
        ).fetchall()
        rows.update((r[1], r[1:]) for r in found)
        return [(int(r[1]), float(r[0])) for r in found]

    # -- documents (ingestion) ----------------------------------------------------------------
    def doc_hashes(self, name: str) -> dict[str, str]:
        with self._read() as db:
            row = self._space_row(db, name)
            if row is None:
                return {}
            return {
                r[0]: r[1] for r in db.execute("SELECT doc, hash FROM mem_docs WHERE space = %s", (row[0],))
            }

    def stage(self, run: str, doc: str, first: int, chunks: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Stage chunks ``first, first+1, ...`` of ``doc`` for run ``run`` (invisible to searches)."""
        rows = [(run, doc, first + i, text, dump(meta)) for i, (text, meta) in enumerate(chunks)]
        with self._tx() as db, db.cursor() as cur:
            cur.executemany(
                "INSERT INTO mem_staging (run, doc, n, text, metadata) VALUES (%s, %s, %s, %s, %s::jsonb) "
                "ON CONFLICT (run, doc, n) DO UPDATE SET text = excluded.text, metadata = excluded.metadata, "
                "embedding = NULL",
                rows,
            )
        return len(rows)

    def unstage(self, run: str, doc: str | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "DELETE FROM mem_staging WHERE run = %s AND (%s::text IS NULL OR doc = %s)", (run, doc, doc)
            )

    def staged_texts(self, run: str, doc: str, lo: int, hi: int) -> list[tuple[int, str]]:
        with self._read() as db:
            return [
                (r[0], r[1])
                for r in db.execute(
                    "SELECT n, text FROM mem_staging WHERE run = %s AND doc = %s AND n >= %s AND n < %s "
                    "ORDER BY n",
                    (run, doc, lo, hi),
                )
            ]

    def stage_vectors(self, run: str, doc: str, name: str, rows: Sequence[tuple[int, Any]]) -> None:
        _, _, _, dim, _ = self.require(name)
        mat = unit_vectors(name, dim, [v for _, v in rows])
        with self._tx() as db, db.cursor() as cur:
            cur.executemany(
                "UPDATE mem_staging SET embedding = %s WHERE run = %s AND doc = %s AND n = %s",
                [(_Vec(mat[i]), run, doc, n) for i, (n, _) in enumerate(rows)],
            )

    def commit_doc(
        self, name: str, run: str, doc: str, *, hash: str, source: str, now: float | None = None
    ) -> int:
        """Replace ``doc``'s chunks in the space by the staged ones, in one transaction; returns the count."""
        now = time.time() if now is None else now
        with self._tx() as db:
            sid, _ = self._require_tx(db, name)
            r = db.execute(
                "SELECT count(*) FROM mem_staging WHERE run = %s AND doc = %s AND embedding IS NULL",
                (run, doc),
            ).fetchone()
            if r and r[0]:
                raise StoreError(f"{doc}: {r[0]} staged chunks have no vector yet")
            db.execute("DELETE FROM mem_items WHERE space = %s AND doc = %s", (sid, doc))
            count = db.execute(
                "INSERT INTO mem_items (space, key, doc, source, text, metadata, embedding, created_at) "
                "SELECT %s, doc || '#' || n, doc, %s, text, metadata, embedding, %s FROM mem_staging "
                "WHERE run = %s AND doc = %s ORDER BY n",
                (sid, source, now, run, doc),
            ).rowcount
            db.execute("DELETE FROM mem_staging WHERE run = %s AND doc = %s", (run, doc))
            db.execute(
                "INSERT INTO mem_docs (space, doc, hash, chunks, source, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (space, doc) DO UPDATE SET hash = excluded.hash, chunks = excluded.chunks, "
                "source = excluded.source, updated_at = excluded.updated_at",
                (sid, doc, hash, count, source, now),
            )
        return int(count)

    def remove_docs(self, name: str, docs: Sequence[str]) -> int:
        """Delete documents (all their chunks) from a collection; returns how many chunks went."""
        if not docs:
            return 0
        with self._tx() as db:
            sid, _ = self._require_tx(db, name)
            n = db.execute(
                "DELETE FROM mem_items WHERE space = %s AND doc = ANY(%s)", (sid, list(docs))
            ).rowcount
            db.execute("DELETE FROM mem_docs WHERE space = %s AND doc = ANY(%s)", (sid, list(docs)))
        return n

    # -- threads ------------------------------------------------------------------------------
    def append_messages(self, thread: str, batch: str, messages: Sequence[tuple[str, str, int]]) -> list[int]:
        """Append messages (role, content, tokens) to a thread as one contiguous block, once per ``batch``
        (a retried append with the same batch id writes nothing and returns the first sequence numbers)."""
        with self._tx() as db:
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended('podium.thread:' || %s, 0))", (thread,))
            old = [
                r[0]
                for r in db.execute(
                    "SELECT seq FROM mem_messages WHERE thread = %s AND batch = %s ORDER BY seq",
                    (thread, batch),
                )
            ]
            if old:
                return old
            r = db.execute("SELECT max(seq) FROM mem_messages WHERE thread = %s", (thread,)).fetchone()
            start = 0 if r is None or r[0] is None else int(r[0]) + 1
            now = time.time()
            with db.cursor() as cur:
                cur.executemany(
                    "INSERT INTO mem_messages VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [(thread, start + i, ro, c, t, batch, now) for i, (ro, c, t) in enumerate(messages)],
                )
            return list(range(start, start + len(messages)))

    def messages(self, thread: str, *, after: int = -1) -> list[tuple[int, str, str, int]]:
        with self._read() as db:
            return [
                (r[0], r[1], r[2], r[3])
                for r in db.execute(
                    "SELECT seq, role, content, tokens FROM mem_messages WHERE thread = %s AND seq > %s "
                    "ORDER BY seq",
                    (thread, after),
                )
            ]

    def summary(self, thread: str, model: str, upto: int) -> str | None:
        with self._read() as db:
            r = db.execute(
                "SELECT text FROM mem_summaries WHERE thread = %s AND model = %s AND upto = %s",
                (thread, model, upto),
            ).fetchone()
        return None if r is None else str(r[0])

    def latest_summary(self, thread: str, model: str, upto: int) -> tuple[int, str] | None:
        """The summary of the longest prefix of the thread up to ``upto`` that was summarised."""
        with self._read() as db:
            r = db.execute(
                "SELECT upto, text FROM mem_summaries WHERE thread = %s AND model = %s AND upto <= %s "
                "ORDER BY upto DESC LIMIT 1",
                (thread, model, upto),
            ).fetchone()
        return None if r is None else (int(r[0]), str(r[1]))

    def put_summary(self, thread: str, model: str, upto: int, text: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO mem_summaries VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (thread, upto, model) DO UPDATE SET text = excluded.text",
                (thread, upto, model, text),
            )

    def threads(self, prefix: str = "") -> list[str]:
        with self._read() as db:
            rows = db.execute(
                "SELECT DISTINCT thread FROM mem_messages WHERE left(thread, %s) = %s ORDER BY thread",
                (len(prefix), prefix),
            ).fetchall()
        return [r[0] for r in rows]

    def delete_thread(self, thread: str) -> int:
        with self._tx() as db:
            n = db.execute("DELETE FROM mem_messages WHERE thread = %s", (thread,)).rowcount
            db.execute("DELETE FROM mem_summaries WHERE thread = %s", (thread,))
        return int(n)


def _lexeme(word: str) -> str:
    """A word as a quoted ``tsquery`` operand (never read as an operator)."""
    return "'" + word.replace("'", "''").replace("\\", "\\\\") + "'"


def _safe(url: str) -> str:
    """The URL without its password."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)
