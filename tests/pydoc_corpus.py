"""A real corpus that ships with Python: the help topics of ``pydoc_data.topics`` (79 documents in 3.11),
with questions whose answers are known (the topics that answer them). Used by tests/test_memory_eval.py
and bench/memory.py to measure retrieval: recall@5 and MRR for BM25 alone, vectors alone and hybrid."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

QUERIES: list[tuple[str, set[str]]] = [
    ("how do I catch an exception and always run cleanup code", {"try"}),
    ("what does yield do inside a generator function", {"yield"}),
    ("how to write an anonymous function in one expression", {"lambda"}),
    ("assign to a variable of the enclosing function scope", {"nonlocal"}),
    ("the with statement calls __enter__ and __exit__", {"with", "context-managers"}),
    ("string methods to split text and join a list of strings", {"string-methods"}),
    ("how are floating point literals written with an exponent", {"floating"}),
    ("operator precedence from lowest to highest binding", {"operator-summary"}),
    ("which values are considered false when testing truth", {"truth"}),
    ("extended slicing with a step", {"slicings", "typesseq"}),
    ("dictionary methods get setdefault and update", {"typesmapping"}),
    ("how does the import statement find and load a module", {"import"}),
    ("break out of the nearest enclosing loop", {"break"}),
    ("asynchronous for loops and async with statements", {"async"}),
    ("await suspends the execution of a coroutine", {"await"}),
    ("assert statement for inserting debugging checks", {"assert"}),
    ("augmented assignment such as x += 1", {"augassign"}),
    ("calling a function with keyword arguments and *args", {"calls"}),
    ("class definition with base classes and a class body", {"class"}),
    ("comparisons can be chained like a < b < c", {"comparisons"}),
    ("deleting a name binding with del", {"del"}),
    ("declare that a name refers to a module level variable", {"global"}),
    ("raise an exception with from for exception chaining", {"raise"}),
    ("return leaves a function call with a value", {"return"}),
    ("integer literals in hexadecimal octal and binary", {"integers"}),
    ("imaginary literals for complex numbers", {"imaginary", "numbers"}),
    ("bitwise and, or and exclusive or of integers", {"bitwise"}),
    ("shifting operations move bits left or right", {"shifting"}),
    ("unary minus plus and bitwise inversion", {"unary"}),
    ("the power operator binds more tightly than unary operators", {"power"}),
    ("format specification mini-language for str.format", {"formatstrings"}),
    ("mutable sequence operations append extend insert pop", {"typesseq-mutable"}),
    ("special method __repr__ and __str__ for object representation", {"customization"}),
    ("commands of the interactive debugger pdb", {"debugger"}),
    ("while loop with an else clause", {"while"}),
    ("if elif else conditional execution", {"if"}),
    ("iterate over the elements of a sequence with for", {"for"}),
    ("a null operation that does nothing", {"pass"}),
    ("the None object signals the absence of a value", {"bltin-null-object"}),
    ("the Ellipsis object written as three dots", {"bltin-ellipsis-object"}),
    ("membership test operators in and not in", {"in", "comparisons"}),
    ("how names are bound and resolved in blocks and scopes", {"naming", "execmodel"}),
    ("lexical definition of identifiers and reserved keywords", {"identifiers"}),
    ("continue with the next cycle of the loop", {"continue"}),
    ("list displays and list comprehensions in square brackets", {"lists"}),
    ("dictionary displays with key value pairs in curly braces", {"dict"}),
    ("methods of file objects and modules attributes", {"typesmodules", "specialattrs"}),
    ("the conditional expression x if C else y", {"lambda", "if"}),
]
"""(question, the topics that answer it)."""


def write_topics(folder: Path) -> list[Path]:
    """Every help topic as ``<folder>/<topic>.txt``."""
    import pydoc_data.topics

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in sorted(pydoc_data.topics.topics.items()):
        p = folder / f"{name}.txt"
        p.write_text(text)
        paths.append(p)
    return paths


def topic_of(doc: str | None) -> str:
    return Path(doc or "").stem


def ranked_topics(hits: Sequence[Any]) -> list[str]:
    """Topics in the order their first chunk appears among ``hits``."""
    out: list[str] = []
    for h in hits:
        t = topic_of(h.doc)
        if t not in out:
            out.append(t)
    return out


def score(search: Callable[[str], Sequence[Any]], k: int = 5) -> dict[str, float]:
    """recall@k and MRR (first relevant topic within the top 10) of ``search(question) -> hits``."""
    found = 0
    rr = 0.0
    for question, answers in QUERIES:
        topics = ranked_topics(search(question))
        if any(t in answers for t in topics[:k]):
            found += 1
        for rank, t in enumerate(topics[:10], 1):
            if t in answers:
                rr += 1.0 / rank
                break
    return {f"recall@{k}": found / len(QUERIES), "mrr": rr / len(QUERIES)}
