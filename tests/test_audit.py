"""The tamper-evident audit trail: what is recorded, verification that names the first bad entry after each
kind of tampering (edited, inserted, deleted, reordered, truncated, re-signed), erasure that keeps the chain
valid, signed checkpoints, concurrent appends, export and the CLI. On real SQLite files and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import WAIT_SECONDS, settings_for, wait_approval

import podium
from podium.observability.audit import export, load_key, public_hex, verify
from podium.storage.audit import AuditDraft

DURABLE = pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)


@podium.flow(name="audit.needs_ok")
async def needs_ok(ctx: podium.Context, amount: int) -> bool:
    return bool(await ctx.approval("refund", payload={"amount": amount}))


@podium.flow(name="audit.waits")
async def waits(ctx: podium.Context, _: None = None) -> None:
    await ctx.wait_for_signal("never")


def sql(url: str) -> Callable[[str], list[tuple[Any, ...]]]:
    """Run raw SQL on the test's database, as someone with write access to it would."""

    def run(statement: str) -> list[tuple[Any, ...]]:
        if url.startswith("sqlite:///"):
            db = sqlite3.connect(url.removeprefix("sqlite:///"))
            with db:
                rows = db.execute(statement).fetchall()
            db.close()
            return rows
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []

    return run


async def _history(client: podium.Client) -> str:
    """Security-relevant events of every kind; returns the approved run's id."""
    key, _ = await client.create_key("ops-bot", "operator", by="alice")
    await client.revoke_key(key.id, by="alice")
    run = await client.start(needs_ok, 900, by="bob")
    await wait_approval(client, run.id)
    await client.approve(run.id, by="carol", comment="looks fine")
    assert await run.result(timeout=WAIT_SECONDS) is True
    waiting = await client.start(waits, by="bob")
    await client.cancel(waiting.id, by="dave")
    await client.start_many([(waits, None, "k1"), (waits, None, "k1")])  # one run: the key repeats
    return run.id


async def test_security_events_are_recorded_in_order_and_verify(store_url: str) -> None:
    async with podium.Client(settings_for(store_url)) as client:
        run_id = await _history(client)
        entries = await client.store.audit_scan()
        got = [(e.action, e.actor) for e in entries]
        assert got == [
            ("key.created", "alice"),
            ("key.revoked", "alice"),
            ("run.started", "bob"),
            ("approval.decided", "carol"),
            ("run.started", "bob"),
            ("run.cancelled", "dave"),
            ("run.started", None),
        ]
        decided = json.loads(entries[3].payload or "")
        assert entries[3].subject == run_id
        assert decided == {
            "approved": True,
            "by": "carol",
            "comment": "looks fine",
            "edited": False,
            "approval": "refund",
            "tenant": "default",
        }
        assert json.loads(entries[1].payload or "") == {"tenant": None}  # the key's id and tenant
        report = await verify(client.store)
        assert report.ok and report.entries == 7, report


async def test_audit_can_be_switched_off(tmp_path: Path) -> None:
    settings = podium.Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}", audit=False)
    async with podium.Client(settings) as client:
        await client.start(waits)
        assert client.auditor is None
        assert await client.store.audit_scan() == []


TAMPERING = {
    "edited payload": (
        "UPDATE audit SET payload = '{\"approved\":false}' WHERE seq = 4",
        4,
        "payload was edited",
    ),
    "edited field": ("UPDATE audit SET actor = 'mallory' WHERE seq = 3", 3, "was edited"),
    "deleted entry": ("DELETE FROM audit WHERE seq = 2", 2, "missing"),
    "inserted entry": (
        "UPDATE audit SET seq = -seq WHERE seq >= 5; UPDATE audit SET seq = 1 - seq WHERE seq < 0; "
        "INSERT INTO audit SELECT 5, at, actor, action, subject, payload, payload_hash, prev, hash "
        "FROM audit WHERE seq = 2",
        5,
        "inserted, reordered or edited",
    ),
    "reordered entries": (
        "UPDATE audit SET seq = -seq WHERE seq IN (5, 6); "
        "UPDATE audit SET seq = CASE seq WHEN -5 THEN 6 ELSE 5 END WHERE seq < 0",
        5,
        "does not follow",
    ),
    "truncated tail": ("DELETE FROM audit WHERE seq >= 6", 6, "were deleted"),
}


@DURABLE
@pytest.mark.parametrize("case", list(TAMPERING))
async def test_verify_names_the_first_bad_entry(store_url: str, case: str, tmp_path: Path) -> None:
    # A signing key on both stores (PostgreSQL has none by default), so truncation is seen.
    settings = replace(settings_for(store_url), audit_key=str(tmp_path / "audit.key"))
    async with podium.Client(settings) as client:
        await _history(client)
    async with podium.Client(settings, worker=False) as client:
        assert (await verify(client.store)).ok
    statement, first_bad, problem = TAMPERING[case]
    run = sql(store_url)
    for part in statement.split("; "):
        run(part)
    async with podium.Client(settings, worker=False) as client:
        report = await verify(client.store)
    assert not report.ok
    assert report.first_bad == first_bad, report
    assert problem in (report.problem or ""), report


@DURABLE
async def test_erasing_a_subjects_payloads_keeps_the_chain_valid(store_url: str) -> None:
    async with podium.Client(settings_for(store_url)) as client:
        run_id = await _history(client)
        assert await client.store.audit_erase(run_id) == 2  # started and approved
        entries = await client.store.audit_scan()
        erased = [e for e in entries if e.subject == run_id]
        assert [e.payload for e in erased] == [None, None] and all(e.payload_hash for e in erased)
        report = await verify(client.store)
        assert report.ok and report.erased == 2, report


async def test_checkpoints_catch_a_rewritten_chain_unless_the_key_is_stolen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    async with podium.Client(settings_for(url)) as client:
        await _history(client)
    # The client signed the head on close, with the key beside the database.
    trusted = public_hex(load_key(tmp_path / "audit.key", create=False))
    run = sql(url)
    assert run("SELECT seq, public_key FROM audit_checkpoints") == [(7, trusted)]

    # Someone with write access rewrites entry 3 and recomputes every hash after it.
    async with podium.Client(settings_for(url), worker=False) as client:
        rows = await client.store.audit_scan()
    run("DELETE FROM audit WHERE seq >= 3")
    forged = [
        AuditDraft(
            r.action, r.at, "mallory" if r.seq == 3 else r.actor, r.subject, json.loads(r.payload or "null")
        )
        for r in rows[2:]
    ]
    async with podium.Client(settings_for(url), worker=False) as client:
        await client.store.audit_append(forged)
        report = await verify(client.store)
        assert report.first_bad == 7 and "differs from the signed checkpoint" in (report.problem or "")

        # ... and re-signs with a key of their own: only a verifier holding the trusted key sees it.
        from podium.observability.audit import Auditor

        await Auditor(client.store, key_path=tmp_path / "mallory.key").checkpoint()
        run(f"DELETE FROM audit_checkpoints WHERE public_key = '{trusted}'")
        assert (await verify(client.store)).ok  # the stored key vouches for itself
        report = await verify(client.store, public_key=trusted)
        assert report.first_bad == 7 and "bad signature" in (report.problem or "")


async def test_many_writers_extend_one_chain(store_url: str) -> None:
    async with podium.Client(settings_for(store_url), worker=False) as a:
        # Two clients on one database (on memory://, one store object: each would have its own).
        b = podium.Client(
            settings_for(store_url), worker=False, store=a.store if store_url == "memory://" else None
        )
        await b.open()

        async def write(client: podium.Client, who: str) -> None:
            for i in range(25):
                assert client.auditor is not None
                await client.auditor.record("test.event", actor=who, payload={"i": i})

        try:
            await asyncio.gather(write(a, "a"), write(b, "b"), write(a, "c"))
        finally:
            if store_url != "memory://":
                await b.close()
        report = await verify(a.store)
        assert report.ok and report.entries == 75, report


def test_two_processes_append_to_one_sqlite_chain(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    code = (
        "import asyncio, sys, podium\n"
        "async def main():\n"
        f"    async with podium.Client(podium.Settings(database_url={url!r}), worker=False) as c:\n"
        "        for i in range(200):\n"
        "            await c.auditor.record('test.event', actor=sys.argv[1], payload={'i': i})\n"
        "asyncio.run(main())\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, who]) for who in ("p1", "p2")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    done = subprocess.run(
        [sys.executable, "-m", "podium.cli", "audit", "verify", "--db", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "400 entries" in done.stdout


def test_export_writes_every_entry_as_jsonl(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"

    async def make() -> None:
        async with podium.Client(settings_for(url)) as client:
            await _history(client)

    asyncio.run(make())
    out = tmp_path / "audit.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "podium.cli", "audit", "export", "-o", str(out), "--db", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, 8))
    assert lines[3]["action"] == "approval.decided" and lines[3]["payload"]["comment"] == "looks fine"

    async def again() -> int:
        async with podium.Client(settings_for(url), worker=False) as client:
            with (tmp_path / "again.jsonl").open("w") as f:
                return await export(client.store, f, after=5)

    assert asyncio.run(again()) == 2


def test_cli_verify_names_the_first_bad_entry_and_fails(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"

    async def make() -> None:
        async with podium.Client(settings_for(url)) as client:
            await _history(client)

    asyncio.run(make())
    sql(url)("UPDATE audit SET actor = 'mallory' WHERE seq = 3")
    done = subprocess.run(
        [sys.executable, "-m", "podium.cli", "audit", "verify", "--db", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "entry 3" in done.stderr and "was edited" in done.stderr and "Traceback" not in done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "podium.cli", "audit", "verify", "--public-key", "xyz", "--db", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "64 hex digits" in bad.stderr


async def test_each_tenant_reads_its_own_audit_entries_even_after_an_erasure(store_url: str) -> None:
    from podium.policies.access import Principal

    async with podium.Client(settings_for(store_url)) as client:
        acme_key, _ = await client.create_key("acme-ops", "admin", tenant="acme", by="root")
        await client.create_key("platform-ops", "admin", by="root")
        a = await client.start(needs_ok, 10, tenant="acme", subject="u-1", by="bob")
        await wait_approval(client, a.id)
        await client.approve(a.id, by="carol")
        await a.result(timeout=WAIT_SECONDS)
        g = await client.start(waits, tenant="globex", by="eve")
        await client.cancel(g.id, by="eve")
        await client.revoke_key(acme_key.id, by="root")
        await client.erase_subject("u-1", by="dpo")  # erases the payloads of run a's entries

        acme = client.acting_as(Principal("acme-admin", "admin", tenant="acme"))
        page = await acme.audit()
        assert [(e["action"], e["subject"]) for e in page.entries] == [
            ("key.created", acme_key.id),
            ("run.started", a.id),
            ("approval.decided", a.id),
            ("key.revoked", acme_key.id),
        ]
        assert {e["tenant"] for e in page.entries} == {"acme"} and page.next is None
        assert page.entries[1]["payload"] is None  # erased, still attributed through its run
        assert g.id not in json.dumps(page.entries)
        globex = client.acting_as(Principal("globex-admin", "admin", tenant="globex"))
        assert [e["action"] for e in (await globex.audit()).entries] == ["run.started", "run.cancelled"]

        platform = client.acting_as(Principal("root", "admin"))
        everything = (await platform.audit()).entries
        assert len(everything) == 8 and everything[-1]["action"] == "data.deleted"
        assert [e["tenant"] for e in everything if e["action"] == "data.deleted"] == [None]  # platform's
        assert [e["subject"] for e in (await platform.audit(tenant="globex")).entries] == [g.id, g.id]
        first = await platform.audit(limit=3)
        rest = await platform.audit(after=first.next or 0, limit=1000)
        assert first.entries + rest.entries == everything and rest.next is None
        assert [e["action"] for e in (await platform.audit(action="run.cancelled")).entries] == [
            "run.cancelled"
        ]
        with pytest.raises(podium.PermissionDeniedError):
            await acme.audit(tenant="globex")
        with pytest.raises(podium.PermissionDeniedError):
            await client.acting_as(Principal("acme-op", "operator", tenant="acme")).audit()
        with pytest.raises(podium.UsageError):
            await platform.audit(limit=0)
        assert (await verify(client.store)).ok
