"""The vector index of one space (a collection or a memory namespace), kept in step with SQLite.

SQLite holds every vector (a float32 BLOB per row): it is the truth, and the only copy that must survive.
This process keeps a search structure built from those rows:

* **exact** (numpy): the space's vectors as one float32 matrix; a query is one matrix-vector product.
  Used below ``ann_min`` vectors, and for filtered searches whose filter leaves few candidates.
* **ANN** (usearch HNSW, ``pip install podium[memory]``): from ``ann_min`` vectors on. It is saved beside
  the database (``<db>.vectors/<space>.usearch``) so another process loads it instead of rebuilding, and
  brought up to date from SQLite (rows added or deleted since) whenever the space's version moved.

See docs/memory.md for the measurements behind this choice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..models.errors import MissingExtraError

HINT = "the memory layer needs numpy (and usearch for large collections): pip install podium[memory]"


def np() -> Any:
    """numpy, or ``MissingExtraError`` naming the install command."""
    try:
        import numpy
    except ImportError:
        raise MissingExtraError(f"numpy is not installed: {HINT}") from None
    return numpy


def have_usearch() -> bool:
    try:
        import usearch.index  # noqa: F401
    except ImportError:
        return False
    return True


def as_matrix(vectors: Any, dim: int | None = None) -> Any:
    """``vectors`` (lists or arrays) as a C-contiguous float32 matrix, rows scaled to unit length."""
    n = np()
    m = n.ascontiguousarray(n.asarray(vectors, dtype=n.float32))
    if m.ndim == 1:
        m = m.reshape(1, -1)
    if dim is not None and m.shape[1] != dim:
        raise ValueError(f"expected {dim}-d vectors, got {m.shape[1]}-d")
    norms = n.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return m / norms


RowLoader = Callable[[Any], tuple[Any, Any]]
"""``load(ids or None)`` -> (ids int64 array, float32 matrix) of the space's rows (all when None)."""


class SpaceVectors:
    """Exact or ANN search over one space's vectors. Not thread-safe: the store serialises access."""

    def __init__(
        self, space_id: int, dim: int, *, ann_min: int, folder: Path | None, dtype: str = "f16"
    ) -> None:
        self.space_id = space_id
        self.dim = dim
        self.ann_min = ann_min
        self.folder = folder
        self.dtype = dtype
        self.version = -1  # the space version this index reflects (-1: never synced)
        n = np()
        self._ids = n.zeros(64, dtype=n.int64)  # exact mode: row ids (ascending) in a growable buffer
        self._mat = n.zeros((64, dim), dtype=n.float32)
        self._n = 0
        self.ann: Any = None  # usearch.index.Index once the space is large
        self.unsaved = 0  # vectors added to the ANN index since it was last saved

    @property
    def ids(self) -> Any:
        return self._ids[: self._n]

    @property
    def mat(self) -> Any:
        return self._mat[: self._n]

    def _set(self, ids: Any, mat: Any) -> None:
        n = np()
        cap = max(64, 1 << (len(ids) - 1).bit_length() if len(ids) else 64)
        self._ids = n.zeros(cap, dtype=n.int64)
        self._mat = n.zeros((cap, self.dim), dtype=n.float32)
        self._ids[: len(ids)] = ids
        self._mat[: len(ids)] = mat
        self._n = len(ids)

    # -- size and mode ------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.ann.size) if self.ann is not None else self._n

    @property
    def mode(self) -> str:
        return "ann" if self.ann is not None else "exact"

    def _paths(self) -> tuple[Path, Path] | None:
        if self.folder is None:
            return None
        return self.folder / f"{self.space_id}.usearch", self.folder / f"{self.space_id}.json"

    def _new_ann(self) -> Any:
        from usearch.index import Index

        return Index(
            ndim=self.dim,
            metric="ip",
            dtype=self.dtype,
            connectivity=16,
            expansion_add=128,
            expansion_search=96,
        )

    # -- keeping up with SQLite ---------------------------------------------------------------
    def sync(self, present: Any, load: RowLoader, version: int) -> None:
        """Make the index hold exactly the rows ``present`` (ascending ids); ``load`` reads vectors."""
        n = np()
        if self.ann is None and self.version == -1 and len(present) >= self.ann_min and have_usearch():
            self._restore()
        have = self._keys()
        removed = n.setdiff1d(have, present, assume_unique=True)
        added = n.setdiff1d(present, have, assume_unique=True)
        if len(removed):
            self.remove(removed)
        if len(added):
            ids, mat = load(added)
            self.add(ids, mat)
        self.version = version

    def _keys(self) -> Any:
        n = np()
        if self.ann is None:
            return self.ids
        keys = n.asarray(self.ann.keys, dtype=n.int64)
        keys.sort()
        return keys

    def add(self, ids: Any, mat: Any) -> None:
        """Add rows, or replace the vectors of ids already held; switches to ANN once the space reaches
        ``ann_min`` vectors."""
        n = np()
        if not len(ids):
            return
        ids = n.asarray(ids, dtype=n.int64)
        if self.ann is not None:
            held = [int(i) for i in ids if self.ann.contains(int(i))]
            for i in held:
                self.ann.remove(i)
            self.ann.add(ids, mat, threads=2)
            self.unsaved += len(ids)
            return
        if self._n + len(ids) >= self.ann_min and have_usearch():
            self.remove(ids)
            self.ann = self._new_ann()
            if self._n:
                self.ann.add(self.ids, self.mat, threads=2)
            self.ann.add(ids, mat, threads=2)
            self.unsaved += self._n + len(ids)
            self._set(n.zeros(0, dtype=n.int64), n.zeros((0, self.dim), dtype=n.float32))
            return
        cur = self.ids
        pos = n.searchsorted(cur, ids)
        held = (
            (pos < len(cur)) & (cur[n.minimum(pos, len(cur) - 1)] == ids)
            if len(cur)
            else n.zeros(len(ids), bool)
        )
        if held.any():
            self._mat[pos[held]] = mat[held]
            ids, mat = ids[~held], mat[~held]
            if not len(ids):
                return
        if (self._n and ids.min() <= cur[-1]) or (len(ids) > 1 and (n.diff(ids) <= 0).any()):
            all_ids = n.concatenate([cur, ids])
            order = n.argsort(all_ids, kind="stable")
            self._set(all_ids[order], n.concatenate([self.mat, mat])[order])
            return
        end = self._n + len(ids)
        if end > len(self._ids):  # grow by doubling: appends cost amortised O(1) per row
            cap = 1 << (end - 1).bit_length()
            ids_buf = n.zeros(cap, dtype=n.int64)
            mat_buf = n.zeros((cap, self.dim), dtype=n.float32)
            ids_buf[: self._n] = self.ids
            mat_buf[: self._n] = self.mat
            self._ids, self._mat = ids_buf, mat_buf
        self._ids[self._n : end] = ids
        self._mat[self._n : end] = mat
        self._n = end

    def remove(self, ids: Any) -> None:
        n = np()
        if self.ann is not None:
            for i in ids:
                self.ann.remove(int(i))
            self.unsaved += len(ids)
            return
        keep = ~n.isin(self.ids, ids)
        if keep.all():
            return
        self._set(self.ids[keep], self.mat[keep])

    # -- search -------------------------------------------------------------------------------
    def search(self, query: Any, k: int) -> tuple[Any, Any]:
        """The ``k`` nearest rows: (ids, cosine scores), best first."""
        n = np()
        if k <= 0 or len(self) == 0:
            return n.zeros(0, dtype=n.int64), n.zeros(0, dtype=n.float32)
        if self.ann is not None:
            found = self.ann.search(query, min(k, len(self)))
            return n.asarray(found.keys, dtype=n.int64), 1.0 - n.asarray(found.distances, dtype=n.float32)
        return top_k(self.ids, self.mat, query, k)

    # -- persistence of the ANN index ---------------------------------------------------------
    def save(self) -> None:
        """Write the ANN index beside the database (atomically), if it changed since it was saved."""
        paths = self._paths()
        if self.ann is None or paths is None or not self.unsaved:
            return
        index_path, meta_path = paths
        index_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = index_path.with_suffix(f".tmp{os.getpid()}")
        self.ann.save(str(tmp))
        os.replace(tmp, index_path)
        meta_path.write_text(json.dumps({"dim": self.dim, "dtype": self.dtype, "count": len(self)}))
        self.unsaved = 0

    def _restore(self) -> None:
        paths = self._paths()
        if paths is None or not paths[0].exists():
            return
        try:
            meta = json.loads(paths[1].read_text())
            if meta.get("dim") != self.dim or meta.get("dtype") != self.dtype:
                return
            ann = self._new_ann()
            ann.load(str(paths[0]))
        except Exception:  # a torn or foreign file: rebuild from SQLite instead
            return
        self.ann = ann

    def drop_files(self) -> None:
        """Delete the saved index (the space is gone)."""
        paths = self._paths()
        if paths is None:
            return
        for p in paths:
            try:
                p.unlink()
            except FileNotFoundError:
                pass


def top_k(ids: Any, mat: Any, query: Any, k: int) -> tuple[Any, Any]:
    """Exact search: the ``k`` rows of ``mat`` with the largest dot product with ``query``."""
    n = np()
    if not len(ids):
        return n.zeros(0, dtype=n.int64), n.zeros(0, dtype=n.float32)
    scores = mat @ query
    k = min(k, len(ids))
    part = n.argpartition(-scores, k - 1)[:k] if k < len(ids) else n.arange(len(ids))
    order = part[n.argsort(-scores[part], kind="stable")]
    return ids[order], scores[order]
