"""The REST API over a real uvicorn server on 127.0.0.1: runs, signals, approvals, journals, event streams,
API keys with roles, who-did-what in the journal, and clear 4xx answers for every malformed request."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from conftest import WAIT_SECONDS, close_within, eventually, settings_for
from pydantic import BaseModel

import podium
from podium.server import create_app


class Ticket(BaseModel):
    customer: str
    amount: float


@podium.flow(name="api.refund")
async def refund(ctx: podium.Context, ticket: Ticket) -> dict[str, Any]:
    """Refund a ticket after a human approves it."""
    decision = await ctx.approval("refund", payload={"amount": ticket.amount})
    note = await ctx.wait_for_signal("note") if decision else None
    return {"approved": decision.approved, "amount": (decision.payload or {}).get("amount"), "note": note}


@podium.flow(name="api.echo")
async def echo(ctx: podium.Context, text: str) -> str:
    return text


@dataclass
class Api:
    url: str
    client: podium.Client
    http: httpx.AsyncClient
    keys: dict[str, str]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    async def get(self, path: str, role: str = "viewer", **kw: Any) -> httpx.Response:
        return await self.http.get(self.url + path, headers=self.auth(role), **kw)

    async def post(self, path: str, body: Any = None, role: str = "operator", **kw: Any) -> httpx.Response:
        return await self.http.post(self.url + path, json=body, headers=self.auth(role), **kw)


@asynccontextmanager
async def serving(client: podium.Client) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(client, {}), ws="none", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: asyncio.sleep(0.01, server.started), bool, what="the server to start")
        async with httpx.AsyncClient(timeout=WAIT_SECONDS) as http:
            yield f"http://127.0.0.1:{port}", http
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    client = podium.Client(settings_for(f"sqlite:///{tmp_path}/podium.db"))
    await client.open()
    keys = {}
    for role in ("viewer", "operator", "approver", "admin"):
        _, keys[role] = await client.create_key(f"{role}-bot", role)
    try:
        async with serving(client) as (url, http):
            yield Api(url, client, http, keys)
    finally:
        await close_within(client)


async def test_start_approve_signal_and_read_a_run(api: Api) -> None:
    r = await api.post(
        "/api/runs", {"flow": "api.refund", "input": {"customer": "ann", "amount": 120}, "key": "t-1"}
    )
    assert r.status_code == 201, r.text
    run_id = r.json()["run"]["id"]
    again = await api.post(
        "/api/runs", {"flow": "api.refund", "input": {"customer": "ann", "amount": 120}, "key": "t-1"}
    )
    assert again.status_code == 200 and again.json() == {**again.json(), "created": False}
    assert again.json()["run"]["id"] == run_id

    inbox = await eventually(
        lambda: api.get("/api/approvals"), lambda r: r.json()["approvals"], what="the inbox"
    )
    assert inbox.json()["approvals"][0] == {
        **inbox.json()["approvals"][0],
        "run_id": run_id,
        "name": "refund",
    }
    r = await api.post(f"/api/runs/{run_id}/signals", {"name": "note", "payload": "thanks", "key": "n1"})
    assert r.json() == {"delivered": True}
    r = await api.post(f"/api/runs/{run_id}/signals", {"name": "note", "payload": "thanks", "key": "n1"})
    assert r.json() == {"delivered": False}  # the same id: applied once (kept until the flow waits)
    r = await api.post(
        f"/api/runs/{run_id}/approve", {"payload": {"amount": 100}, "comment": "partial"}, role="approver"
    )
    assert r.status_code == 200, r.text
    assert await api.client.result(run_id, timeout=WAIT_SECONDS) == {
        "approved": True,
        "amount": 100,
        "note": "thanks",
    }

    run = (await api.get(f"/api/runs/{run_id}")).json()
    assert run["status"] == "completed" and run["output"]["amount"] == 100
    journal = (await api.get(f"/api/runs/{run_id}/journal")).json()["events"]
    by = {e["kind"]: e["data"].get("by") for e in journal if isinstance(e["data"], dict)}
    assert by["start"] == "operator-bot (operator)"
    assert by["decision"] == "approver-bot (approver)"
    assert by["signal"] == "operator-bot (operator)"
    rows = (await api.get(f"/api/runs/{run_id}/timeline")).json()["rows"]
    assert [r["kind"] for r in rows] == ["approval", "signal"]
    listed = (await api.get("/api/runs", params={"status": "completed", "flow": "api.refund"})).json()
    assert [r["id"] for r in listed["runs"]] == [run_id]


async def test_list_pages_with_a_cursor(api: Api) -> None:
    ids = []
    for i in range(5):
        r = await api.post("/api/runs", {"flow": "api.echo", "input": f"t{i}"})
        ids.append(r.json()["run"]["id"])
    page = (await api.get("/api/runs", params={"limit": 2, "flow": "api.echo"})).json()
    seen = [r["id"] for r in page["runs"]]
    while page["next"]:
        page = (
            await api.get("/api/runs", params={"limit": 2, "flow": "api.echo", "before": page["next"]})
        ).json()
        seen += [r["id"] for r in page["runs"]]
    assert sorted(seen) == sorted(ids) and len(seen) == 5


async def test_roles_are_checked_on_every_route(api: Api) -> None:
    start = {"flow": "api.echo", "input": "x"}
    assert (await api.post("/api/runs", start, role="viewer")).status_code == 403
    assert (await api.post("/api/runs", start, role="approver")).status_code == 403
    r = await api.post("/api/runs", start, role="operator")
    run_id = r.json()["run"]["id"]
    assert (await api.post(f"/api/runs/{run_id}/approve", {}, role="operator")).status_code == 403
    assert (await api.get("/api/keys", role="operator")).status_code == 403
    assert (await api.get("/api/keys", role="admin")).status_code == 200
    assert (await api.http.get(api.url + "/api/runs")).status_code == 401
    bad = await api.http.get(api.url + "/api/runs", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and "unknown, revoked or expired" in bad.json()["error"]
    assert (await api.http.get(api.url + "/healthz")).status_code == 200  # no key needed
    # A revoked key stops working at once.
    created = (await api.post("/api/keys", {"name": "temp", "role": "viewer"}, role="admin")).json()
    temp = {"Authorization": f"Bearer {created['secret']}"}
    assert (await api.http.get(api.url + "/api/runs", headers=temp)).status_code == 200
    r = await api.http.delete(api.url + f"/api/keys/{created['key']['id']}", headers=api.auth("admin"))
    assert r.status_code == 200
    assert (await api.http.get(api.url + "/api/runs", headers=temp)).status_code == 401
    keys = (await api.get("/api/keys", role="admin")).json()["keys"]
    assert all("secret" not in k and "hash" not in k for k in keys)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("post", "/api/runs", {"flow": "nope"}, 404, "unknown flow"),
        ("post", "/api/runs", {"flow": "api.refund", "input": {"customer": 1}}, 422, "invalid input"),
        ("post", "/api/runs", {"input": 1}, 422, "flow"),
        ("post", "/api/runs", "not an object", 422, "invalid request"),
        ("post", "/api/runs", {"flow": "api.echo", "input": "x", "timeout": -1}, 422, "timeout"),
        ("get", "/api/runs/nope", None, 404, "no run"),
        ("post", "/api/runs/nope/cancel", None, 404, "no run"),
        ("post", "/api/runs/nope/signals", {"name": "x"}, 404, "no run"),
        ("post", "/api/runs/nope/signals", {"name": ""}, 422, "name"),
        ("get", "/api/runs", {"status": "sleeping"}, 400, "unknown status"),
        ("get", "/api/runs", {"limit": 0}, 422, "limit"),
        ("post", "/api/keys", {"name": "x", "role": "god"}, 400, "unknown role"),
    ],
)
async def test_malformed_requests_get_a_clear_4xx(
    api: Api, method: str, path: str, body: Any, status: int, message: str
) -> None:
    role = "admin"
    if method == "get":
        r = await api.get(path, role=role, params=body)
    elif isinstance(body, str):
        r = await api.http.post(
            api.url + path, content=body, headers={**api.auth(role), "content-type": "application/json"}
        )
    else:
        r = await api.post(path, body, role=role)
    assert r.status_code == status, r.text
    assert message in r.json()["error"].lower()


async def test_deciding_twice_or_cancelling_a_finished_run_is_a_conflict(api: Api) -> None:
    r = await api.post("/api/runs", {"flow": "api.refund", "input": {"customer": "bo", "amount": 5}})
    run_id = r.json()["run"]["id"]
    await eventually(lambda: api.get("/api/approvals"), lambda r: r.json()["approvals"], what="the approval")
    assert (await api.post(f"/api/runs/{run_id}/reject", {}, role="approver")).status_code == 200
    again = await api.post(f"/api/runs/{run_id}/approve", {}, role="approver")
    assert again.status_code == 409
    await api.client.result(run_id, timeout=WAIT_SECONDS)
    assert (await api.post(f"/api/runs/{run_id}/cancel")).status_code == 409


async def read_events(response: httpx.Response, until: str, limit: int = 100) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line.startswith("id: "):
            current["id"] = int(line[4:])
        elif line.startswith("data: "):
            current["data"] = json.loads(line[6:])
        elif line == "" and "data" in current:
            events.append(current["data"])
            current = {}
            if events[-1]["kind"] == until or len(events) >= limit:
                break
    return events


async def test_the_event_stream_of_a_run_is_live_and_resumes_after_last_event_id(api: Api) -> None:
    r = await api.post("/api/runs", {"flow": "api.refund", "input": {"customer": "cy", "amount": 9}})
    run_id = r.json()["run"]["id"]
    url = f"{api.url}/api/runs/{run_id}/events"
    async with api.http.stream("GET", url, headers=api.auth("viewer")) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        first = await read_events(stream, until="approval")
    assert [e["kind"] for e in first][:2] == ["start", "approval"]
    last = first[-1]["id"]
    await api.post(f"/api/runs/{run_id}/approve", {}, role="approver")
    await api.post(f"/api/runs/{run_id}/signals", {"name": "note", "payload": "ok"})
    async with api.http.stream(
        "GET", url, headers={**api.auth("viewer"), "Last-Event-ID": str(last)}
    ) as stream:
        rest = await read_events(stream, until="end")
    assert all(e["id"] > last for e in rest)
    assert [e["kind"] for e in rest][-1] == "end"
    assert "decision" in [e["kind"] for e in rest]
    # The stream of all runs takes the key as a query parameter too (browsers' EventSource).
    async with api.http.stream("GET", f"{api.url}/api/events?from=start&key={api.keys['viewer']}") as stream:
        everything = await read_events(stream, until="end")
    assert {e["run_id"] for e in everything} == {run_id}


async def test_flows_models_usage_and_openapi(api: Api) -> None:
    flows = (await api.get("/api/flows")).json()["flows"]
    refund_flow = next(f for f in flows if f["name"] == "api.refund")
    assert refund_flow["doc"].startswith("Refund a ticket") and "customer" in json.dumps(
        refund_flow["input_schema"]
    )
    assert (await api.get("/api/models")).status_code == 200
    assert (await api.get("/api/usage")).json() == {"flows": {}}
    doc = (await api.http.get(api.url + "/openapi.json")).json()
    assert "/api/runs" in doc["paths"] and "/api/runs/{run_id}/approve" in doc["paths"]


async def test_metrics_are_served_to_a_viewer_when_switched_on(tmp_path: Path) -> None:
    from podium.observability.metrics import MetricsObserver

    client = podium.Client(settings_for(f"sqlite:///{tmp_path}/m.db"), observers=[MetricsObserver()])
    await client.open()
    try:
        _, key = await client.create_key("prometheus", "viewer")
        async with serving(client) as (url, http):
            await (await client.start(echo, "hi")).result(timeout=WAIT_SECONDS)
            r = await http.get(url + "/api/metrics", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
            assert 'podium_runs_finished_total{flow="api.echo",status="completed"} 1.0' in r.text
            assert (await http.get(url + "/api/metrics")).status_code == 401
    finally:
        await close_within(client)


async def test_metrics_off_is_a_clear_404(api: Api) -> None:
    r = await api.get("/api/metrics")
    assert r.status_code == 404 and "PODIUM_METRICS=1" in r.json()["error"]
