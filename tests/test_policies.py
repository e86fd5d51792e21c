"""The policy engine: YAML rules (checked with line numbers), Python policies, and every example policy of
``examples/policies`` enforced in real runs on every store: personal data masked before an external model
(a real HTTP server records what it received) and restored in the answer; a refund over $500 that waits for
an approver and then runs once; a model only for public data; budgets per run and per tenant per day; an
answer with a card number blocked; decisions journaled, audited and shown by ``podium show``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import WAIT_SECONDS, close_within, wait_approval

import podium
from podium.models import register as register_model
from podium.policies import (
    Decision,
    Facts,
    PolicyFileError,
    active,
    load,
    parse,
    policy,
    register,
    unregister,
)
from podium.testing import FakeOpenAIServer, ScriptedModel, call

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "policies"
LEDGER: list[str] = []


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    LEDGER.clear()
    active().clear()
    yield
    active().clear()


def example(name: str) -> Any:
    return load(EXAMPLES / f"{name}.yaml")


# -- files ---------------------------------------------------------------------------------------------
def test_every_example_policy_file_is_valid() -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert len(files) >= 6
    for f in files:
        p = load(f)
        assert p.name == f.stem and len(p.version) == 12 and p.rules


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("policy: x\nrules:\n  - at: tool.before\n    then: maybe\n", 4, "`then` must be one of"),
        ("policy: x\nrules:\n  - at: tool.after\n    then: deny\n", 3, "not 'tool.after'"),
        ("policy: x\nrules:\n  - at: tool.before\n    when:\n      a: {gtt: 1}\n    then: deny\n", 5, "gtt"),
        ("policy: x\nrules:\n  - at: model.after\n    then: require_approval\n", 4, "means nothing"),
        ("policy: x\nrules:\n  - at: tool.before\n    then: deny\n    colour: red\n", 5, "'colour'"),
        ("policy: x\nrules: [\n", 3, "not valid YAML"),
        ("policy: x\npolicy: y\nrules: []\n", 2, "appears twice"),
        ("policy: x\nrules: []\n", 2, "non-empty list"),
        (
            "policy: x\nrules:\n  - at: tool.before\n    when:\n      a: {gt: ten}\n    then: deny\n",
            5,
            "number",
        ),
        (
            "policy: x\nrules:\n  - at: tool.before\n    when:\n      a: {matches: '('}\n    then: deny\n",
            5,
            "regular",
        ),
    ],
)
def test_a_bad_file_is_refused_with_its_line(text: str, line: int, words: str) -> None:
    with pytest.raises(PolicyFileError) as info:
        parse(text, where="p.yaml")
    assert str(info.value).startswith(f"p.yaml:{line}:") and words in str(info.value)


def test_the_strictest_decision_wins_and_every_hit_is_kept() -> None:
    p = parse(
        "policy: many\nrules:\n"
        "  - {name: r1, at: tool.before, when: {tool: refund}, then: redact}\n"
        "  - {name: r2, at: tool.before, when: {tool: wire}, then: deny}\n",
    )

    @policy(points=["tool.before"])
    def big(point: str, facts: Facts) -> Decision | None:
        amount = facts.path(("arguments", "amount")) or 0
        return Decision.require_approval("big", rule="amount") if amount > 500 else None

    register(p, big)
    v = active().evaluate("tool.before", Facts({"tool": "refund", "arguments": {"amount": 900}}))
    assert v.action == "require_approval" and v.redacts
    assert [(h.policy, h.action) for h in v.hits] == [("many", "redact"), ("big", "require_approval")]
    assert v.hits[1].version == big.version and len(big.version) == 12
    assert active().evaluate("tool.before", Facts({"tool": "lookup"})).action == "allow"
    unregister("big")
    assert active().evaluate("tool.before", Facts({"tool": "wire"})).action == "deny"


def test_a_policy_that_is_not_one_is_refused() -> None:
    with pytest.raises(podium.UsageError, match="not a policy"):
        register(object())  # type: ignore[arg-type]
    with pytest.raises(podium.UsageError, match="unknown point"):
        policy(lambda p, f: None, points=["model.during"])


def test_cli_check_and_test(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "podium.cli", "policy", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "250"},
        )

    ok = cli("check", str(EXAMPLES / "refund-approval.yaml"))
    assert ok.returncode == 0 and "refund-approval" in ok.stdout and "line 4: big-refunds" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy: bad\nrules:\n  - at: tool.before\n    when:\n      x: {gtt: 1}\n    then: deny\n")
    failed = cli("check", str(bad))
    assert failed.returncode == 1 and "bad.yaml:5:" in failed.stderr and "Traceback" not in failed.stderr
    fired = cli(
        "test",
        str(EXAMPLES / "refund-approval.yaml"),
        "--point",
        "tool.before",
        "--facts",
        json.dumps({"tool": "refund", "arguments": {"amount": 900}}),
    )
    assert fired.returncode == 0 and "big-refunds" in fired.stdout and "require_approval" in fired.stdout
    quiet = cli("test", str(EXAMPLES / "refund-approval.yaml"), "--point", "tool.before", "--facts", "{}")
    assert quiet.returncode == 0 and "allow" in quiet.stdout
    card = cli(
        "test",
        str(EXAMPLES / "block-card-numbers.yaml"),
        "--point",
        "model.after",
        "--facts",
        json.dumps({"text": "your card 4111 1111 1111 1111 is on file"}),
    )
    assert card.returncode == 0 and "card-in-answer" in card.stdout and "deny" in card.stdout
    nojson = cli("test", str(bad.with_name("x.yaml")), "--point", "egress")
    assert nojson.returncode == 1 and "cannot read" in nojson.stderr


# -- in runs ----------------------------------------------------------------------------------------------
@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(default="ok:Sent the receipt to [EMAIL_1], card [CARD_1].") as s:
        yield s


@pytest.fixture
async def client(store_url: str, server: FakeOpenAIServer) -> AsyncIterator[podium.Client]:
    remote = {"provider": "openai", "model": "m1", "base_url": server.url, "max_retries": 0, "cache": False}
    embed = {**remote, "kind": "embedding", "model": "e1"}
    config = {"models": {"vendor": remote, "vendor-embed": embed}}
    c = podium.Client(
        podium.Settings(database_url=store_url, poll_seconds=0.05, lease_seconds=2, config=config)
    )
    await c.open()
    try:
        yield c
    finally:
        await close_within(c)


@podium.flow(name="policies.ask_vendor")
async def ask_vendor(ctx: podium.Context, question: str) -> str:
    return await ctx.model("vendor").generate(question, data_class="public")


@podium.flow(name="policies.classified")
async def classified(ctx: podium.Context, data_class: str) -> str:
    return await ctx.model("vendor").generate("summarise the report", data_class=data_class)


async def policy_rows(client: podium.Client, run_id: str) -> list[dict[str, Any]]:
    return [e.data for e in await client.journal(run_id) if (e.name or "").startswith("policy:")]


async def audited(client: podium.Client) -> list[tuple[str | None, dict[str, Any]]]:
    """(subject, payload) of the audit trail's policy decisions."""
    return [
        (r.subject, json.loads(r.payload or "{}"))
        for r in await client.store.audit_scan()
        if r.action == "policy.decision"
    ]


async def test_no_pii_reaches_an_external_model_and_the_answer_gets_it_back(
    client: podium.Client, server: FakeOpenAIServer
) -> None:
    register(example("no-pii-to-external-models"))
    question = "Send a receipt to jane@example.org for card 4111 1111 1111 1111, ip 10.2.3.4"
    h = await client.start(ask_vendor, question)
    answer = await h.result(timeout=WAIT_SECONDS)
    assert answer == "Sent the receipt to jane@example.org, card 4111 1111 1111 1111."
    sent = json.dumps(server.requests[0]["body"]["messages"])
    assert "jane@example.org" not in sent and "4111" not in sent and "10.2.3.4" not in sent
    assert "[EMAIL_1]" in sent and "[CARD_1]" in sent and "[IP_1]" in sent
    # the journal keeps what the provider saw and said: placeholders, never the values
    journal = await client.journal(h.id)
    step = next(e for e in journal if e.name == "model:vendor")
    assert "jane@example.org" not in json.dumps(step.data) and "[EMAIL_1]" in json.dumps(step.data)
    (row,) = await policy_rows(client, h.id)
    assert row["action"] == "redact" and row["decisions"][0]["policy"] == "no-pii-to-external-models"
    assert row["decisions"][0]["version"] == example("no-pii-to-external-models").version
    (entry,) = await audited(client)
    assert entry[0] == h.id and entry[1]["point"] == "model.before" and entry[1]["action"] == "redact"
    # a local model is not egress: nothing masked, nothing journaled
    register_model("policies.local", lambda request: request.messages[-1].content)

    @podium.flow(name="policies.ask_local")
    async def ask_local(ctx: podium.Context, q: str) -> str:
        return await ctx.model("policies.local").generate(q)

    h2 = await client.start(ask_local, question)
    assert await h2.result(timeout=WAIT_SECONDS) == question
    assert await policy_rows(client, h2.id) == []


@podium.tool
def refund(order_id: str, amount: float) -> str:
    """Refund an order.

    Args:
        order_id: The order.
        amount: Dollars.
    """
    LEDGER.append(f"refund:{order_id}:{amount}")
    return f"refunded {amount:.2f}"


register_model("policies.refunder", ScriptedModel(call("refund", order_id="B2", amount=900), "done"))
register_model("policies.small", ScriptedModel(call("refund", order_id="C3", amount=40), "done"))
refunder = podium.Agent("policy_refunder", "Refund what is asked.", model="policies.refunder", tools=[refund])
small = podium.Agent("policy_small", "Refund what is asked.", model="policies.small", tools=[refund])


@podium.flow(name="policies.refund")
async def refund_flow(ctx: podium.Context, big: bool) -> Any:
    return (await (refunder if big else small).run(ctx, "refund it")).output


async def test_a_refund_over_500_waits_for_an_approver_then_runs_once(client: podium.Client) -> None:
    register(example("refund-approval"))
    h = await client.start(refund_flow, True)
    pending = await wait_approval(client, h.id)
    assert pending[0].name == "tool:refund"
    assert pending[0].payload["arguments"] == {"order_id": "B2", "amount": 900.0}
    assert "refund-approval/big-refunds" in pending[0].payload["policy"]
    assert LEDGER == []
    await client.approve(h.id, by="ann")
    assert await h.result(timeout=WAIT_SECONDS) == "done"
    assert LEDGER == ["refund:B2:900.0"]
    (row,) = await policy_rows(client, h.id)
    assert row["action"] == "require_approval"
    # a small refund runs at once; the policy applied, allowed, and said so in the journal
    h2 = await client.start(refund_flow, False)
    assert await h2.result(timeout=WAIT_SECONDS) == "done"
    assert LEDGER == ["refund:B2:900.0", "refund:C3:40.0"]
    assert [r["action"] for r in await policy_rows(client, h2.id)] == ["allow"]


async def test_a_model_only_for_public_data(client: podium.Client, server: FakeOpenAIServer) -> None:
    register(example("public-data-only"))
    h = await client.start(classified, "confidential")
    with pytest.raises(podium.RunFailedError, match="only for data class public"):
        await h.result(timeout=WAIT_SECONDS)
    assert server.requests == []
    run = await client.get(h.id)
    assert run.error is not None and run.error["type"] == "PolicyDenied"
    h2 = await client.start(classified, "public")
    assert await h2.result(timeout=WAIT_SECONDS) == "Sent the receipt to [EMAIL_1], card [CARD_1]."
    assert len(server.requests) == 1


async def test_a_policy_switches_to_another_model(client: podium.Client, server: FakeOpenAIServer) -> None:
    register_model("policies.onprem", lambda request: "answered on premises")
    register(
        parse(
            "policy: keep-secrets-home\nrules:\n  - name: secret-stays\n    at: model.before\n"
            "    when: {model: vendor, data_class: secret}\n    then: {switch: policies.onprem}\n"
        )
    )
    h = await client.start(classified, "secret")
    assert await h.result(timeout=WAIT_SECONDS) == "answered on premises"
    assert server.requests == []
    (row,) = await policy_rows(client, h.id)
    assert row["action"] == "switch" and row["decisions"][0]["model"] == "policies.onprem"


register_model("policies.pricey", lambda request: "x" * 400, price_input=0.0, price_output=10_000.0)


@podium.flow(name="policies.spend")
async def spend(ctx: podium.Context, calls: int) -> float:
    for _ in range(calls):
        await ctx.model("policies.pricey").generate("go", max_tokens=10)
    return round(ctx.cost, 4)


async def test_at_most_2_dollars_per_run_and_100_per_tenant_per_day(client: podium.Client) -> None:
    register(example("budgets"))
    # each call costs about $1 (100 output tokens at $10,000 per million)
    h = await client.start(spend, 5, pins={"tenant": "acme"})
    with pytest.raises(podium.RunFailedError, match="more than \\$2"):
        await h.result(timeout=WAIT_SECONDS)
    calls = [e for e in await client.journal(h.id) if e.name == "model:policies.pricey" and e.kind == "step"]
    assert len(calls) == 2
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    spent = await client.store.spend_get("tenant:acme", day)
    assert spent == pytest.approx(2.0, abs=0.01)
    await client.store.spend_add("tenant:acme", day, 97.5)  # a busy day elsewhere
    h2 = await client.start(spend, 1, pins={"tenant": "acme"})
    assert await h2.result(timeout=WAIT_SECONDS) == pytest.approx(1.0, abs=0.01)  # 99.5 before it: allowed
    h3 = await client.start(spend, 1, pins={"tenant": "acme"})
    with pytest.raises(podium.RunFailedError, match="tenant would spend more than \\$100"):
        await h3.result(timeout=WAIT_SECONDS)
    h4 = await client.start(spend, 1, pins={"tenant": "globex"})  # another tenant is not affected
    assert await h4.result(timeout=WAIT_SECONDS) == pytest.approx(1.0, abs=0.01)


async def test_a_tenants_daily_budget_counts_its_runs_and_its_spend_shows(client: podium.Client) -> None:
    from podium.policies.access import Principal

    register(example("budgets"))
    await client.store.spend_add("tenant:acme", datetime.now(UTC).strftime("%Y-%m-%d"), 99.25)
    h = await client.start(spend, 1, tenant="acme")  # the run's tenant, no pin
    assert await h.result(timeout=WAIT_SECONDS) == pytest.approx(1.0, abs=0.01)
    assert await client.tenant_spend("acme") == pytest.approx(100.25, abs=0.01)
    assert await client.tenant_spend("globex") == 0.0
    h2 = await client.start(spend, 1, tenant="acme")
    with pytest.raises(podium.RunFailedError, match="tenant would spend more than \\$100"):
        await h2.result(timeout=WAIT_SECONDS)
    acme = client.acting_as(Principal("acme-viewer", "viewer", tenant="acme"))
    assert await acme.tenant_spend() == pytest.approx(100.25, abs=0.01)
    globex = client.acting_as(Principal("globex-viewer", "viewer", tenant="globex"))
    assert await globex.tenant_spend() == 0.0
    with pytest.raises(podium.PermissionDeniedError):
        await globex.tenant_spend("acme")


register_model("policies.leaky", lambda request: "Sure: the card on file is 4111 1111 1111 1111.")


@podium.flow(name="policies.leak")
async def leak(ctx: podium.Context, q: str) -> str:
    return await ctx.model("policies.leaky").generate(q)


async def test_a_response_with_a_card_number_is_blocked(client: podium.Client) -> None:
    register(example("block-card-numbers"))
    h = await client.start(leak, "what card do I have?")
    with pytest.raises(podium.RunFailedError, match="answer contains a card number"):
        await h.result(timeout=WAIT_SECONDS)
    (row,) = await policy_rows(client, h.id)
    assert row["action"] == "deny" and row["decisions"][0]["rule"] == "card-in-answer"
    entries = await audited(client)
    assert [e[1]["point"] for e in entries] == ["model.after"] and entries[0][0] == h.id


async def test_run_start_and_approval_decisions_can_be_refused(client: podium.Client) -> None:
    @policy(points=["run.start"])
    def tenants_only(point: str, facts: Facts) -> Decision | None:
        return None if facts["tenant"] else Decision.deny("every run needs a tenant pin")

    @policy(points=["approval"])
    def four_eyes(point: str, facts: Facts) -> Decision | None:
        return Decision.deny("ann may not approve refunds") if facts["by"] == "ann" else None

    register(tenants_only, four_eyes, example("refund-approval"))
    before = len(await client.list())
    with pytest.raises(podium.PolicyViolationError, match="needs a tenant pin"):
        await client.start(refund_flow, True)
    assert len(await client.list()) == before  # nothing was created
    h = await client.start(refund_flow, True, pins={"tenant": "acme"})
    await wait_approval(client, h.id)
    with pytest.raises(podium.PolicyViolationError, match="ann may not approve"):
        await client.approve(h.id, by="ann")
    assert len(await client.pending_approvals(h.id)) == 1  # still waiting
    await client.approve(h.id, by="bob")
    assert await h.result(timeout=WAIT_SECONDS) == "done"
    points = [e[1]["point"] for e in await audited(client)]
    assert points.count("run.start") == 1 and points.count("approval") == 1


async def test_a_replay_gets_the_journaled_verdict(client: podium.Client) -> None:
    from podium.testing import replay

    register(example("refund-approval"))
    h = await client.start(refund_flow, False)
    await h.result(timeout=WAIT_SECONDS)
    journal = await client.journal(h.id)
    LEDGER.clear()
    register(
        parse("policy: refund-approval\nrules:\n  - {at: tool.before, when: {tool: refund}, then: deny}\n")
    )
    assert await replay(refund_flow, journal) == "done"  # the journaled allow, not today's deny
    active().clear()  # the policy is gone: replay still follows the journal
    assert await replay(refund_flow, journal) == "done"
    assert LEDGER == []


async def test_a_policy_added_while_a_run_waits_spares_the_points_it_passed(client: podium.Client) -> None:
    register(example("refund-approval"))
    h = await client.start(refund_flow, True)
    await wait_approval(client, h.id)
    register(example("budgets"))  # applies at model.before, which the run passed once already
    await client.approve(h.id, by="ann")
    assert await h.result(timeout=WAIT_SECONDS) == "done"
    kinds = [(e.kind, e.name) for e in await client.journal(h.id) if e.kind in ("step", "value")]
    assert kinds == [
        ("step", "model:policies.refunder"),
        ("value", "policy:tool.before"),
        ("step", "tool:refund"),
        ("value", "policy:model.before"),  # the call after the approval: the budget was asked
        ("step", "model:policies.refunder"),
    ]


def test_podium_show_lists_the_decisions(tmp_path: Path) -> None:
    import asyncio

    url = f"sqlite:///{tmp_path / 'show.db'}"

    async def make() -> str:
        register(example("block-card-numbers"))
        async with podium.Client(podium.Settings(database_url=url, poll_seconds=0.05)) as c:
            h = await c.start(leak, "card?")
            with pytest.raises(podium.RunFailedError):
                await h.result(timeout=WAIT_SECONDS)
            return h.id

    run_id = asyncio.run(make())
    shown = subprocess.run(
        [sys.executable, "-m", "podium.cli", "show", run_id, "--db", url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert shown.returncode == 0, shown.stderr
    assert "policies" in shown.stdout and "deny by block-card-numbers@" in shown.stdout
    assert "policy:model.after" in shown.stdout


def test_policies_from_podium_toml(tmp_path: Path) -> None:
    from podium.policies import configure

    configure({"files": [str(EXAMPLES / "refund-approval.yaml")]})
    assert active().get("refund-approval") is not None
    with pytest.raises(podium.ConfigError, match="must be a table"):
        configure({"files": "one.yaml"})
    with pytest.raises(PolicyFileError, match="cannot read"):
        configure({"files": [str(tmp_path / "missing.yaml")]})


def test_evaluation_is_cheap_enough_to_run_at_every_call() -> None:
    """Not a timing assertion (bench/governance.py measures): 20 rules compile to closures and a point
    where no rule's tool selector matches asks nothing."""
    rules = "".join(
        f"  - {{name: r{i}, at: tool.before, when: {{tool: t{i}, arguments.amount: {{gt: {i}}}}}, "
        "then: deny}\n"
        for i in range(20)
    )
    p = parse("policy: twenty\nrules:\n" + rules)
    register(p)
    assert active().applicable(("tool.before",), Facts({"tool": "other"})) == []
    assert (
        active().evaluate("tool.before", Facts({"tool": "t7", "arguments": {"amount": 8}})).action == "deny"
    )


@podium.flow(name="policies.stream")
async def streamed(ctx: podium.Context, q: str) -> dict[str, Any]:
    pieces: list[str] = []
    text = await ctx.model("vendor").stream(q, on_token=pieces.append)
    return {"text": text, "streamed": "".join(pieces)}


async def test_a_streamed_call_is_masked_too(client: podium.Client, server: FakeOpenAIServer) -> None:
    register(example("no-pii-to-external-models"))
    h = await client.start(streamed, "Write to jane@example.org")
    out = await h.result(timeout=WAIT_SECONDS)
    assert "jane@example.org" not in json.dumps(server.requests[0]["body"]["messages"])
    assert "[EMAIL_1]" in out["streamed"]  # what the provider sent, token by token
    assert out["text"].strip() == "Sent the receipt to jane@example.org, card [CARD_1]."  # restored


async def test_the_rest_api_answers_403_when_a_policy_refuses_a_start(tmp_path: Path) -> None:
    import asyncio
    import socket

    import httpx
    import uvicorn
    from conftest import eventually, settings_for

    from podium.server import create_app

    @policy(points=["run.start"])
    def no_leaks(point: str, facts: Facts) -> Decision | None:
        return (
            Decision.deny("flow policies.leak is switched off") if facts["flow"] == "policies.leak" else None
        )

    register(no_leaks)
    client = podium.Client(settings_for(f"sqlite:///{tmp_path}/api.db"))
    await client.open()
    _, key = await client.create_key("ops", "operator")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(client, {}), ws="none", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: asyncio.sleep(0.01, server.started), bool, what="the server to start")
        async with httpx.AsyncClient(timeout=WAIT_SECONDS) as http:
            r = await http.post(
                f"http://127.0.0.1:{sock.getsockname()[1]}/api/runs",
                json={"flow": "policies.leak", "input": "hi"},
                headers={"Authorization": f"Bearer {key}"},
            )
        assert r.status_code == 403 and "switched off" in r.json()["error"]
        assert await client.list() == []
    finally:
        server.should_exit = True
        await task
        sock.close()
        await close_within(client)


@podium.flow(name="policies.embed")
async def embed_text(ctx: podium.Context, text: str) -> int:
    return len(await ctx.embed(text, model="vendor-embed"))


async def test_texts_for_an_external_embedding_model_are_masked(
    client: podium.Client, server: FakeOpenAIServer
) -> None:
    register(example("no-pii-to-external-models"))
    h = await client.start(embed_text, "Customer jane@example.org called about order 4411")
    assert await h.result(timeout=WAIT_SECONDS) > 0
    sent = json.dumps(server.requests[-1]["body"])
    assert "jane@example.org" not in sent and "[EMAIL_1]" in sent and "order 4411" in sent
    (row,) = await policy_rows(client, h.id)
    assert row["action"] == "redact"
