"""Retrieval-augmented answers with citations (``podium ask``, ``examples/rag_qa.py``).

The model sees numbered passages and is asked to cite them as ``[n]``. Small models (the embedded SmolLM2
has 135M parameters) cite unreliably, so the sources listed with an answer are computed from the retrieved
chunks, not taken on the model's word: a passage counts as used when the answer cites an existing number
(``cited``) or shares enough distinctive words with it (``matched``); if neither, the best retrieved
passage is listed as what the answer was given (``retrieved``). Citations of passages that do not exist
are removed from the text, and so are repeated sentences (small models tend to loop).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..workflow.flow import flow
from .types import Hit

if TYPE_CHECKING:
    from ..workflow.context import Context

PASSAGE_CHARS = 700
"""Characters of each retrieved chunk shown to the model (SmolLM2 reads 2,048 tokens in all)."""

SYSTEM = (
    "You answer questions using only the numbered passages. Answer in one to three sentences. "
    "After each fact, write the number of the passage it comes from in square brackets, like [1]. "
    "If the passages do not contain the answer, say that you do not know."
)

_CITE = re.compile(r"\[(\d{1,2})\]")
_WORD = re.compile(r"[^\W_]{4,}", re.UNICODE)
_COMMON = frozenset(
    {"this", "that", "with", "from", "have", "been", "were", "they", "their", "there", "which", "what",
     "when", "where", "will", "would", "could", "should", "about", "into", "your", "also", "than", "then",
     "them", "these", "those", "does", "passage", "passages", "answer", "question"}
)  # fmt: skip


def prompt_for(question: str, hits: list[Hit]) -> str:
    passages = "\n\n".join(f"[{i}] {' '.join(h.text.split())[:PASSAGE_CHARS]}" for i, h in enumerate(hits, 1))
    return f"Passages:\n{passages}\n\nQuestion: {question}\nAnswer (cite passages like [1]):"


def _words(text: str) -> set[str]:
    return {w for w in (m.lower() for m in _WORD.findall(text)) if w not in _COMMON}


def sources_used(answer: str, hits: list[Hit]) -> list[tuple[int, str]]:
    """(passage number, how) for the passages the answer used: ``cited``, ``matched`` or ``retrieved``."""
    cited = sorted({int(n) for n in _CITE.findall(answer) if 1 <= int(n) <= len(hits)})
    if cited:
        return [(n, "cited") for n in cited]
    said = _words(_CITE.sub(" ", answer))
    shared = [len(said & _words(h.text[:PASSAGE_CHARS])) for h in hits]
    best = max(shared, default=0)
    if said and best >= 3:  # the passages the answer draws on most, not every one it brushes against
        return [(i, "matched") for i, n in enumerate(shared, 1) if n >= max(3, 0.6 * best)]
    return [(1, "retrieved")] if hits else []


def tidy(answer: str, sentences: int = 4) -> str:
    """The answer without repeated sentences (small models loop), at most ``sentences`` of them."""
    seen: set[str] = set()
    out: list[str] = []
    for s in re.split(r"(?<=[.!?])\s+", answer.strip()):
        key = " ".join(re.findall(r"\w+", _CITE.sub("", s).lower()))
        if not key or key in seen:
            continue
        seen.add(key)
        out.append(s)
        if len(out) == sentences:
            break
    return " ".join(out)


def clean(answer: str, n: int) -> str:
    """The answer without citations of passages that do not exist."""
    text = _CITE.sub(lambda m: m.group(0) if 1 <= int(m.group(1)) <= n else "", answer)
    return re.sub(r"[ \t]+([.,;:])", r"\1", re.sub(r"[ \t]{2,}", " ", text)).strip()


async def answer_question(
    ctx: Context,
    question: str,
    *,
    collection: str,
    k: int = 4,
    model: str = "default",
    filters: dict[str, Any] | None = None,
    max_tokens: int = 160,
) -> dict[str, Any]:
    """Retrieve (a journaled step), answer with ``model`` (a journaled model step), list the sources."""
    hits = await ctx.retrieve(question, collection=collection, k=k, filters=filters)
    if not hits:
        return {"answer": f"I found nothing about that in {collection!r}.", "sources": []}
    text = await ctx.model(model).generate(
        prompt_for(question, hits), system=SYSTEM, max_tokens=max_tokens, temperature=0.0
    )
    text = tidy(text)
    used = sources_used(text, hits)
    return {
        "answer": clean(text, len(hits)) or "I do not know.",
        "sources": [
            {
                "n": n,
                "id": hits[n - 1].id,
                "source": hits[n - 1].source,
                "section": hits[n - 1].metadata.get("section"),
                "score": hits[n - 1].score,
                "how": how,
            }
            for n, how in used
        ],
        "retrieved": [h.id for h in hits],
    }


@flow(name="podium.ask")
async def ask_flow(ctx: Context, job: dict[str, Any]) -> dict[str, Any]:
    """``podium ask``: ``{"question", "collection", "k", "model"}`` -> answer, sources, retrieved ids."""
    return await answer_question(
        ctx,
        str(job["question"]),
        collection=str(job["collection"]),
        k=int(job.get("k") or 4),
        model=str(job.get("model") or "default"),
        filters=job.get("filters"),
    )
