"""The prompt registry: versions, labels, rollback, diff and A/B splits on every store; ``ctx.prompt``
journaled (a run keeps its version when the label moves while it waits); provenance on model calls; the
template sandbox. The CLI (a real subprocess), the REST API (a real server, keys and roles) and the dashboard
(Playwright) are in tests/test_prompts_surfaces.py.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from conftest import WAIT_SECONDS, close_within, settings_for, wait_status

import podium
from podium.management import pick_arm
from podium.models import ModelRequest, register

TRIAGE_V1 = "Classify this ticket: {{ ticket }}"
TRIAGE_V2 = "Triage the ticket below.\n{{ ticket }}\nAnswer with one word."


def shout(request: ModelRequest) -> str:
    return request.messages[-1].content.upper()


register("t.prompts.shout", shout)


@podium.flow(name="prompts.triage")
async def triage(ctx: podium.Context, ticket: str) -> dict[str, object]:
    prompt = await ctx.prompt("triage")
    await ctx.wait_for_signal("go")  # the run leaves memory here; it resumes by replay
    again = await ctx.prompt("triage")  # a new position: resolved now, after the label moved
    answer = await ctx.model("t.prompts.shout").generate(prompt.render(ticket=ticket))
    return {"version": prompt.version, "label": prompt.label, "again": again.version, "answer": answer}


@podium.flow(name="prompts.arm")
async def arm(ctx: podium.Context, _: None = None) -> str | None:
    return (await ctx.prompt("triage")).arm


@podium.flow(name="prompts.calls")
async def calls(ctx: podium.Context, _: None = None) -> list[str]:
    prompt = await ctx.prompt("triage", label="staging")
    text = prompt.render(ticket="t", tone="kind")
    model = ctx.model("t.prompts.shout")
    await model.generate("plain text", system=text.system)  # the system text alone carries provenance
    await model.chat([{"role": "user", "content": text}])
    await model.generate("no prompt at all")
    return [prompt.ref]


@podium.flow(name="prompts.pinned")
async def pinned(ctx: podium.Context, version: int) -> int:
    return (await ctx.prompt("triage", version=version)).version


@podium.flow(name="prompts.label")
async def pinned_label(ctx: podium.Context, _: None = None) -> int:
    return (await ctx.prompt("triage")).version


# -- the registry on every store -------------------------------------------------------------------


async def test_versions_labels_rollback_and_diff(client: podium.Client) -> None:
    prompts = client.prompts
    v1 = await prompts.push("triage", TRIAGE_V1, label="production", model="fast", params={"temperature": 0})
    assert (v1.version, v1.label, v1.variables, v1.model) == (1, "production", ("ticket",), "fast")
    v2 = await prompts.push(
        "triage", TRIAGE_V2, system="You are {{ team }}'s triage bot.", metadata={"by": "ann"}
    )
    assert v2.version == 2 and v2.variables == ("team", "ticket")
    # Idempotent: the same content is the same version (metadata is not content).
    same = await prompts.push("triage", TRIAGE_V1, model="fast", params={"temperature": 0}, metadata={"x": 1})
    assert same.version == 1 and same.hash == v1.hash
    assert [p.version for p in await prompts.versions("triage")] == [1, 2]

    assert (await prompts.get("triage")).version == 1  # production by default
    await prompts.label("triage", 2, "production")
    await prompts.label("triage", 2, "staging")
    assert await prompts.labels("triage") == {"production": 2, "staging": 2}
    assert (await prompts.get("triage", label="production")).version == 2
    assert (await prompts.get("triage", version=1)).template == TRIAGE_V1

    v3 = await prompts.push("triage", "v3 {{ ticket }}", label="production")
    assert v3.version == 3
    assert (await prompts.rollback("triage")).version == 2
    assert (await prompts.rollback("triage")).version == 1
    with pytest.raises(podium.UsageError, match="no earlier version"):
        await prompts.rollback("triage")
    assert (await prompts.get("triage")).version == 1
    moves = await prompts.history("triage")
    assert [(m.from_version, m.to_version, m.rollback) for m in moves] == [
        (None, 1, False),
        (1, 2, False),
        (2, 3, False),
        (3, 2, True),
        (2, 1, True),
    ]

    diff = await prompts.diff("triage", 1, "staging")
    assert "--- triage@1 template" in diff and "+++ triage@2 template" in diff
    assert "-Classify this ticket: {{ ticket }}" in diff and "+Answer with one word." in diff
    assert "+You are {{ team }}'s triage bot." in diff

    [info] = await prompts.list()
    assert (info.name, info.latest, info.labels, info.split) == (
        "triage",
        3,
        {"production": 1, "staging": 2},
        None,
    )


async def test_mistakes_are_clear_errors(client: podium.Client) -> None:
    prompts = client.prompts
    with pytest.raises(podium.PromptNotFoundError, match="no prompt named 'nope'"):
        await prompts.get("nope")
    await prompts.push("p", "Hello {{ name }}")
    with pytest.raises(podium.PromptNotFoundError, match="has no label 'production'"):
        await prompts.get("p")
    with pytest.raises(podium.PromptNotFoundError, match="no version 7"):
        await prompts.label("p", 7, "production")
    with pytest.raises(podium.UsageError, match="invalid template \\(line 1\\)"):
        await prompts.push("p", "Hello {{ name ")
    with pytest.raises(podium.UsageError, match="the template is empty"):
        await prompts.push("p", "  ")
    with pytest.raises(podium.UsageError, match="invalid prompt name"):
        await prompts.push("no spaces", "x")
    with pytest.raises(podium.UsageError, match="invalid label '3'"):
        await prompts.push("p", "x", label="3")
    with pytest.raises(podium.UsageError, match="reads name, which are not declared"):
        await prompts.push("p", "Hello {{ name }}", variables=[])
    with pytest.raises(podium.UsageError, match="sum to 100, not 90"):
        await prompts.split("p", {"1": 90})
    with pytest.raises(podium.PromptNotFoundError, match="no label 'candidate'"):
        await prompts.split("p", {"1": 50, "candidate": 50})
    assert await prompts.get_split("p") is None
    assert [p.version for p in await prompts.versions("p")] == [1]  # nothing changed


# -- templates -------------------------------------------------------------------------------------


async def test_render_is_strict_and_sandboxed() -> None:
    async with podium.Client(settings_for("memory://"), worker=False) as client:
        p = await client.prompts.push("p", "Hi {{ name }}! {{ items | join(', ') }}", system="Be {{ tone }}.")
        text = p.render(name="Ann", items=["a", "b"], tone="kind")
        assert text == "Hi Ann! a, b" and isinstance(text, podium.RenderedPrompt)
        assert text.provenance == {"name": "p", "version": 1, "label": None}
        assert text.system == "Be kind." and text.system.provenance == text.provenance
        with pytest.raises(podium.UsageError, match="missing variables items, tone"):
            p.render(name="Ann")
        nested = await client.prompts.push("q", "{{ user.address.city }}")
        with pytest.raises(podium.UsageError, match=r"prompt q@1: .*'address'"):
            nested.render(user={})
        for attack in (
            "{{ x.__class__.__mro__[1].__subclasses__() }}",
            "{{ x.__init__.__globals__ }}",
            "{{ ''.__class__.__base__ }}",
            "{{ x.format.__self__ }}",
            "{{ cycler.__init__.__globals__.os }}",
            "{{ range(10**9) | list }}",
        ):
            evil = await client.prompts.push("evil", attack, variables=["x"])
            refused = r"sandbox refused|has no attribute|sandbox blocks ranges"
            with pytest.raises(podium.UsageError, match=refused):
                evil.render(x="s")


# -- inside flows ----------------------------------------------------------------------------------


async def test_a_run_keeps_its_version_when_the_label_moves_while_it_waits(store_url: str) -> None:
    # hold_seconds=0: a waiting run leaves memory at once and resumes by replaying its journal.
    settings = podium.Settings(database_url=store_url, poll_seconds=0.05, lease_seconds=2, hold_seconds=0)
    client = podium.Client(settings)
    await client.open()
    try:
        await client.prompts.push("triage", TRIAGE_V1, label="production")
        await client.prompts.push("triage", TRIAGE_V2, label="production")
        handle = await client.start(triage, "printer on fire")
        await wait_status(client, handle.id, podium.RunStatus.WAITING)
        await client.prompts.rollback("triage")  # production: 2 -> 1 while the run waits
        fresh = await client.start(pinned, 1)
        assert await fresh.result(timeout=WAIT_SECONDS) == 1
        await client.signal(handle.id, "go")
        out = await handle.result(timeout=WAIT_SECONDS)
        # The resolution before the wait is journaled: still version 2. The one after sees the rollback.
        assert out["version"] == 2 and out["label"] == "production" and out["again"] == 1
        assert out["answer"] == "TRIAGE THE TICKET BELOW.\nPRINTER ON FIRE\nANSWER WITH ONE WORD."
        journal = await client.journal(handle.id)
        resolved = [e for e in journal if e.kind == "value" and e.name == "prompt:triage"]
        assert [e.data["version"] for e in resolved] == [2, 1]
        assert resolved[0].data["template"] == TRIAGE_V2 and resolved[0].data["arm"] is None
        [call] = [e for e in journal if e.kind == "step" and e.name == "model:t.prompts.shout"]
        assert call.data["result"]["prompt"] == {"name": "triage", "version": 2, "label": "production"}
        assert (await client.check_replay(handle.id)).ok
    finally:
        await close_within(client)


async def test_a_split_picks_a_stable_arm_per_run(tmp_path: Path) -> None:
    client = podium.Client(settings_for(f"sqlite:///{tmp_path}/p.db"))
    await client.open()
    try:
        await client.prompts.push("triage", TRIAGE_V1, label="production")
        await client.prompts.push("triage", TRIAGE_V2, label="candidate")
        assert await client.prompts.split("triage", {"production": 70, "v2": 30}) == {
            "production": 70,
            "2": 30,
        }
        handles = [await client.start(arm) for _ in range(20)]
        arms = [await h.result(timeout=WAIT_SECONDS) for h in handles]
        assert arms == [pick_arm({"production": 70, "2": 30}, "triage", h.id) for h in handles]
        for h in handles[:3]:
            [value] = [e for e in await client.journal(h.id) if e.kind == "value"]
            assert value.data["arm"] == pick_arm({"production": 70, "2": 30}, "triage", h.id)
            assert value.data["version"] == (1 if value.data["arm"] == "production" else 2)
            assert (await client.check_replay(h.id)).ok
        await client.prompts.split("triage", None)  # back to the label
        assert await (await client.start(arm)).result(timeout=WAIT_SECONDS) is None
    finally:
        await close_within(client)


async def test_run_pins_choose_the_version_over_labels_and_splits(tmp_path: Path) -> None:
    client = podium.Client(settings_for(f"sqlite:///{tmp_path}/p.db"))
    await client.open()
    try:
        await client.prompts.push("triage", TRIAGE_V1, label="production")
        await client.prompts.push("triage", TRIAGE_V2, label="staging")
        await client.prompts.split("triage", {"production": 50, "staging": 50})
        by_version = await client.start(pinned, 2, pins={"prompt:triage": "1"})
        assert await by_version.result(timeout=WAIT_SECONDS) == 1  # the pin beats version= in code
        by_label = await client.start(triage, "x", pins={"prompt:triage": "staging", "arm": "B"})
        await wait_status(client, by_label.id, podium.RunStatus.WAITING)
        await client.signal(by_label.id, "go")
        out = await by_label.result(timeout=WAIT_SECONDS)
        assert (out["version"], out["label"], out["again"]) == (2, "staging", 2)
        [value, *_] = [e for e in await client.journal(by_label.id) if e.kind == "value"]
        assert value.data["arm"] is None  # pinned: no arm of the split
    finally:
        await close_within(client)


async def test_every_kind_of_model_call_journals_the_prompt_it_was_given(tmp_path: Path) -> None:
    async with podium.Client(settings_for(f"sqlite:///{tmp_path}/p.db")) as client:
        await client.prompts.push("triage", TRIAGE_V2, system="Be {{ tone }}.", label="staging")
        h = await client.start(calls)
        assert await h.result(timeout=WAIT_SECONDS) == ["triage@1"]
        steps = [e for e in await client.journal(h.id) if e.kind == "step"]
        staging = {"name": "triage", "version": 1, "label": "staging"}
        assert [e.data["result"]["prompt"] for e in steps] == [staging, staging, None]


async def test_a_label_moved_by_another_process_applies_to_the_next_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/p.db"
    async with (
        podium.Client(settings_for(url)) as worker_side,
        podium.Client(settings_for(url), worker=False) as operator,
    ):
        await operator.prompts.push("triage", TRIAGE_V1, label="production")
        await operator.prompts.push("triage", TRIAGE_V2, label="production")
        assert await (await worker_side.start(pinned_label)).result(timeout=WAIT_SECONDS) == 2
        await operator.prompts.rollback("triage")  # another connection, as another process would
        assert await (await worker_side.start(pinned_label)).result(timeout=WAIT_SECONDS) == 1
        await operator.prompts.label("triage", 2, "production")
        assert await (await worker_side.start(pinned_label)).result(timeout=WAIT_SECONDS) == 2


def test_arm_distribution_over_a_thousand_run_ids() -> None:
    ids = [podium.types.new_id() + f"{i:04d}" for i in range(1000)]
    counts = Counter(pick_arm({"production": 90, "candidate": 10}, "triage", i) for i in ids)
    assert 860 <= counts["production"] <= 940 and counts["production"] + counts["candidate"] == 1000
    three = Counter(pick_arm({"a": 50, "b": 25, "c": 25}, "triage", i) for i in ids)
    assert all(abs(three[k] - n) <= 45 for k, n in {"a": 500, "b": 250, "c": 250}.items())
    # Independent across prompts: the same runs split differently for another prompt.
    other = [pick_arm({"a": 50, "b": 50}, "other", i) for i in ids]
    same = [pick_arm({"a": 50, "b": 50}, "triage", i) for i in ids]
    assert 400 <= sum(x == y for x, y in zip(other, same, strict=True)) <= 600
    assert pick_arm({"a": 0, "b": 100}, "t", "x") == "b"


# -- tenants -----------------------------------------------------------------------------------------


@podium.flow(name="prompts.tenant_template")
async def tenant_template(ctx: podium.Context, _: None = None) -> str:
    return (await ctx.prompt("triage")).template


@pytest.mark.parametrize("store_url", ["memory", "sqlite", "postgres"], indirect=True)
async def test_each_tenant_has_its_own_prompts_and_falls_back_to_the_shared_ones(store_url: str) -> None:
    client = podium.Client(settings_for(store_url))
    await client.open()
    try:
        shared, acme, globex = (client.prompts.for_tenant(t) for t in (None, "acme", "globex"))
        await shared.push("triage", TRIAGE_V1, label="production")
        await shared.push("triage", TRIAGE_V2, label="staging")
        await shared.push("summary", "Sum up {{ text }}", label="production")
        mine = await acme.push("triage", "ACME: {{ ticket }}", label="production")
        assert (mine.name, mine.version, mine.label) == ("triage", 1, "production")  # its own numbering
        await acme.push("triage", "ACME v2: {{ ticket }}", label="production")
        # Isolation: acme's versions, labels, moves and split are its own; the shared prompt is untouched.
        assert [p.template for p in await acme.versions("triage")] == [
            "ACME: {{ ticket }}",
            "ACME v2: {{ ticket }}",
        ]
        assert await acme.labels("triage") == {"production": 2}
        assert await shared.labels("triage") == {"production": 1, "staging": 2}
        assert (await acme.rollback("triage")).version == 1
        assert (await shared.get("triage")).template == TRIAGE_V1
        await acme.split("triage", {"production": 100})
        assert await shared.get_split("triage") is None and await globex.get_split("triage") is None
        assert [m.to_version for m in await acme.history("triage")] == [1, 2, 1]
        # Fallback: globex has no triage, so it reads the shared one; acme's never reaches it.
        assert (await globex.get("triage")).template == TRIAGE_V1
        assert (await globex.get("triage", label="staging")).version == 2
        assert not await globex.owns("triage") and await acme.owns("triage")
        listed = {i.name: (i.latest, i.shared) for i in await acme.list()}
        assert listed == {"summary": (1, True), "triage": (2, False)}
        assert {i.name: i.shared for i in await shared.list()} == {"summary": False, "triage": False}
        # A name cannot reach another tenant's prompt.
        with pytest.raises(podium.UsageError):
            await shared.get("acme/triage")
        with pytest.raises(podium.UsageError):
            await globex.push("acme/triage", "x")
        with pytest.raises(podium.PromptNotFoundError, match=r"no prompt 'triage' of its own \(it reads"):
            await globex.label("triage", 1, "production")  # its own: push one first
        with pytest.raises(podium.PromptNotFoundError, match="of its own"):
            await globex.split("triage", None)
        # Runs resolve their tenant's prompt, else the shared one; the default tenant keeps the shared.
        runs = {t: await client.start(tenant_template, tenant=t) for t in ("default", "acme", "globex")}
        got = {t: await h.result(timeout=WAIT_SECONDS) for t, h in runs.items()}
        assert got == {"default": TRIAGE_V1, "acme": "ACME: {{ ticket }}", "globex": TRIAGE_V1}
    finally:
        await close_within(client)


async def test_tenant_keys_manage_their_own_tenants_prompts(tmp_path: Path) -> None:
    from podium.policies.access import Principal

    client = podium.Client(settings_for(f"sqlite:///{tmp_path}/p.db"))
    await client.open()
    try:
        platform = client.acting_as(Principal("ops", "operator", tenant=None))
        acme = client.acting_as(Principal("acme-ci", "operator", tenant="acme"))
        viewer = client.acting_as(Principal("acme-ro", "viewer", tenant="acme"))
        await platform.prompts("edit").push("triage", TRIAGE_V1, label="production")
        await acme.prompts("edit").push("triage", "ACME: {{ ticket }}", label="production")
        assert (await client.prompts.get("triage")).template == TRIAGE_V1
        assert (await viewer.prompts().get("triage")).template == "ACME: {{ ticket }}"
        assert (await platform.prompts(tenant="acme").get("triage")).template == "ACME: {{ ticket }}"
        await platform.prompts("edit", tenant="acme").push(
            "triage", "ACME v2 {{ ticket }}", label="production"
        )
        assert (await acme.prompts().get("triage")).version == 2
        with pytest.raises(podium.PermissionDeniedError):
            acme.prompts(tenant="globex")
        with pytest.raises(podium.PermissionDeniedError):
            viewer.prompts("edit")
    finally:
        await close_within(client)
