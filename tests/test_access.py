"""The one authorization layer: principals, roles, tenants, ``[[permissions]]`` rules, and a ``Client`` bound
to a principal (``client.acting_as``) on a real SQLite file: another tenant's runs do not exist for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import WAIT_SECONDS, close_within, settings_for, wait_approval

import podium
from podium.errors import ConfigError, PermissionDeniedError, RunNotFoundError
from podium.policies.access import Permissions, Principal, authorize, can


@podium.flow(name="billing.refund")
async def refund(ctx: podium.Context, amount: int) -> bool:
    decision = await ctx.approval("refund", payload={"amount": amount})
    return decision.approved


@podium.flow(name="billing.child")
async def child(ctx: podium.Context, n: int) -> int:
    assert ctx.tenant == "acme"
    return n * 2


@podium.flow(name="billing.parent")
async def parent(ctx: podium.Context, n: int) -> int:
    return await ctx.child(child, n) + (1 if ctx.tenant == "acme" else 100)


@podium.flow(name="hr.payroll")
async def payroll(ctx: podium.Context, month: str) -> str:
    return month


RULES = {
    "permissions": [
        {"role": "operator", "flows": ["billing.*"], "actions": ["start", "cancel", "signal"]},
        {"role": "approver", "flows": ["billing.*"], "actions": ["approve"], "approvals": ["refund"]},
        {"key": "auditor", "flows": ["hr.*"], "actions": ["view"]},
    ]
}


# -- the pure check ---------------------------------------------------------------------------------


def test_roles_give_actions_and_tenants_bound_them() -> None:
    viewer, admin = Principal("v", "viewer", "acme"), Principal("a", "admin")
    assert can(viewer, "view", tenant="acme") and not can(viewer, "view", tenant="globex")
    assert not can(viewer, "start")
    assert can(admin, "admin", tenant="globex") and can(admin, "approve")
    with pytest.raises(PermissionDeniedError, match="may not start"):
        authorize(viewer, "start", flow="x")
    with pytest.raises(PermissionDeniedError, match="tenant 'globex'"):
        authorize(viewer, "view", tenant="globex")
    with pytest.raises(ConfigError, match="unknown action"):
        authorize(admin, "fly")
    with pytest.raises(ConfigError, match="unknown role"):
        Principal("x", "root")
    with pytest.raises(ConfigError, match="invalid tenant"):
        Principal("x", "viewer", "a b")


def test_rules_narrow_roles_to_flows_and_approvals() -> None:
    rules = Permissions.from_config(RULES)
    ops, approver = Principal("ci", "operator", "acme"), Principal("ann", "approver", "acme")
    assert can(ops, "start", flow="billing.refund", rules=rules)
    assert not can(ops, "start", flow="hr.payroll", rules=rules)
    assert can(ops, "view", flow="hr.payroll", rules=rules)  # no operator rule covers view: the role decides
    assert can(approver, "approve", flow="billing.refund", approval="refund", rules=rules)
    assert not can(approver, "approve", flow="billing.refund", approval="payout", rules=rules)
    assert not can(approver, "approve", flow="hr.payroll", rules=rules)
    auditor, other = Principal("auditor", "viewer"), Principal("someone", "viewer")
    assert can(auditor, "view", flow="hr.payroll", rules=rules)
    assert not can(auditor, "view", flow="billing.refund", rules=rules)  # its key's rule decides
    assert can(other, "view", flow="billing.refund", rules=rules)
    assert not can(auditor, "start", flow="hr.payroll", rules=rules)  # rules never grant beyond the role
    with pytest.raises(PermissionDeniedError, match=r"\[\[permissions\]\]"):
        authorize(ops, "cancel", flow="hr.payroll", rules=rules)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"flows": ["a"], "actions": ["view"]}, "exactly one of role"),
        ({"role": "viewer", "key": "k", "flows": ["a"], "actions": ["view"]}, "exactly one of role"),
        ({"role": "root", "flows": ["a"], "actions": ["view"]}, "unknown role 'root'"),
        ({"role": "viewer", "actions": ["view"]}, "needs flows"),
        ({"role": "viewer", "flows": [], "actions": ["view"]}, "list of glob patterns"),
        ({"role": "viewer", "flows": ["a"]}, "needs actions"),
        ({"role": "viewer", "flows": ["a"], "actions": ["fly"]}, "unknown action"),
        ({"role": "viewer", "flows": ["a"], "actions": ["view"], "approvals": ["x"]}, "needs the approve"),
        ({"role": "viewer", "flows": ["a"], "actions": ["view"], "tenant": "x"}, "unknown key"),
        ("viewer", "must be a table"),
    ],
)
def test_bad_rules_are_named_clearly(rule: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        Permissions.from_config(
            {"permissions": [{"role": "viewer", "flows": ["x"], "actions": ["view"]}, rule]}
        )
    assert "rule 2" in str(err.value)
    with pytest.raises(ConfigError, match="array of tables"):
        Permissions.from_config({"permissions": {"role": "viewer"}})


# -- a client bound to a principal ---------------------------------------------------------------


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[podium.Client]:
    settings = settings_for(f"sqlite:///{tmp_path}/p.db")
    c = podium.Client(replace(settings, config=RULES))
    async with c:
        try:
            yield c
        finally:
            await close_within(c)


async def test_a_tenant_sees_only_its_own_runs(client: podium.Client) -> None:
    acme = client.acting_as(Principal("acme-ops", "admin", "acme"))
    globex = client.acting_as(Principal("globex-ops", "admin", "globex"))
    mine = await acme.start(refund, 10)
    theirs = await globex.start(refund, 20)
    await wait_approval(client, theirs.id)
    assert (await acme.get(mine.id)).tenant == "acme"
    for call in (acme.get, acme.journal, acme.timeline, acme.usage, acme.cancel, acme.approve):
        with pytest.raises(RunNotFoundError, match="no run with id"):
            await call(theirs.id)
    with pytest.raises(RunNotFoundError):
        await acme.signal(theirs.id, "note")
    assert [r.id for r in await acme.list()] == [mine.id]
    await wait_approval(client, mine.id)
    assert {a.run_id for a in await acme.pending_approvals()} == {mine.id}
    assert {e.run_id for e in await acme.feed()} == {mine.id}
    platform = client.acting_as(Principal.local())
    assert {r.id for r in await platform.list()} == {mine.id, theirs.id}
    assert [r.id for r in await platform.list(tenant="globex")] == [theirs.id]
    placed = await platform.start(payroll, "june", tenant="globex")  # a platform principal picks the tenant
    assert (await globex.get(placed.id)).tenant == "globex"
    with pytest.raises(PermissionDeniedError, match="tenant 'globex'"):
        await acme.start(payroll, "june", tenant="globex")
    assert await acme.list(tenant="globex") == []
    # an idempotency key taken in another tenant does not reveal that tenant's run
    await globex.start(payroll, "may", key="k-1")
    with pytest.raises(podium.InvalidStateError, match="in use") as err:
        await acme.start(payroll, "may", key="k-1")
    assert "globex" not in str(err.value)


async def test_rules_and_roles_are_enforced_by_the_bound_client(client: podium.Client) -> None:
    ops = client.acting_as(Principal("ci", "operator", "acme"))
    approver = client.acting_as(Principal("ann", "approver", "acme"))
    run = await ops.start(refund, 5)
    with pytest.raises(PermissionDeniedError, match=r"may not start flow 'hr\.payroll'"):
        await ops.start(payroll, "june")
    await wait_approval(client, run.id)
    with pytest.raises(PermissionDeniedError, match="its role"):
        await ops.approve(run.id)
    with pytest.raises(PermissionDeniedError):
        await approver.cancel(run.id)
    decided = await approver.approve(run.id)
    assert decided.name == "refund"
    assert await run.result(timeout=WAIT_SECONDS) is True
    journal = await client.journal(run.id)
    assert any(e.kind == "decision" and (e.data or {}).get("by") == "ann (approver)" for e in journal)


async def test_child_runs_inherit_the_tenant(client: podium.Client) -> None:
    acme = client.acting_as(Principal("acme-ops", "admin", "acme"))
    handle = await acme.start(parent, 4)
    assert await handle.result(timeout=WAIT_SECONDS) == 9
    kids = await client.store.list_runs(parent_id=handle.id)
    assert [k.tenant for k in kids] == ["acme"]
    assert {r.flow for r in await acme.list()} == {"billing.parent", "billing.child"}
    assert await client.acting_as(Principal("g", "viewer", "globex")).list() == []


async def test_keys_belong_to_a_tenant_and_expire(tmp_path: Path) -> None:
    now = [1_000_000.0]
    settings = settings_for(f"sqlite:///{tmp_path}/k.db")
    async with podium.Client(settings, worker=False, clock=lambda: now[0]) as client:
        root = client.acting_as(Principal.local())
        acme_admin_key, acme_secret = await root.create_key("acme-admin", "admin", tenant="acme")
        temp, temp_secret = await root.create_key("temp", "viewer", tenant="acme", expires="30d")
        assert temp.expires_at == now[0] + 30 * 86400
        await root.create_key("globex-bot", "viewer", tenant="globex")
        assert await client.authenticate(temp_secret) is not None
        now[0] += 30 * 86400
        assert await client.authenticate(temp_secret) is None  # expired
        acme = client.acting_as(acme_admin_key)
        assert {k.name for k in await acme.keys()} == {"acme-admin", "temp"}
        made, _ = await acme.create_key("acme-bot", "viewer")
        assert made.tenant == "acme"
        with pytest.raises(PermissionDeniedError, match="tenant 'globex'"):
            await acme.create_key("sneaky", "admin", tenant="globex")
        globex_key = next(k for k in await client.keys() if k.tenant == "globex")
        with pytest.raises(podium.UsageError, match="no active API key"):
            await acme.revoke_key(globex_key.id)
        await acme.revoke_key(made.id)
        with pytest.raises(podium.UsageError, match="positive duration"):
            await root.create_key("bad", "viewer", expires=0)
        assert (await client.authenticate(acme_secret)) is not None
