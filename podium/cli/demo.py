"""``podium demo``: a customer-support triage flow run end to end on the embedded defaults.

Each ticket is classified, its customer looked up, a reply drafted and a refund computed; a refund above
500 waits for a human's approval (the reviewer may lower it); then the reply is sent through a flaky mail
API that fails once and is retried. Everything is journaled in the local store, so ``podium show`` can
replay what happened step by step.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import BaseModel
from rich.console import Console
from rich.prompt import Prompt
from rich.table import Table
from rich.text import Text

import podium

from ..client import Client
from ..config import Settings
from ..models import ModelRequest, register
from ..models.probe import probe
from ..models.registry import Models
from ..types import RunStatus
from . import render


class Ticket(BaseModel):
    id: str
    email: str
    text: str


class Customer(BaseModel):
    email: str
    name: str
    tier: Literal["free", "pro", "enterprise"]
    orders_total: float


class Resolution(BaseModel):
    ticket: str
    category: str
    refund: float
    reply: str
    approved_by: str | None = None
    message_id: str


_CRM = {
    "ada@example.com": Customer(email="ada@example.com", name="Ada", tier="enterprise", orders_total=12800.0),
    "bob@example.com": Customer(email="bob@example.com", name="Bob", tier="pro", orders_total=640.0),
    "cy@example.com": Customer(email="cy@example.com", name="Cy", tier="free", orders_total=0.0),
}


LABELS = {
    "refund": "The customer wants a refund or their money back, or was charged wrongly or twice.",
    "bug": "Something is broken: the app crashes, shows an error, or a page does not work.",
    "question": "The customer asks how to do something or where to find a feature.",
}


def rule_classifier(texts: list[str]) -> list[list[float]]:
    """Stand-in for the embedded embedder when it is not installed: keyword features."""
    return [_features(t) for t in texts]


def _features(text: str) -> list[float]:
    t = text.lower()
    return [
        float(any(w in t for w in ("refund", "charged", "money back", "invoice"))),
        float(any(w in t for w in ("error", "crash", "broken", "bug"))),
        float(any(w in t for w in ("how", "where", "find", "feature"))),
    ]


def _unused(request: ModelRequest) -> str:
    t = request.messages[-1].content.lower()
    if any(w in t for w in ("refund", "charged", "money back", "invoice")):
        return "refund"
    if any(w in t for w in ("error", "crash", "broken", "bug")):
        return "bug"
    return "question"


def template_writer(request: ModelRequest) -> str:
    """Stand-in for the embedded model when it is not installed: a template reply."""
    return "Thank you for contacting us. " + request.messages[-1].content.split("Facts:", 1)[-1].strip()


@podium.step
async def lookup_customer(email: str) -> Customer:
    await asyncio.sleep(0.05)  # a CRM call
    return _CRM.get(email) or Customer(email=email, name=email.split("@")[0], tier="free", orders_total=0.0)


@podium.step
def refund_amount(category: str, customer: Customer, text: str) -> float:
    if category != "refund":
        return 0.0
    digits = [float(w.strip("$€.,")) for w in text.split() if w.strip("$€.,").replace(".", "", 1).isdigit()]
    return min(digits[0] if digits else 50.0, customer.orders_total)


async def draft_reply(ctx: podium.Context, category: str, customer: Customer, refund: float) -> str:
    """The model drafts; a guardrail (plain code) keeps the draft only if it states the facts."""
    if category == "refund":
        facts, must = f"we refunded {refund:.2f} dollars to your card", [f"{refund:.2f}"]
    elif category == "bug":
        facts, must = "our engineers are fixing the problem you reported", ["engineer"]
    else:
        facts, must = "you will find a step-by-step guide in our help centre", ["help centre"]
    draft = await ctx.model("smart").generate(
        f"Note to {customer.name}: {facts}.",
        system="You are a support agent. Rewrite the note as a friendly two-sentence email. "
        "Keep every fact and number.",
        max_tokens=60,
    )
    draft = " ".join(draft.split())
    if all(m.lower() in draft.lower() for m in must):
        return draft
    return f"Hi {customer.name}, {facts}. Thank you for your patience!"  # the model missed a fact


@podium.step(retries=3)
async def send_reply(email: str, text: str) -> str:
    """A flaky mail API: the first attempt times out, the retry succeeds. The idempotency key
    (stable across attempts) would let the real API deduplicate."""
    info = podium.current_step()
    assert info is not None
    if info.attempt == 1:
        raise ConnectionError("mail API timed out")
    await asyncio.sleep(0.02)
    return f"msg-{info.idempotency_key[-12:].replace('/', '-')}"


@podium.flow(name="support_triage")
async def support_triage(ctx: podium.Context, ticket: Ticket) -> Resolution:
    category = await ctx.model("embed").classify(ticket.text, LABELS)  # nearest label description
    customer, _ = await ctx.gather(lookup_customer(ticket.email), ctx.step("log", _log, ticket.id))
    refund = await refund_amount(category, customer, ticket.text)
    reply = await draft_reply(ctx, category, customer, refund)
    approved_by = None
    if refund > 500:
        decision = await ctx.approval(
            "refund", payload={"amount": refund, "reply": reply, "customer": customer.name}
        )
        if decision:
            refund = float(decision.payload["amount"])
            reply = await draft_reply(ctx, category, customer, refund)
            approved_by = decision.by
        else:
            refund = 0.0
            reply = f"Hi {customer.name}, a colleague will contact you about your refund request."
    message_id = await send_reply(ticket.email, reply)
    return Resolution(
        ticket=ticket.id,
        category=category,
        refund=refund,
        reply=reply,
        approved_by=approved_by,
        message_id=message_id,
    )


def _log(ticket_id: str) -> str:
    return f"ticket {ticket_id} received"


TICKETS = [
    Ticket(id="T-1001", email="bob@example.com", text="The export button shows an error and the app crashes"),
    Ticket(id="T-1002", email="ada@example.com", text="I was charged twice, please refund 900 dollars"),
    Ticket(id="T-1003", email="cy@example.com", text="How do I invite a teammate?"),
]


def _status_table(rows: list[tuple[Ticket, str, RunStatus]]) -> Table:
    table = Table(title="support tickets", title_justify="left", header_style="bold")
    for col in ("ticket", "customer", "run", "status"):
        table.add_column(col)
    for t, run_id, status in rows:
        table.add_row(t.id, t.email, run_id, render.status_text(status))
    return table


async def run_demo(settings: Settings, *, interactive: bool, console: Console) -> None:
    console.print(Text("Podium demo: customer-support triage", style="bold"))
    console.print(f"store: {settings.database_url}", style="dim")
    models = Models.from_config(settings.config)
    ok, detail = await probe(models, models.spec("smart"))
    if ok:
        console.print(
            "models: the embedded multilingual-e5 classifies, SmolLM2-135M-Instruct drafts (on the CPU)\n",
            style="dim",
        )
    else:
        register("embed", rule_classifier, kind="embedding")
        register("smart", template_writer)
        console.print(f"models: rule-based stand-ins ({detail})\n", style="yellow", markup=False)
    async with Client(settings) as client:
        handles = [await client.start(support_triage, t) for t in TICKETS]
        decided: set[str] = set()
        while True:
            rows = [(t, h.id, (await h.get()).status) for t, h in zip(TICKETS, handles, strict=True)]
            if all(s.terminal for _, _, s in rows):
                break
            for p in await client.pending_approvals():
                if p.run_id in decided or p.run_id not in {h.id for h in handles}:
                    continue
                decided.add(p.run_id)
                console.print(_status_table(rows))
                await _review(client, p.run_id, p.payload, interactive, console)
            await asyncio.sleep(0.1)
        console.print(
            _status_table([(t, h.id, (await h.get()).status) for t, h in zip(TICKETS, handles, strict=True)])
        )
        for t, h in zip(TICKETS, handles, strict=True):
            res = await h.result()
            console.print(Text.assemble(("✔ ", "green"), (t.id, "bold"), f" {res.category}: ", res.reply))
        big = handles[1]
        console.print()
        console.print(
            render.run_panel(
                await client.get(big.id), await client.timeline(big.id), [], await client.usage(big.id)
            )
        )
        console.print(
            f"\nEverything above is journaled. Try:\n  podium runs\n  podium show {big.id} --journal\n",
            style="dim",
        )


async def _review(
    client: Client, run_id: str, payload: dict[str, object], interactive: bool, console: Console
) -> None:
    console.print(
        Text.assemble(
            ("approval needed ", "bold magenta"),
            f"run {run_id}: refund {payload['amount']} to {payload['customer']}\n",
            ("  draft: ", "dim"),
            str(payload["reply"]),
        )
    )
    if interactive:
        choice = Prompt.ask(
            "approve, edit amount, or reject?", choices=["a", "e", "r"], default="a", console=console
        )
        if choice == "r":
            await client.reject(run_id, by="you", comment="rejected in the demo")
            return
        if choice == "e":
            amount = Prompt.ask("refund amount", default=str(payload["amount"]), console=console)
            await client.approve(run_id, payload={**payload, "amount": float(amount)}, by="you")
            return
        await client.approve(run_id, by="you")
        return
    edited = {**payload, "amount": 750.0}
    console.print(
        "  reviewer (automatic, --yes): approves with the amount lowered to 750.00", style="magenta"
    )
    await client.approve(run_id, payload=edited, by="demo-reviewer", comment="partial refund")
