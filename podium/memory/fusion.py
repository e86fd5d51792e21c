"""What every memory store shares: reciprocal rank fusion, the rare-word choice of BM25 queries, hits made
from rows, the spaces' checks and their errors. The SQLite and PostgreSQL stores differ only in where the
rows, postings and vectors live; ranking and errors are the same code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import DimensionMismatchError, UnknownCollectionError
from .types import Hit
from .vectors import as_matrix

RRF_K = 60
"""The constant of reciprocal rank fusion: score = sum over result lists of 1 / (RRF_K + rank)."""

POSTINGS_MAX = 2_500
"""BM25 queries use the query's words from the rarest on while the chunks containing them add up to at most
this many: frequent words add little to the ranking and cost a score for each chunk they occur in (about
4 microseconds here), so a large collection's query stays bounded; small collections are not affected. A
text-only search keeps at least the rarest word; a hybrid one relies on its vectors when every word is
that frequent."""

PREFILTER_MAX = 20_000
"""A filtered vector search whose filter leaves at most this many rows searches those rows exactly."""

Row = tuple[Any, ...]
"""An item's row as the stores read it for hits: (id, key, text, source, metadata, doc)."""


def rare_words(words: Sequence[str], count: Callable[[str], int], *, keep_one: bool) -> list[str]:
    """The rarest of ``words`` (``count(word)``: how many chunks hold it), while their counts add up to at
    most ``POSTINGS_MAX``; words no chunk holds are left out."""
    counts = {w: count(w) for w in words}
    rare = sorted((w for w in words if counts[w] > 0), key=lambda w: counts[w])
    kept: list[str] = []
    total = 0
    for w in rare:
        if (keep_one and not kept) or total + counts[w] <= POSTINGS_MAX:
            kept.append(w)
            total += counts[w]
    return kept


def fuse(
    name: str,
    vec: list[tuple[int, float]],
    txt: list[tuple[int, float]],
    rows: Mapping[int, Row],
    k: int,
    *,
    both: bool,
) -> list[Hit]:
    """The best ``k`` hits of a vector and a full-text result list (row ids with scores, best first).

    Ids missing from ``rows`` (expired or deleted meanwhile) drop out before ranks are counted. With
    ``both``, scores are reciprocal rank fusion; otherwise the one list's own scores.
    """
    vec = [h for h in vec if h[0] in rows]
    txt = [h for h in txt if h[0] in rows]
    vrank = {rid: r for r, (rid, _) in enumerate(vec, 1)}
    trank = {rid: r for r, (rid, _) in enumerate(txt, 1)}
    if both:
        scores: dict[int, float] = {}
        for ranks in (vrank, trank):
            for rid, r in ranks.items():
                scores[rid] = scores.get(rid, 0.0) + 1.0 / (RRF_K + r)
        order = sorted(scores, key=lambda rid: (-scores[rid], rid))[:k]
    else:
        ranked = vec or txt
        scores = dict(ranked)
        order = [rid for rid, _ in ranked[:k]]
    return [
        hit(name, rows[rid], round(scores[rid], 6), vector_rank=vrank.get(rid), text_rank=trank.get(rid))
        for rid in order
    ]


def hit(
    name: str, row: Row, score: float, *, vector_rank: int | None = None, text_rank: int | None = None
) -> Hit:
    """A hit from an item's row ``(id, key, text, source, metadata, doc)``; metadata is JSON text or a
    dict."""
    meta = row[4]
    return Hit(
        id=f"{short(name)}:{row[1]}",
        key=row[1],
        text=row[2],
        score=score,
        source=row[3],
        metadata=json.loads(meta) if isinstance(meta, str | bytes) else dict(meta),
        doc=row[5],
        vector_rank=vector_rank,
        text_rank=text_rank,
    )


def check_space(name: str, held_model: str, held_dim: int, model: str, dim: int) -> None:
    """``DimensionMismatchError`` unless a space holding ``held_dim``-d vectors of ``held_model`` takes
    vectors of ``model`` and ``dim``."""
    if held_dim != dim or held_model != model:
        raise DimensionMismatchError(
            f"{what(name)} holds {held_dim}-d vectors of {held_model!r}, but the embedder now gives {dim}-d "
            f"vectors of {model!r}: re-create it (delete it and ingest again) or configure its embedder"
        )


def unknown(name: str, known: Sequence[str]) -> UnknownCollectionError:
    """The error for a space that does not exist, naming the known ones of its kind."""
    kind, _, name_short = name.partition(":")
    same = [k.partition(":")[2] for k in known if k.startswith(kind + ":")]
    listing = ", ".join(same) if same else "none yet"
    return UnknownCollectionError(f"unknown {kind} {name_short!r} (known: {listing})")


def unit_vectors(name: str, dim: int, vectors: Any) -> Any:
    """``vectors`` as unit-length float32 rows of ``dim``; ``DimensionMismatchError`` otherwise."""
    try:
        return as_matrix(vectors, dim)
    except ValueError as exc:
        raise DimensionMismatchError(f"{what(name)}: {exc}") from None


def dump(value: Any) -> str:
    """Metadata as canonical JSON text."""
    return json.dumps(value or {}, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def short(name: str) -> str:
    """``collection:kb`` -> ``kb``: chunk ids read ``kb:guide.md#3``."""
    return name.partition(":")[2]


def what(name: str) -> str:
    """``collection:kb`` -> ``collection 'kb'`` (for messages)."""
    kind, _, name_short = name.partition(":")
    return f"{kind} {name_short!r}"
