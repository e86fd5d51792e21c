"""The authorization matrix, generated from the real app's route table: every route under ``/api`` x every
role x {own tenant, other tenant, platform key, no key, revoked key, expired key}, over a real uvicorn server
on a real SQLite file. A route added later is in the matrix without anyone listing it, and a route that
declares no action fails here.

Expected: 401 without a valid key; 403 when the role lacks the route's action; 404 (or a "no such key") for
another tenant's run or key; never a 5xx; never a byte of the other tenant's data (run ids, inputs, key ids
and names) in any response, streams included; and no change to the other tenant's runs.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from conftest import WAIT_SECONDS, close_within, eventually, settings_for, wait_approval
from fastapi.routing import APIRoute

import podium
from podium.policies.access import ROLE_ACTIONS, ROLES, Principal
from podium.server import create_app
from podium.server.authz import route_action

OWN, OTHER = "acme", "globex"
SECRET = {OWN: "acme-input-7c1f", OTHER: "globex-input-9d2e"}


@podium.flow(name="matrix.refund")
async def refund(ctx: podium.Context, text: str) -> str:
    decision = await ctx.approval("refund", payload={"text": text})
    await ctx.wait_for_signal("note")
    return f"{text}:{decision.approved}"


@podium.flow(name="matrix.echo")
async def echo(ctx: podium.Context, text: str) -> str:
    return text


# Bodies for routes that take one; a route missing here gets {} (its answer is still checked for auth).
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/runs"): {"flow": "matrix.echo", "input": "matrix"},
    ("POST", "/api/runs/{run_id}/signals"): {"name": "note", "payload": "hi"},
    ("POST", "/api/runs/{run_id}/approve"): {},
    ("POST", "/api/runs/{run_id}/reject"): {},
    ("POST", "/api/keys"): {"name": "made-in-matrix", "role": "viewer"},
    ("POST", "/api/prompts/{name}/versions"): {"template": "Hello {{ who }}"},
    ("PUT", "/api/prompts/{name}/labels/{label}"): {"version": 1},
    ("PUT", "/api/prompts/{name}/split"): {"arms": {"production": 100}},
    ("POST", "/api/runs/{run_id}/feedback"): {"step": "output", "score": 1},
    ("POST", "/api/datasets"): {"name": "matrix-dataset"},
    ("POST", "/api/datasets/{name}/items"): {"input": "matrix"},
}
PARAMS = {"name": "greeting", "ref": "1", "label": "production"}
QUERY = {"a": "1", "b": "1", "bucket": "day"}


@dataclass
class World:
    url: str
    client: podium.Client
    http: httpx.AsyncClient
    keys: dict[tuple[str, str | None], str] = field(default_factory=dict)
    bad: dict[str, str | None] = field(default_factory=dict)
    runs: dict[str, list[str]] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)
    forbidden: list[str] = field(default_factory=list)
    """Strings of the other tenant that must never reach an ``OWN`` principal."""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    url = f"sqlite:///{tmp_path}/podium.db"
    # An expired key: made by a client whose clock is 40 days behind, valid for 30 days
    past = time.time() - 40 * 86400
    async with podium.Client(settings_for(url), worker=False, clock=lambda: past) as old:
        _, expired = await old.create_key("expired-bot", "admin", tenant=OWN, expires="30d")
    client = podium.Client(settings_for(url))
    await client.open()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(client, {}), ws="none", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: asyncio.sleep(0.01, server.started), bool, what="the server to start")
        async with httpx.AsyncClient(timeout=WAIT_SECONDS) as http:
            w = World(f"http://127.0.0.1:{sock.getsockname()[1]}", client, http)
            for role in ROLES:
                for tenant in (OWN, OTHER, None):
                    name = f"{role}-{tenant or 'platform'}"
                    _, w.keys[(role, tenant)] = await client.create_key(name, role, tenant=tenant)
            for tenant in (OWN, OTHER):  # the keys DELETE /api/keys/{key_id} aims at
                victim, _ = await client.create_key(f"victim-{tenant}", "viewer", tenant=tenant)
                w.key_ids[tenant] = victim.id
            revoked, w.bad["revoked"] = await client.create_key("revoked-bot", "admin", tenant=OWN)
            await client.revoke_key(revoked.id)
            w.bad["expired"], w.bad["none"] = expired, None
            await client.prompts.push("greeting", "Hello {{ who }}", label="production")
            for tenant in (OWN, OTHER):
                root = client.acting_as(Principal.local(tenant))
                waiting = await root.start(refund, SECRET[tenant])
                done = await root.start(echo, SECRET[tenant] + "-done")
                await wait_approval(client, waiting.id)
                await done.result(timeout=WAIT_SECONDS)
                w.runs[tenant] = [waiting.id, done.id]
            w.forbidden = [*w.runs[OTHER], SECRET[OTHER], w.key_ids[OTHER], f"-{OTHER}"]
            yield w
    finally:
        server.should_exit = True
        await task
        sock.close()
        await close_within(client)


def api_routes() -> list[tuple[str, str, str | None]]:
    """``(method, path, action)`` of every route under ``/api`` of the real app."""
    app = create_app(podium.Client(settings_for("memory://"), worker=False), {})
    out: list[tuple[str, str, str | None]] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            included = getattr(route, "original_router", None)  # an included router (FastAPI >= 0.1xx)
            if included is not None:
                walk(included.routes, prefix + getattr(route.include_context, "prefix", ""))
            elif isinstance(route, APIRoute) and (prefix + route.path).startswith("/api"):
                out.extend((m, prefix + route.path, route_action(route)) for m in sorted(route.methods))

    walk(app.routes, "")
    return out


def test_every_api_route_declares_an_action() -> None:
    routes = api_routes()
    assert len(routes) >= 25  # the table is really read: runs, streams, keys, prompts, ...
    missing = [f"{m} {p}" for m, p, action in routes if action is None]
    assert missing == [], f"routes without openapi_extra=needs(ACTION): {missing}"


async def call(w: World, method: str, path: str, secret: str | None, target: str) -> tuple[int, str]:
    """One request to ``path`` with the ids of ``target``'s tenant; its status and the body read."""
    run_ids = w.runs[target]
    concrete = path.replace("{run_id}", run_ids[0]).replace("{key_id}", w.key_ids[target])
    concrete = re.sub(r"\{(\w+)\}", lambda m: PARAMS.get(m.group(1), "x"), concrete)
    headers = {} if secret is None else {"Authorization": f"Bearer {secret}"}
    query = {**QUERY, "run_id": run_ids[0], "from": "start"}
    if target == OTHER:  # also ask for the other tenant by name where a route takes ?tenant=
        query["tenant"] = target
    body = BODIES.get((method, path), {}) if method in ("POST", "PUT", "PATCH") else None
    if path.endswith("/events"):  # a stream: read what it sends until it has caught up (a keep-alive)
        async with w.http.stream("GET", w.url + concrete, headers=headers, params=query) as r:
            text = ""
            if r.status_code == 200:
                async for chunk in r.aiter_text():
                    text += chunk
                    if ": keep-alive" in text:
                        break
            else:
                text = (await r.aread()).decode()
            return r.status_code, text
    r = await w.http.request(method, w.url + concrete, headers=headers, params=query, json=body)
    return r.status_code, r.text


async def test_the_matrix(world: World) -> None:
    w = world
    cells = 0
    for method, path, action in api_routes():
        assert action is not None
        where = f"{method} {path}"
        for kind, secret in w.bad.items():  # no key, revoked, expired: 401 everywhere
            status, text = await call(w, method, path, secret, OWN)
            assert status == 401, f"{where} with {kind} key: {status} {text[:200]}"
            cells += 1
        for role in ROLES:
            allowed = action in ROLE_ACTIONS[role]
            for scope in (OWN, None):
                secret = w.keys[(role, scope)]
                for target in (OWN, OTHER):
                    status, text = await call(w, method, path, secret, target)
                    cells += 1
                    who = f"{role} of {scope or 'all tenants'}"
                    what = f"{where} as {who} on {target}'s: {status} {text[:300]}"
                    assert status < 500, what
                    if not allowed:
                        assert status == 403, what
                        continue
                    assert status not in (401,), what
                    if scope == OWN:
                        # an error may quote back the id the caller sent ('ID'), which tells it nothing
                        echoed = [f"'{x}'" for x in (w.runs[target][0], w.key_ids[target])]
                        seen = re.sub("|".join(map(re.escape, echoed)), "", text)
                        for secret_text in w.forbidden:
                            assert secret_text not in seen, f"LEAK of {secret_text!r}: {what}"
                        if target == OTHER and "{run_id}" in path:
                            assert status == 404, what
                        if target == OTHER and "{key_id}" in path:
                            assert status in (400, 404) and "no active API key" in text, what
                        # datasets are shared (platform keys change them); prompts are per tenant
                        shared = path.startswith("/api/datasets") and method != "GET"
                        if path == "/api/metrics" or shared:  # platform keys only
                            assert status == 403, what
                        elif target == OWN:
                            assert status != 403, what
                    else:
                        assert status != 403, what
                    if target == OWN and "{run_id}" in path:
                        assert status != 404, what
    assert cells > 25 * (3 + len(ROLES) * 4)
    # No change to the other tenant's runs by anyone of OWN: no decision, signal or cancel by them
    for run_id in w.runs[OTHER]:
        for e in await w.client.journal(run_id):
            by = (e.data or {}).get("by") if isinstance(e.data, dict) else None
            assert by is None or f"-{OWN}" not in str(by), (run_id, e)


async def test_permission_rules_through_the_api(tmp_path: Path) -> None:
    rules = {"permissions": [{"key": "echo-only", "flows": ["matrix.echo"], "actions": ["start", "view"]}]}
    client = podium.Client(replace(settings_for(f"sqlite:///{tmp_path}/r.db"), config=rules))
    await client.open()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(client, {}), ws="none", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: asyncio.sleep(0.01, server.started), bool, what="the server to start")
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
        _, secret = await client.create_key("echo-only", "operator", tenant=OWN)
        hidden = await client.start(refund, "hidden", tenant=OWN)
        auth = {"Authorization": f"Bearer {secret}"}
        async with httpx.AsyncClient(timeout=WAIT_SECONDS, headers=auth) as http:
            r = await http.post(url + "/runs", json={"flow": "matrix.refund", "input": "no"})
            assert r.status_code == 403 and "[[permissions]]" in r.json()["error"]
            r = await http.post(url + "/runs", json={"flow": "matrix.echo", "input": "yes"})
            assert r.status_code == 201, r.text
            mine = r.json()["run"]["id"]
            assert r.json()["run"]["tenant"] == OWN
            r = await http.post(url + "/runs", json={"flow": "matrix.echo", "input": "x", "tenant": OTHER})
            assert r.status_code == 403 and "tenant 'globex'" in r.json()["error"]
            assert [x["id"] for x in (await http.get(url + "/runs")).json()["runs"]] == [mine]
            assert (await http.get(f"{url}/runs/{hidden.id}")).status_code == 404
            assert [f["name"] for f in (await http.get(url + "/flows")).json()["flows"]] == ["matrix.echo"]
    finally:
        server.should_exit = True
        await task
        sock.close()
        await close_within(client)
