"""Erasing a data subject (``Client.erase_subject``, ``podium data delete --subject``): its finished runs'
data, payloads and token streams, its memories and threads, its audit entries' payloads; searched for
afterwards through the API and in the database files' bytes. Other subjects keep theirs; the audit chain still
verifies; runs under way are left alone and reported."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import WAIT_SECONDS, settings_for, wait_status

import podium
from podium.observability.audit import verify
from podium.testing import FakeOpenAIServer

SHARED = "lorem ipsum dolor sit amet " * 300  # 8 KB: stored once, by hash, for every run that holds it


@podium.step
async def greet(email: str, notes: str) -> dict[str, str]:
    return {"greeting": f"hello {email}", "notes": notes}


@podium.flow(name="erasure.note")
async def note(ctx: podium.Context, email: str) -> str:
    return f"noted {email}"


@podium.flow(name="erasure.profile")
async def profile(ctx: podium.Context, person: dict[str, Any]) -> dict[str, Any]:
    out = await greet(person["email"], person["notes"])
    out["child"] = await ctx.child(note, person["email"])
    if person.get("wait"):
        await ctx.wait_for_signal("go")
    return out


def person(email: str, *, private: bool = True, wait: bool = False) -> dict[str, Any]:
    notes = f"{SHARED} private notes of {email} " * 40 if private else SHARED  # > 4 KB either way
    return {"email": email, "notes": notes, "wait": wait}


async def test_erasing_a_subject_leaves_nothing_of_it_and_keeps_the_others(store_url: str) -> None:
    async with podium.Client(settings_for(store_url)) as client:
        mine = await client.start(profile, person("jane.subject@example.org"), subject="user-42", by="ops")
        theirs = await client.start(profile, person("bob.other@example.org", private=False), subject="user-7")
        shared = await client.start(profile, person("anon@example.org", private=False))  # no subject
        live = await client.start(profile, person("jane.live@example.org", wait=True), subject="user-42")
        for h in (mine, theirs, shared):
            await h.result(timeout=WAIT_SECONDS)
        await wait_status(client, live.id, podium.RunStatus.WAITING)
        child = next(
            r
            for r in await client.list()
            if r.flow == "erasure.note" and r.input == "jane.subject@example.org"
        )

        report = await client.erase_subject("user-42", by="dpo")

        assert report.subject == "user-42"
        assert mine.id in report.runs and len(report.runs) == 3  # the run, its child and the live run's child
        assert report.unfinished == [live.id] and report.events > 0 and report.audit_entries >= 1
        for run_id in report.runs:
            run = await client.get(run_id)
            assert run.input == {"erased": True} and run.output == {"erased": True}
            entries = await client.journal(run_id)
            assert entries and all(e.data in (None, {"erased": True}) for e in entries)
            assert entries[0].kind == "start"  # the skeleton stays
        text = json.dumps([await client.journal(r) for r in report.runs], default=str)
        assert "jane.subject" not in text and "private notes" not in text
        # Another subject's run, and a run with no subject that held the same shared bytes, are whole.
        assert (await client.result(theirs.id))["greeting"] == "hello bob.other@example.org"
        assert (await client.result(shared.id))["notes"] == SHARED
        assert (await client.get(child.id)).input == {"erased": True}
        # The live run goes on, untouched.
        await client.signal(live.id, "go")
        assert (await live.result(timeout=WAIT_SECONDS))["greeting"] == "hello jane.live@example.org"

        audit = await verify(client.store)
        assert audit.ok and audit.erased >= 1, audit
        deleted = [e for e in await client.store.audit_scan() if e.action == "data.deleted"]
        assert len(deleted) == 1 and deleted[0].actor == "dpo" and deleted[0].subject == "user-42"
        again = await client.erase_subject("user-42")  # idempotent: the live run has ended since
        assert again.unfinished == [] and live.id in again.runs


def test_nothing_of_the_subject_stays_in_the_files(tmp_path: Path) -> None:
    """SQLite: secure_delete zeroes freed bytes and the WAL is checkpointed, so the values leave the disk, in
    the run store and in the memory layer on the same file."""
    from podium.memory import Memory, Thread
    from podium.testing import HASH_EMBED_CONFIG

    url = f"sqlite:///{tmp_path / 'p.db'}"
    secret = "jane.files@example.org"

    async def main() -> Any:
        settings = settings_for(url).with_(config={"models": {"embed": HASH_EMBED_CONFIG}})
        async with podium.Client(settings) as client:
            h = await client.start(profile, person(secret), subject="user-9")
            await h.result(timeout=WAIT_SECONDS)
            await Memory("user-9", settings=settings).put(f"her address is {secret}", key="email")
            await Memory("user-10", settings=settings).put("his address is kept@example.org", key="email")
            await Thread("user-9/support", settings=settings).append(
                [{"role": "user", "content": f"I am {secret}"}]
            )
            report = await client.erase_subject("user-9")
            assert await Memory("user-9", settings=settings).search("address") == []
            kept = await Memory("user-10", settings=settings).search("address")
            assert [h.key for h in kept] == ["email"]
            assert await Thread("user-9/support", settings=settings).history() == []
            return report

    report = asyncio.run(main())
    assert report.spaces == ["memory:user-9"] and report.threads == ["user-9/support"]
    assert len(report.runs) == 2
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f"the subject's e-mail is still in {f.name}"


@podium.flow(name="erasure.ask")
async def ask(ctx: podium.Context, text: str) -> bool:
    c = await ctx.model("remote").chat([{"role": "user", "content": text}], temperature=0)
    return c.cached


async def test_runs_with_a_subject_bypass_the_shared_response_cache(tmp_path: Path) -> None:
    with FakeOpenAIServer(default="ok:forty two") as server:
        config = {"models": {"remote": {"provider": "openai", "model": "m", "base_url": server.url}}}
        async with podium.Client(settings_for(f"sqlite:///{tmp_path / 'c.db'}").with_(config=config)) as c:
            assert (
                await (await c.start(ask, "meaning?", subject="user-1")).result(timeout=WAIT_SECONDS) is False
            )
            assert await c.store.cache_scan("") == []  # nothing of the subject's was cached
            assert await (await c.start(ask, "meaning?")).result(timeout=WAIT_SECONDS) is False
            assert await (await c.start(ask, "meaning?")).result(timeout=WAIT_SECONDS) is True
            # ... and a subject's run is not answered from the cache others filled.
            assert (
                await (await c.start(ask, "meaning?", subject="user-2")).result(timeout=WAIT_SECONDS) is False
            )
        assert len(server.requests) == 3


def test_podium_data_delete(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"

    async def make() -> str:
        async with podium.Client(settings_for(url)) as client:
            h = await client.start(profile, person("jane.cli@example.org"), subject="user-5")
            await h.result(timeout=WAIT_SECONDS)
            return h.id

    run_id = asyncio.run(make())
    cmd = [sys.executable, "-m", "podium.cli", "data", "delete", "--subject", "user-5", "--db", url]
    refused = subprocess.run(cmd, input="n\n", capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "nothing was erased" in refused.stderr
    done = subprocess.run([*cmd, "--yes"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "runs" in done.stdout and "erased" in done.stderr

    async def check() -> Any:
        async with podium.Client(settings_for(url), worker=False) as client:
            return (await client.get(run_id)).input

    assert asyncio.run(check()) == {"erased": True}
    bad_cmd = [*cmd[:5], "--subject", "has space", "--yes", "--db", url]
    bad = subprocess.run(bad_cmd, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "data subject" in bad.stderr and "Traceback" not in bad.stderr
