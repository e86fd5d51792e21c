"""The embedded memory store: items, BM25 full text (FTS5) and vectors on the run store's SQLite file.

It opens its own connection to that file (the run store's tables are not touched) and applies its own
migrations. Writes use ``synchronous=NORMAL``: in WAL mode they reach disk with the run store's next
``FULL`` commit (same WAL), which is the step's own journal entry when the write is made inside a step.
``secure_delete`` is on: deleted rows are overwritten, not left in free pages.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import StoreError
from .fusion import (
    PREFILTER_MAX,
    check_space,
    dump,
    fuse,
    hit,
    rare_words,
    short,
    unit_vectors,
    unknown,
)
from .query import filter_sql, fts_query, query_words, statements
from .schema import MIGRATIONS
from .thread_rows import ThreadRows
from .types import Hit, Item, SpaceInfo
from .vectors import SpaceVectors, np, top_k

ANN_MIN = 20_000
"""Spaces with at least this many vectors are searched with the ANN index (below: exact search)."""


class SQLiteMemoryStore(ThreadRows):
    """Collections, memory namespaces and threads in one SQLite file. Thread-safe (one lock)."""

    def __init__(self, path: str | Path, *, ann_min: int = ANN_MIN, ann_dtype: str = "f16") -> None:
        self.path = str(path)
        self.ann_min = ann_min
        self.ann_dtype = ann_dtype
        self._lock = threading.RLock()
        self._indexes: dict[int, SpaceVectors] = {}
        self._fts_ready: set[int] = set()
        self._df: dict[int, dict[str, int]] = {}  # per space: words' chunk counts (approximate, cached)
        self.folder = None if self.path == ":memory:" else Path(self.path + ".vectors")
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the memory store {self.path}: {exc}") from exc
        if self.path != ":memory:":
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=30000")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA secure_delete=ON")
        self.db = db
        self._migrate()

    # -- plumbing -----------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._tx() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS memory_migrations (version INTEGER PRIMARY KEY, applied_at REAL)"
            )
            done = {r[0] for r in db.execute("SELECT version FROM memory_migrations")}
            for version, sql in MIGRATIONS:
                if version in done:
                    continue
                for statement in statements(sql):
                    db.execute(statement)
                db.execute("INSERT INTO memory_migrations VALUES (?, ?)", (version, time.time()))
            for (sid,) in db.execute("SELECT id FROM mem_spaces").fetchall():
                self._ensure_fts(db, sid)
        self.version = max(v for v, _ in MIGRATIONS)

    # -- full text: one FTS5 table per space ----------------------------------------------------
    def _ensure_fts(self, db: sqlite3.Connection, sid: int) -> str:
        """The space's FTS5 table (external content: the text lives once, in mem_items), created and
        filled from the space's rows if it is missing."""
        table = f"mem_fts_{int(sid)}"
        if sid in self._fts_ready:
            return table
        exists = db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone()
        if not exists:
            db.execute(
                f"CREATE VIRTUAL TABLE {table} USING fts5(text, content='mem_items', content_rowid='id', "
                "tokenize='unicode61 remove_diacritics 2')"
            )
            db.execute(
                f"INSERT INTO {table}(rowid, text) SELECT id, text FROM mem_items WHERE space = ?", (sid,)
            )
        db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {table}_v USING fts5vocab({table}, 'row')")
        self._fts_ready.add(sid)
        return table

    def _delete_rows(self, db: sqlite3.Connection, sid: int, where: str, args: Sequence[Any]) -> list[int]:
        """Delete the space's rows matching ``where`` and their full-text entries; returns their ids."""
        gone = db.execute(
            f"DELETE FROM mem_items WHERE space = ? AND {where} RETURNING id, text", (sid, *args)
        )
        rows = gone.fetchall()
        if rows:
            table = self._ensure_fts(db, sid)
            db.executemany(f"INSERT INTO {table}({table}, rowid, text) VALUES ('delete', ?, ?)", rows)
        return [int(r[0]) for r in rows]

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self.db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"memory store: {exc}") from exc
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            else:
                db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for index in self._indexes.values():
                index.save()
            self._indexes.clear()
            self.db.close()

    def flush(self) -> None:
        """Save the ANN indexes that changed (another process then loads instead of rebuilding)."""
        with self._lock:
            for index in self._indexes.values():
                index.save()

    # -- spaces -------------------------------------------------------------------------------
    def _space_row(self, name: str) -> tuple[int, str, str, int, int] | None:
        row = self.db.execute(
            "SELECT id, kind, model, dim, version FROM mem_spaces WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3], row[4])

    def info(self, name: str) -> SpaceInfo | None:
        with self._lock:
            row = self._space_row(name)
            if row is None:
                return None
            count = self.db.execute("SELECT count(*) FROM mem_items WHERE space = ?", (row[0],)).fetchone()[0]
            docs = self.db.execute("SELECT count(*) FROM mem_docs WHERE space = ?", (row[0],)).fetchone()[0]
            return SpaceInfo(name=name, kind=row[1], model=row[2], dim=row[3], count=count, documents=docs)

    def spaces(self, kind: str | None = None) -> list[SpaceInfo]:
        with self._lock:
            names = [
                r[0]
                for r in self.db.execute(
                    "SELECT name FROM mem_spaces WHERE (? IS NULL OR kind = ?) ORDER BY name", (kind, kind)
                )
            ]
        return [i for i in (self.info(n) for n in names) if i is not None]

    def ensure_space(self, name: str, *, kind: str, model: str, dim: int) -> SpaceInfo:
        """Create the space, or check that ``model`` and ``dim`` are what it holds."""
        with self._tx() as db:
            row = self._space_row(name)
            if row is None:
                cur = db.execute(
                    "INSERT INTO mem_spaces (name, kind, model, dim, created_at) VALUES (?, ?, ?, ?, ?)",
                    (name, kind, model, dim, time.time()),
                )
                assert cur.lastrowid is not None
                self._ensure_fts(db, cur.lastrowid)
            else:
                check_space(name, row[2], row[3], model, dim)
        info = self.info(name)
        assert info is not None
        return info

    def require(self, name: str) -> tuple[int, str, str, int, int]:
        row = self._space_row(name)
        if row is None:
            known = [r[0] for r in self.db.execute("SELECT name FROM mem_spaces ORDER BY name")]
            raise unknown(name, known)
        return row

    def delete_space(self, name: str) -> bool:
        """Delete a space with every copy of its data: rows, full-text entries, vectors, cache entries and
        the saved ANN index. The full-text index is merged so no deleted term stays in it."""
        with self._tx() as db:
            row = self._space_row(name)
            if row is None:
                return False
            sid = row[0]
            db.execute("DELETE FROM mem_items WHERE space = ?", (sid,))
            db.execute("DELETE FROM mem_cache WHERE space = ?", (sid,))
            db.execute("DELETE FROM mem_docs WHERE space = ?", (sid,))
            db.execute("DELETE FROM mem_spaces WHERE id = ?", (sid,))
            db.execute(f"DROP TABLE IF EXISTS mem_fts_{int(sid)}_v")
            db.execute(f"DROP TABLE IF EXISTS mem_fts_{int(sid)}")
            self._fts_ready.discard(sid)
            self._df.pop(sid, None)
            index = self._indexes.pop(sid, None)
            if index is None:
                index = SpaceVectors(sid, row[3], ann_min=self.ann_min, folder=self.folder)
            index.drop_files()
        return True

    # -- items --------------------------------------------------------------------------------
    def upsert(self, name: str, items: Sequence[Item], *, now: float | None = None) -> list[str]:
        """Insert or replace items (by key) in an existing space; returns their chunk ids."""
        if not items:
            return []
        now = time.time() if now is None else now
        items = list({it.key: it for it in items}.values())  # one row per key: the last one wins
        with self._tx() as db:
            sid, _, _, dim, version = self.require(name)
            mat = self._vectors(name, dim, [it.vector for it in items])
            tag = f"s{sid}"
            keys = [it.key for it in items]
            old: list[int] = []
            new: list[int] = []
            fts = self._ensure_fts(db, sid)
            for i, it in enumerate(items):
                # A replaced item gets a new row id: other processes' indexes see the change by its ids.
                old += self._delete_rows(db, sid, "key = ?", (it.key,))
                row = db.execute(
                    "INSERT INTO mem_items (space, key, doc, source, text, tag, metadata, vector, "
                    "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        sid,
                        it.key,
                        it.doc,
                        it.source,
                        it.text,
                        tag,
                        dump(it.metadata),
                        mat[i].tobytes(),
                        now,
                        it.expires_at,
                    ),
                ).fetchone()
                new.append(int(row[0]))
            db.executemany(
                f"INSERT INTO {fts}(rowid, text) VALUES (?, ?)",
                [(rid, it.text) for rid, it in zip(new, items, strict=True)],
            )
            self._bump(db, sid, version, removed=old, added=(new, mat))
        return [f"{short(name)}:{k}" for k in keys]

    def _vectors(self, name: str, dim: int, vectors: list[Any]) -> Any:
        return unit_vectors(name, dim, vectors)

    def _ids_of(self, sid: int, keys: Sequence[str]) -> list[int]:
        out: list[int] = []
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            out += [
                r[0]
                for r in self.db.execute(
                    f"SELECT id FROM mem_items WHERE space = ? AND key IN ({','.join('?' * len(part))}) "
                    "ORDER BY id",
                    (sid, *part),
                )
            ]
        return sorted(out)

    def _keys_of(self, ids: Sequence[int]) -> list[str]:
        by_id: dict[int, str] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            for rid, key in self.db.execute(
                f"SELECT id, key FROM mem_items WHERE id IN ({','.join('?' * len(part))})", tuple(part)
            ):
                by_id[rid] = key
        return [by_id[i] for i in ids]

    def _bump(
        self,
        db: sqlite3.Connection,
        sid: int,
        version: int,
        *,
        removed: Sequence[int] = (),
        added: tuple[Sequence[int], Any] | None = None,
    ) -> None:
        """Move the space's version on; apply the change to this process's index if it was current."""
        db.execute("UPDATE mem_spaces SET version = version + 1 WHERE id = ?", (sid,))
        index = self._indexes.get(sid)
        if index is None or index.version != version:
            return  # stale or absent: the next search syncs it from the rows
        if removed:
            index.remove(np().asarray(removed, dtype=np().int64))
        if added is not None and len(added[0]):
            index.add(np().asarray(added[0], dtype=np().int64), added[1])
        index.version = version + 1

    def delete(self, name: str, keys: Sequence[str]) -> int:
        """Delete items by key; returns how many existed."""
        with self._tx() as db:
            row = self._space_row(name)
            if row is None:
                return 0
            ids: list[int] = []
            for key in keys:
                ids += self._delete_rows(db, row[0], "key = ?", (key,))
            if ids:
                db.execute(
                    f"DELETE FROM mem_cache WHERE space = ? AND key IN ({','.join('?' * len(keys))})",
                    (row[0], *keys),
                )
                self._bump(db, row[0], row[4], removed=ids)
            return len(ids)

    def purge_expired(self, *, now: float | None = None) -> int:
        """Delete items whose TTL ran out (searches never return them anyway)."""
        now = time.time() if now is None else now
        with self._tx() as db:
            rows = db.execute(
                "SELECT i.id, i.space, s.version FROM mem_items i JOIN mem_spaces s ON s.id = i.space "
                "WHERE i.expires_at IS NOT NULL AND i.expires_at <= ?",
                (now,),
            ).fetchall()
            by_space: dict[tuple[int, int], list[int]] = {}
            for rid, sid, version in rows:
                by_space.setdefault((sid, version), []).append(rid)
            for (sid, version), ids in by_space.items():
                gone: list[int] = []
                for rid in ids:
                    gone += self._delete_rows(db, sid, "id = ?", (rid,))
                self._bump(db, sid, version, removed=gone)
        return len(rows)

    def get(self, name: str, key: str, *, now: float | None = None) -> Hit | None:
        now = time.time() if now is None else now
        with self._lock:
            row = self._space_row(name)
            if row is None:
                return None
            r = self.db.execute(
                "SELECT id, key, text, source, metadata, doc FROM mem_items WHERE space = ? AND key = ? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (row[0], key, now),
            ).fetchone()
        if r is None:
            return None
        return hit(name, r, 1.0)

    def keys(self, name: str, *, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        with self._lock:
            row = self._space_row(name)
            if row is None:
                return []
            return [
                r[0]
                for r in self.db.execute(
                    "SELECT key FROM mem_items WHERE space = ? AND (expires_at IS NULL OR expires_at > ?) "
                    "ORDER BY id",
                    (row[0], now),
                )
            ]

    # -- cache of query embeddings ------------------------------------------------------------
    def cache_get(self, name: str, key: str) -> Any:
        with self._lock:
            row = self._space_row(name)
            if row is None:
                return None
            r = self.db.execute(
                "SELECT value FROM mem_cache WHERE space = ? AND key = ?", (row[0], key)
            ).fetchone()
        return None if r is None else np().frombuffer(r[0], dtype=np().float32)

    def cache_put(self, name: str, key: str, vector: Any) -> None:
        with self._tx() as db:
            row = self._space_row(name)
            if row is None:
                return
            blob = np().asarray(vector, dtype=np().float32).tobytes()
            db.execute("INSERT OR REPLACE INTO mem_cache VALUES (?, ?, ?)", (row[0], key, blob))

    # -- search -------------------------------------------------------------------------------
    def index(self, name: str) -> SpaceVectors:
        """This process's vector index of the space, synced with SQLite (caller holds the lock)."""
        sid, _, _, dim, version = self.require(name)
        index = self._indexes.get(sid)
        if index is None or index.dim != dim:
            index = self._indexes[sid] = SpaceVectors(
                sid, dim, ann_min=self.ann_min, folder=self.folder, dtype=self.ann_dtype
            )
        if index.version != version:
            n = np()
            present = n.fromiter(
                (
                    r[0]
                    for r in self.db.execute("SELECT id FROM mem_items WHERE space = ? ORDER BY id", (sid,))
                ),
                dtype=n.int64,
            )
            index.sync(present, lambda ids: self._load(ids, dim), version)
            if index.unsaved >= 1000:
                index.save()
        return index

    def _load(self, ids: Any, dim: int) -> tuple[Any, Any]:
        n = np()
        out_ids: list[int] = []
        blobs: list[bytes] = []
        id_list = [int(i) for i in ids]
        for i in range(0, len(id_list), 900):
            part = id_list[i : i + 900]
            for rid, blob in self.db.execute(
                f"SELECT id, vector FROM mem_items WHERE id IN ({','.join('?' * len(part))}) ORDER BY id",
                part,
            ):
                out_ids.append(rid)
                blobs.append(blob)
        mat = n.frombuffer(b"".join(blobs), dtype=n.float32).reshape(len(blobs), dim)
        return n.asarray(out_ids, dtype=n.int64), mat

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
        """Hybrid search: vector and/or BM25 results, fused by reciprocal rank when both are given.

        Expired items and items that fail ``filters`` are never returned. Each result list contributes
        its best ``candidates`` (default ``max(4 k, 40)``) to the fusion.
        """
        if k <= 0:
            return []
        now = time.time() if now is None else now
        where, args = filter_sql(filters)
        n_cand = candidates or max(4 * k, 40)
        with self._lock:
            sid, _, _, dim, _ = self.require(name)
            vec_ranked: list[tuple[int, float]] = []
            txt_ranked: list[tuple[int, float]] = []
            if vector is not None:
                q = self._vectors(name, dim, [vector])[0]
                vec_ranked = self._vector_hits(sid, name, q, n_cand, where, args, now)
            if text:
                txt_ranked = self._text_hits(sid, text, n_cand, where, args, keep_one=vector is None)
            return self._fuse(
                name, vec_ranked, txt_ranked, k, both=vector is not None and bool(text), now=now
            )

    def _vector_hits(
        self, sid: int, name: str, q: Any, n_cand: int, where: str, args: list[Any], now: float
    ) -> list[tuple[int, float]]:
        index = self.index(name)
        if where:
            where += " AND (i.expires_at IS NULL OR i.expires_at > ?)"
            # A filter many rows pass: check it on an oversampled candidate list (cost: the candidates).
            for want in (n_cand * 8, n_cand * 32):
                found, scores = index.search(q, want)
                ok: set[int] = set()
                for lo in range(0, len(found), 900):
                    part = [int(i) for i in found[lo : lo + 900]]
                    marks = ",".join("?" * len(part))
                    ok.update(
                        r[0]
                        for r in self.db.execute(
                            f"SELECT i.id FROM mem_items i WHERE i.id IN ({marks}){where}",
                            (*part, *args, now),
                        )
                    )
                hits = [(int(i), float(s)) for i, s in zip(found, scores, strict=True) if int(i) in ok]
                if len(hits) >= n_cand or want >= len(index):
                    return hits[:n_cand]
            # A selective filter: which rows pass? few: exact search over just them; many: oversample more
            allowed = self._allowed(sid, where, [*args, now], limit=PREFILTER_MAX + 1)
            if len(allowed) <= PREFILTER_MAX:
                if not allowed:
                    return []
                ids, mat = self._load(allowed, index.dim)
                found, scores = top_k(ids, mat, q, n_cand)
                return [(int(i), float(s)) for i, s in zip(found, scores, strict=True)]
            ok = set(allowed)
            want = n_cand * 4
            while True:
                found, scores = index.search(q, want)
                hits = [(int(i), float(s)) for i, s in zip(found, scores, strict=True) if int(i) in ok]
                if len(hits) >= n_cand or want >= len(index):
                    return hits[:n_cand]
                want *= 4
        found, scores = index.search(q, n_cand)  # expired rows drop out in _fuse (they are few)
        return [(int(i), float(s)) for i, s in zip(found, scores, strict=True)]

    def _allowed(self, sid: int, where: str, args: list[Any], *, limit: int) -> list[int]:
        return [
            r[0]
            for r in self.db.execute(
                f"SELECT i.id FROM mem_items i WHERE i.space = ?{where} ORDER BY i.id LIMIT ?",
                (sid, *args, limit),
            )
        ]

    def _text_hits(
        self, sid: int, text: str, n_cand: int, where: str, args: list[Any], *, keep_one: bool = True
    ) -> list[tuple[int, float]]:
        fts = self._ensure_fts(self.db, sid)
        query = fts_query(self._selective(sid, fts, query_words(text), keep_one=keep_one))
        if query is None:
            return []
        try:
            if where:
                rows = self.db.execute(
                    f"SELECT f.rowid, f.rank FROM {fts} f JOIN mem_items i ON i.id = f.rowid "
                    f"WHERE {fts} MATCH ?{where} ORDER BY f.rank LIMIT ?",
                    (query, *args, n_cand),
                ).fetchall()
            else:  # FTS5's own top-k path (ORDER BY rank: bm25)
                rows = self.db.execute(
                    f"SELECT rowid, rank FROM {fts} WHERE {fts} MATCH ? ORDER BY rank LIMIT ?",
                    (query, n_cand),
                ).fetchall()
        except sqlite3.OperationalError as exc:  # a query FTS5 cannot parse: no text results
            if "fts5" in str(exc).lower() or "syntax" in str(exc).lower():
                return []
            raise
        return [(int(r[0]), -float(r[1])) for r in rows]

    def _selective(self, sid: int, fts: str, words: list[str], *, keep_one: bool) -> list[str]:
        """The rarest of ``words``, while their chunk counts add up to at most ``POSTINGS_MAX``."""
        known = self._df.setdefault(sid, {})
        if len(known) > 50_000:
            known.clear()

        def count(w: str) -> int:
            if w not in known:
                row = self.db.execute(f"SELECT doc FROM {fts}_v WHERE term = ?", (w,)).fetchone()
                known[w] = int(row[0]) if row else 0
            return known[w]

        return rare_words(words, count, keep_one=keep_one)

    def _fuse(
        self,
        name: str,
        vec: list[tuple[int, float]],
        txt: list[tuple[int, float]],
        k: int,
        *,
        both: bool,
        now: float,
    ) -> list[Hit]:
        wanted = list(dict.fromkeys([rid for rid, _ in vec] + [rid for rid, _ in txt]))
        if not wanted:
            return []
        rows = {
            r[0]: r
            for r in self.db.execute(
                "SELECT id, key, text, source, metadata, doc FROM mem_items "
                f"WHERE id IN ({','.join('?' * len(wanted))}) AND (expires_at IS NULL OR expires_at > ?)",
                (*wanted, now),
            )
        }
        return fuse(name, vec, txt, rows, k, both=both)

    # -- documents (ingestion) ----------------------------------------------------------------
    def doc_hashes(self, name: str) -> dict[str, str]:
        with self._lock:
            row = self._space_row(name)
            if row is None:
                return {}
            return dict(
                self.db.execute("SELECT doc, hash FROM mem_docs WHERE space = ?", (row[0],)).fetchall()
            )

    def stage(self, run: str, doc: str, first: int, chunks: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Stage chunks ``first, first+1, ...`` of ``doc`` for run ``run`` (invisible to searches)."""
        rows = [(run, doc, first + i, text, dump(meta)) for i, (text, meta) in enumerate(chunks)]
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO mem_staging (run, doc, n, text, metadata) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def unstage(self, run: str, doc: str | None = None) -> None:
        with self._tx() as db:
            if doc is None:
                db.execute("DELETE FROM mem_staging WHERE run = ?", (run,))
            else:
                db.execute("DELETE FROM mem_staging WHERE run = ? AND doc = ?", (run, doc))

    def staged_texts(self, run: str, doc: str, lo: int, hi: int) -> list[tuple[int, str]]:
        with self._lock:
            return [
                (r[0], r[1])
                for r in self.db.execute(
                    "SELECT n, text FROM mem_staging WHERE run = ? AND doc = ? AND n >= ? AND n < ? "
                    "ORDER BY n",
                    (run, doc, lo, hi),
                )
            ]

    def stage_vectors(self, run: str, doc: str, name: str, rows: Sequence[tuple[int, Any]]) -> None:
        with self._tx() as db:
            _, _, _, dim, _ = self.require(name)
            mat = self._vectors(name, dim, [v for _, v in rows])
            db.executemany(
                "UPDATE mem_staging SET vector = ? WHERE run = ? AND doc = ? AND n = ?",
                [(mat[i].tobytes(), run, doc, n) for i, (n, _) in enumerate(rows)],
            )

    def commit_doc(
        self, name: str, run: str, doc: str, *, hash: str, source: str, now: float | None = None
    ) -> int:
        """Replace ``doc``'s chunks in the space by the staged ones, in one transaction; returns the count."""
        now = time.time() if now is None else now
        with self._tx() as db:
            sid, _, _, _, version = self.require(name)
            missing = db.execute(
                "SELECT count(*) FROM mem_staging WHERE run = ? AND doc = ? AND vector IS NULL", (run, doc)
            ).fetchone()[0]
            if missing:
                raise StoreError(f"{doc}: {missing} staged chunks have no vector yet")
            old = self._delete_rows(db, sid, "doc = ?", (doc,))
            db.execute(
                "INSERT INTO mem_items (space, key, doc, source, text, tag, metadata, vector, created_at) "
                "SELECT ?, doc || '#' || n, doc, ?, text, ?, metadata, vector, ? FROM mem_staging "
                "WHERE run = ? AND doc = ? ORDER BY n",
                (sid, source, f"s{sid}", now, run, doc),
            )
            count = db.execute(
                "SELECT count(*) FROM mem_staging WHERE run = ? AND doc = ?", (run, doc)
            ).fetchone()[0]
            fts = self._ensure_fts(db, sid)
            db.execute(
                f"INSERT INTO {fts}(rowid, text) SELECT id, text FROM mem_items WHERE space = ? AND doc = ?",
                (sid, doc),
            )
            db.execute("DELETE FROM mem_staging WHERE run = ? AND doc = ?", (run, doc))
            db.execute(
                "INSERT OR REPLACE INTO mem_docs (space, doc, hash, chunks, source, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (sid, doc, hash, count, source, now),
            )
            self._bump(db, sid, version, removed=old)
            index = self._indexes.get(sid)
            if index is not None:
                index.version = -2  # added rows: let the next search load them from SQLite
        return int(count)

    def remove_docs(self, name: str, docs: Sequence[str]) -> int:
        """Delete documents (all their chunks) from a collection; returns how many chunks went."""
        if not docs:
            return 0
        with self._tx() as db:
            sid, _, _, _, version = self.require(name)
            ids: list[int] = []
            for d in docs:
                ids += self._delete_rows(db, sid, "doc = ?", (d,))
                db.execute("DELETE FROM mem_docs WHERE space = ? AND doc = ?", (sid, d))
            self._bump(db, sid, version, removed=ids)
        return len(ids)
