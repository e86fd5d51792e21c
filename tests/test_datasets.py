"""Datasets (versioned by append, JSONL in and out) and human feedback as data: ratings, corrections and
edited approvals, linked to run, step, model and prompt version. Memory, SQLite and PostgreSQL; the CLI in
real subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import eval_app
import httpx
import pytest
import uvicorn
from conftest import WAIT_SECONDS, close_within, eventually, settings_for

import podium
from podium.server import create_app

ROOT = Path(__file__).resolve().parent.parent


@podium.flow(name="datasets.refund")
async def refund(ctx: podium.Context, order: dict[str, Any]) -> dict[str, Any]:
    proposal = {"order": order["id"], "amount": order["amount"]}
    decision = await ctx.approval("refund", payload=proposal)
    return {"refunded": decision.payload["amount"] if decision else 0}


@podium.flow(name="datasets.prompted")
async def prompted(ctx: podium.Context, text: str) -> str:
    """A model step whose journaled completion carries prompt provenance (as a registry prompt's does)."""

    async def call() -> dict[str, Any]:
        return {"model": "scripted", "served_by": "fast", "text": text.upper(),
                "prompt": {"name": "shout", "version": 3, "label": "production"}}  # fmt: skip

    result = await ctx.step("model:fast", call)
    return str(result["text"])


# -- datasets ----------------------------------------------------------------------------------------------


async def test_datasets_are_versioned_by_append_and_items_keep_their_ids(client: podium.Client) -> None:
    d = await client.datasets.create("tickets", description="support tickets")
    assert (d.name, d.version, d.items, d.description) == ("tickets", 0, 0, "support tickets")
    a = await client.datasets.add("tickets", {"text": "charged twice"}, "billing", metadata={"lang": "en"})
    b = await client.datasets.add("tickets", {"text": "crash"}, id="crash-1")
    assert (a.version, b.version, b.id) == (1, 2, "crash-1")
    fixed = await client.datasets.add("tickets", {"text": "crash"}, "bug", id="crash-1")  # a new revision
    assert fixed.version == 3
    items = await client.datasets.items("tickets")
    assert [(i.id, i.expected, i.version) for i in items] == [(a.id, "billing", 1), ("crash-1", "bug", 3)]
    assert items[0].metadata == {"lang": "en"}
    assert [i.expected for i in await client.datasets.items("tickets", version=2)] == ["billing", None]
    assert await client.datasets.add_many("tickets", [{"input": "x"}, {"input": "y", "expected": "z"}]) == 5
    d = await client.datasets.get("tickets")
    assert (d.version, d.items) == (5, 4)
    assert [x.name for x in await client.datasets.list()] == ["tickets"]
    with pytest.raises(podium.UsageError, match="exists already"):
        await client.datasets.create("tickets")
    assert (await client.datasets.create("tickets", exist_ok=True)).version == 5
    with pytest.raises(podium.NotFoundError, match="no dataset named 'nope'"):
        await client.datasets.add("nope", 1)
    with pytest.raises(podium.UsageError, match="invalid dataset name"):
        await client.datasets.create("has space")
    with pytest.raises(podium.UsageError, match="versions 0 to 5"):
        await client.datasets.items("tickets", version=9)
    with pytest.raises(podium.UsageError, match="not JSON-serializable"):
        await client.datasets.add("tickets", object())
    assert (await client.datasets.get("tickets")).version == 5  # nothing changed


async def test_export_and_import_round_trip_and_a_bad_line_imports_nothing(
    client: podium.Client, tmp_path: Path
) -> None:
    await client.datasets.create("src")
    await client.datasets.add("src", {"q": "é"}, {"a": [1, 2]}, id="one", metadata={"k": 1})
    await client.datasets.add("src", "plain", id="two", source={"run_id": "r1", "step": "0"})
    text = await client.datasets.export("src", tmp_path / "src.jsonl")
    assert (tmp_path / "src.jsonl").read_text(encoding="utf-8") == text
    assert [json.loads(line) for line in text.splitlines()] == [
        {"id": "one", "input": {"q": "é"}, "expected": {"a": [1, 2]}, "metadata": {"k": 1}},
        {"id": "two", "input": "plain", "expected": None, "source": {"run_id": "r1", "step": "0"}},
    ]
    assert await client.datasets.import_("copy", tmp_path / "src.jsonl") == 2  # created on import
    copied = await client.datasets.items("copy")
    assert [(i.id, i.input, i.expected, i.metadata, i.source) for i in copied] == [
        (i.id, i.input, i.expected, i.metadata, i.source) for i in await client.datasets.items("src")
    ]
    bad = "\n".join([
        '{"input": 1}', "not json", '["a list"]', '{"expected": 2}', '{"input": 1, "extra": 0}',
        '{"input": 1, "id": ""}', '{"input": 1, "metadata": 3}', "", '{"input": 5, "id": "x"}',
        '{"input": 6, "id": "x"}',
    ])  # fmt: skip
    with pytest.raises(podium.UsageError) as caught:
        await client.datasets.import_("copy", bad)
    message = str(caught.value)
    assert message.startswith("nothing imported; bad lines:")
    for expected in [
        "line 2: not valid JSON", "line 3: expected a JSON object, got list", "line 4: missing field 'input'",
        "line 5: unknown field(s) extra", "line 6: an item id must be a non-empty string",
        "line 7: metadata must be a JSON object", "line 10: item id 'x' appears again (first on line 9)",
    ]:  # fmt: skip
        assert expected in message
    assert "line 1:" not in message and "line 9:" not in message
    assert (await client.datasets.get("copy")).version == 2  # all or nothing
    with pytest.raises(podium.UsageError, match="nothing to import"):
        await client.datasets.import_("copy", "\n\n")
    with pytest.raises(podium.NotFoundError):
        await client.datasets.import_("absent", '{"input": 1}', create=False)


# -- feedback ----------------------------------------------------------------------------------------------


async def test_feedback_on_a_model_step_is_linked_to_model_and_prompt_and_becomes_a_dataset_item(
    client: podium.Client,
) -> None:
    h = await client.start(prompted, "hello")
    assert await h.result() == "HELLO"
    fb = await client.feedback(
        h.id, "model:fast", score=-1, comment="too loud", correction="Hello.", dataset="fixes", by="ann"
    )
    assert (fb.step, fb.step_name, fb.kind, fb.score, fb.comment) == (
        "0",
        "model:fast",
        "correction",
        -1,
        "too loud",
    )
    assert (fb.original, fb.correction, fb.model, fb.served_by) == ("HELLO", "Hello.", "scripted", "fast")
    assert fb.prompt == {"name": "shout", "version": 3, "label": "production"}
    assert (fb.dataset, fb.author) == ("fixes", "ann")
    (item,) = await client.datasets.items("fixes")  # the dataset was created for it
    assert (item.id, item.input, item.expected) == (fb.item_id, "hello", "Hello.")
    assert item.source == {
        "run_id": h.id, "step": "0", "step_name": "model:fast", "feedback": fb.id, "model": "scripted",
        "served_by": "fast", "prompt": {"name": "shout", "version": 3, "label": "production"},
    }  # fmt: skip
    assert item.metadata == {"score": -1, "comment": "too loud"}
    up = await client.feedback(
        h.id, "0", score=1, dataset="good"
    )  # by position; a thumbs up keeps the output
    assert (await client.datasets.items("good"))[0].expected == "HELLO" and up.kind == "rating"
    out = await client.feedback(h.id, "output", comment="fine")
    assert (out.step, out.original, out.model) == ("output", "HELLO", None)
    assert [f.id for f in await client.feedback_list(h.id)] == [out.id, up.id, fb.id]


async def test_feedback_on_a_real_model_call_names_the_model_that_answered(client: podium.Client) -> None:
    h = await client.start(
        eval_app.triage, {"text": "I was charged twice"}, pins={"model:triager": "triager_v2"}
    )
    assert await h.result() == "billing"
    fb = await client.feedback(h.id, "0", score=1)  # the step is named after the model that was pinned
    assert (fb.original, fb.model, fb.served_by, fb.prompt) == ("billing", "scripted", "triager_v2", None)


async def test_bad_feedback_is_a_clear_error_and_stores_nothing(client: podium.Client) -> None:
    h = await client.start(prompted, "x")
    await h.result()
    for kwargs, message in [
        ({"step": "9", "score": 1}, "has no finished step '9'"),
        ({"step": "0", "score": 5}, "score must be"),
        ({"step": "0", "score": True}, "score must be"),
        ({"step": "0"}, "needs a score, a comment or a correction"),
        ({"step": "0", "score": 1, "dataset": "bad name"}, "invalid dataset name"),
        ({"step": "0", "correction": object()}, "not JSON-serializable"),
    ]:
        with pytest.raises(podium.UsageError, match=message):
            await client.feedback(h.id, **kwargs)
    with pytest.raises(podium.RunNotFoundError):
        await client.feedback("nope", "0", score=1)
    assert await client.feedback_list(h.id) == []


async def test_an_approval_decided_with_an_edited_payload_is_recorded_as_feedback(
    client: podium.Client,
) -> None:
    h = await client.start(refund, {"id": "A1", "amount": 90})
    await eventually(client.pending_approvals, lambda p: len(p) == 1, what="the approval request")
    await client.approve(h.id, payload={"order": "A1", "amount": 50}, by="ann", comment="half is fair")
    assert await h.result() == {"refunded": 50}
    (fb,) = await client.feedback_list(h.id)
    assert (fb.kind, fb.step_name, fb.author, fb.comment) == ("approval", "refund", "ann", "half is fair")
    assert (fb.original, fb.correction) == ({"order": "A1", "amount": 90}, {"order": "A1", "amount": 50})
    plain = await client.start(refund, {"id": "A2", "amount": 10})
    await eventually(client.pending_approvals, lambda p: len(p) == 1, what="the second approval")
    await client.approve(plain.id)  # not edited: nothing to learn from
    await plain.result()
    assert await client.feedback_list(plain.id) == []
    # feedback on the approval itself: its payload is the output
    again = await client.feedback(h.id, "refund", score=-1)
    assert again.original == {"order": "A1", "amount": 90}


# -- the commands -------------------------------------------------------------------------------------------


def cli(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}",
        "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path}/podium.db",
        "PODIUM_POLL_SECONDS": "0.1",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "podium.cli", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=90, input=stdin,
    )  # fmt: skip


def test_podium_datasets_and_feedback_commands(tmp_path: Path) -> None:
    assert cli(tmp_path, "datasets", "create", "t", "-d", "tickets").returncode == 0
    r = cli(
        tmp_path, "datasets", "add", "t", "--input", '{"text": "crash"}', "--expected", '"bug"', "--id", "c1"
    )
    assert r.returncode == 0 and "item c1 added to t (version 1)" in r.stdout, r.stderr
    r = cli(tmp_path, "datasets", "import", "t", "-", stdin='{"input": "x"}\n{"input": 2, "expected": 3}\n')
    assert r.returncode == 0 and "2 item(s) imported into t" in r.stdout, r.stderr
    r = cli(tmp_path, "datasets", "import", "t", "-", stdin='{"input": "x"}\n{"inptu": 2}\n')
    assert r.returncode == 1 and "line 2: unknown field(s) inptu" in r.stderr and "Traceback" not in r.stderr
    r = cli(tmp_path, "datasets", "list")
    assert r.returncode == 0 and "│ t " in r.stdout and "tickets" in r.stdout
    r = cli(tmp_path, "datasets", "show", "t")
    assert r.returncode == 0 and "version 3, 3 items" in r.stdout and "crash" in r.stdout
    r = cli(tmp_path, "datasets", "export", "t", "-o", "t.jsonl")
    assert r.returncode == 0 and "3 item(s) written to t.jsonl" in r.stderr
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"id": "c1", "input": {"text": "crash"}, "expected": "bug"}
    r = cli(tmp_path, "datasets", "export", "t", "--version", "1")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1
    r = cli(tmp_path, "datasets", "add", "t", "--input", "{oops")
    assert r.returncode == 1 and "--input is not valid JSON" in r.stderr
    r = cli(tmp_path, "datasets", "show", "missing")
    assert r.returncode == 1 and "no dataset named 'missing'" in r.stderr

    r = cli(tmp_path, "run", f"{ROOT}/tests/test_datasets.py:prompted", "--input", '"hi"')
    assert r.returncode == 0, r.stderr
    run_id = r.stderr.split("run ")[1].split()[0]
    r = cli(tmp_path, "feedback", run_id, "model:fast", "--down", "--comment", "meh", "--correct", '"Hi."',
            "--dataset", "fixes")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "model fast prompt shout@3 -> dataset fixes" in r.stdout
    r = cli(tmp_path, "feedback", run_id)
    assert r.returncode == 0 and "meh" in r.stdout and "shout@3" in r.stdout and "👎" in r.stdout
    r = cli(tmp_path, "datasets", "show", "fixes", "--json")
    item = json.loads(r.stdout)
    assert (item["input"], item["expected"], item["source"]["run_id"]) == ("hi", "Hi.", run_id)
    r = cli(tmp_path, "feedback", run_id, "0", "--up", "--down")
    assert r.returncode == 1 and "--up or --down, not both" in r.stderr


# -- the REST API -------------------------------------------------------------------------------------------


@pytest.fixture
async def rest(tmp_path: Path) -> AsyncIterator[tuple[str, podium.Client, httpx.AsyncClient, dict[str, str]]]:
    client = podium.Client(settings_for(f"sqlite:///{tmp_path}/podium.db"))
    await client.open()
    keys = {role: (await client.create_key(role, role))[1] for role in ("viewer", "operator", "approver")}
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(client, {}), ws="none", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: asyncio.sleep(0.01, server.started), bool, what="the server to start")
        async with httpx.AsyncClient(timeout=WAIT_SECONDS) as http:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}/api", client, http, keys
    finally:
        server.should_exit = True
        await task
        sock.close()
        await close_within(client)


async def test_the_rest_api_gives_feedback_and_manages_datasets_by_role(
    rest: tuple[str, podium.Client, httpx.AsyncClient, dict[str, str]],
) -> None:
    url, client, http, keys = rest

    def auth(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[role]}"}

    h = await client.start(prompted, "hey")
    await h.result()
    body = {"step": "model:fast", "score": -1, "comment": "loud", "correction": "Hey.", "dataset": "fixes"}
    r = await http.post(f"{url}/runs/{h.id}/feedback", json=body, headers=auth("viewer"))
    assert r.status_code == 403 and "feedback" in r.json()["error"]
    r = await http.post(f"{url}/runs/{h.id}/feedback", json=body, headers=auth("approver"))
    assert r.status_code == 201, r.text
    fb = r.json()
    assert (fb["author"], fb["prompt"]["version"], fb["correction"], fb["dataset"]) == (
        "approver (approver)",
        3,
        "Hey.",
        "fixes",
    )
    r = await http.post(
        f"{url}/runs/{h.id}/feedback", json={"step": "0", "score": 1}, headers=auth("operator")
    )
    assert r.status_code == 201 and r.json()["correction"] is None and r.json()["kind"] == "rating"
    r = await http.get(f"{url}/runs/{h.id}/feedback", headers=auth("viewer"))
    assert [f["score"] for f in r.json()["feedback"]] == [1, -1]
    assert len((await http.get(f"{url}/feedback", headers=auth("viewer"))).json()["feedback"]) == 2
    r = await http.post(
        f"{url}/runs/{h.id}/feedback", json={"step": "7", "score": 1}, headers=auth("operator")
    )
    assert r.status_code == 400 and "no finished step '7'" in r.json()["error"]
    r = await http.post(f"{url}/runs/nope/feedback", json={"step": "0", "score": 1}, headers=auth("operator"))
    assert r.status_code == 404

    r = await http.post(f"{url}/datasets", json={"name": "t"}, headers=auth("approver"))
    assert r.status_code == 403
    r = await http.post(f"{url}/datasets", json={"name": "t", "description": "d"}, headers=auth("operator"))
    assert r.status_code == 201 and r.json()["version"] == 0
    r = await http.post(
        f"{url}/datasets/t/items", json={"input": {"a": 1}, "expected": 2}, headers=auth("operator")
    )
    assert r.status_code == 201 and r.json()["version"] == 1
    lines = '{"input": 3, "id": "x"}\n{"input": 4}\n'
    r = await http.post(f"{url}/datasets/t/import", content=lines, headers=auth("operator"))
    assert r.status_code == 201 and r.json() == {"imported": 2}
    r = await http.post(f"{url}/datasets/t/import", content='{"input": 5}\n{bad\n', headers=auth("operator"))
    assert r.status_code == 400 and "line 2: not valid JSON" in r.json()["error"]
    r = await http.get(f"{url}/datasets/t", headers=auth("viewer"))
    assert (r.json()["dataset"]["version"], len(r.json()["items"])) == (3, 3)
    r = await http.get(f"{url}/datasets/t?version=1", headers=auth("viewer"))
    assert [i["input"] for i in r.json()["items"]] == [{"a": 1}]
    r = await http.get(f"{url}/datasets/t/export", headers=auth("viewer"))
    assert r.headers["content-type"].startswith("application/x-ndjson") and len(r.text.splitlines()) == 3
    r = await http.get(f"{url}/datasets", headers=auth("viewer"))
    assert sorted(d["name"] for d in r.json()["datasets"]) == ["fixes", "t"]
    assert (await http.get(f"{url}/datasets/missing", headers=auth("viewer"))).status_code == 404

    # A key of one tenant: feedback on its tenant's runs only, and no copying of run data into shared datasets
    _, acme = await client.create_key("acme-ops", "operator", tenant="acme")
    theirs = await client.start(prompted, "acme text", tenant="acme")
    await theirs.result()
    hdr = {"Authorization": f"Bearer {acme}"}
    r = await http.post(
        f"{url}/runs/{theirs.id}/feedback", json={"step": "0", "score": 1, "dataset": "t"}, headers=hdr
    )
    assert r.status_code == 403 and "shared by every tenant" in r.json()["error"]
    r = await http.post(f"{url}/runs/{theirs.id}/feedback", json={"step": "0", "comment": "ok"}, headers=hdr)
    assert r.status_code == 201 and r.json()["author"] == "acme-ops (operator)"
    r = await http.post(f"{url}/runs/{h.id}/feedback", json={"step": "0", "score": 1}, headers=hdr)
    assert r.status_code == 404  # a run of another tenant does not exist for this key
    assert [f["run_id"] for f in (await http.get(f"{url}/feedback", headers=hdr)).json()["feedback"]] == [
        theirs.id
    ]
    assert (await http.post(f"{url}/datasets", json={"name": "mine"}, headers=hdr)).status_code == 403

    report = await client.evaluate("fixes", prompted, scorers=["exact"])
    r = await http.get(f"{url}/evals", headers=auth("viewer"))
    assert [e["id"] for e in r.json()["evals"]] == [report.id]
    r = await http.get(f"{url}/evals/{report.id}", headers=auth("viewer"))
    assert r.json()["variants"][0]["scores"] == {"exact": 0.0} and len(r.json()["results"]) == 1
    assert (await http.get(f"{url}/evals/nope", headers=auth("viewer"))).status_code == 404
