"""Webhooks over a real uvicorn server on 127.0.0.1: signatures, exactly-once deliveries, signals, errors,
and ``podium serve`` as a user runs it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
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
from podium.triggers.webhook import load_hooks, sign

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec-test-1234"


class Order(BaseModel):
    id: int
    customer: str


@podium.flow(name="hooks.greet")
async def greet(ctx: podium.Context, order: Order) -> str:
    return f"order {order.id} for {order.customer}"


@podium.flow(name="hooks.await_payment")
async def await_payment(ctx: podium.Context, order_id: str) -> dict[str, Any]:
    payment = await ctx.wait_for_signal("paid")
    return {"order": order_id, "payment": payment}


FLOWS = {"tests:greet": greet, "tests:await_payment": await_payment}
CONFIG = {
    "hooks": {
        "orders": {"flow": "tests:greet", "secret_env": "PODIUM_TEST_HOOK_SECRET"},
        "payments": {
            "flow": "tests:await_payment",
            "action": "signal",
            "signal": "paid",
            "run_field": "run_id",
            "secret_env": "PODIUM_TEST_HOOK_SECRET",
        },
        "acme-orders": {"flow": "tests:greet", "secret_env": "PODIUM_TEST_HOOK_SECRET", "tenant": "acme"},
        "acme-payments": {
            "action": "signal",
            "signal": "paid",
            "run_field": "run_id",
            "secret_env": "PODIUM_TEST_HOOK_SECRET",
            "tenant": "acme",
        },
    }
}


@dataclass
class Server:
    url: str
    client: podium.Client
    http: httpx.AsyncClient

    async def post(
        self, hook: str, body: bytes, *, secret: str | None = SECRET, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        sent = dict(headers or {})
        if secret is not None:
            sent["X-Podium-Signature"] = sign(secret, body)
        return await self.http.post(f"{self.url}/hooks/{hook}", content=body, headers=sent)


@asynccontextmanager
async def serving(client: podium.Client) -> AsyncIterator[Server]:
    """The app on a real uvicorn server, on a free port of 127.0.0.1."""
    hooks = load_hooks(CONFIG, load=FLOWS.__getitem__)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(client, hooks), ws="none", log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: asyncio.sleep(0.01, server.started), bool, what="the server to start")
        async with httpx.AsyncClient(timeout=WAIT_SECONDS) as http:
            yield Server(f"http://127.0.0.1:{port}", client, http)
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Server]:
    monkeypatch.setenv("PODIUM_TEST_HOOK_SECRET", SECRET)
    client = podium.Client(settings_for(f"sqlite:///{tmp_path}/podium.db"))
    try:
        async with serving(client) as s:
            yield s
    finally:
        await close_within(client)


def body_of(value: Any) -> bytes:
    return json.dumps(value).encode()


async def test_a_signed_delivery_starts_a_run_that_completes(server: Server) -> None:
    r = await server.post("orders", body_of({"id": 7, "customer": "ann"}))
    assert r.status_code == 202, r.text
    answer = r.json()
    assert answer["created"] is True
    assert await server.client.result(answer["run_id"], timeout=WAIT_SECONDS) == "order 7 for ann"
    run = await server.client.get(answer["run_id"])
    assert run.flow == "hooks.greet" and run.key is not None and run.key.startswith("hook:orders:sha256:")


async def test_a_repeated_delivery_returns_the_same_run(server: Server) -> None:
    body = body_of({"id": 1, "customer": "bob"})
    first = await server.post("orders", body, headers={"Idempotency-Key": "delivery-1"})
    again = await server.post("orders", body, headers={"Idempotency-Key": "delivery-1"})
    assert first.status_code == again.status_code == 202
    assert again.json() == {"run_id": first.json()["run_id"], "created": False}
    # Without a delivery id, the body's hash is the identity: a resent body is the same delivery ...
    plain = [await server.post("orders", body) for _ in range(2)]
    assert plain[0].json()["created"] is True and plain[1].json() == {**plain[0].json(), "created": False}
    # ... while X-Podium-Delivery names distinct deliveries of an equal body.
    other = await server.post("orders", body, headers={"X-Podium-Delivery": "delivery-2"})
    assert other.json()["created"] is True
    runs = await server.client.list()
    assert sorted(r.key or "" for r in runs) == sorted(
        [
            "hook:orders:delivery-1",
            "hook:orders:delivery-2",
            "hook:orders:sha256:" + hashlib.sha256(body).hexdigest(),
        ]
    )


@pytest.mark.parametrize(
    ("secret", "headers"),
    [
        (None, {}),  # no signature
        ("another-secret", {}),
        (None, {"X-Podium-Signature": "sha256=" + "0" * 64}),
        (None, {"X-Podium-Signature": "md5=abc"}),
    ],
)
async def test_a_bad_or_missing_signature_is_401_and_creates_nothing(
    server: Server, secret: str | None, headers: dict[str, str]
) -> None:
    r = await server.post("orders", body_of({"id": 1, "customer": "eve"}), secret=secret, headers=headers)
    assert r.status_code == 401
    assert "X-Podium-Signature" in r.json()["error"]
    assert await server.client.list() == []


async def test_the_signature_covers_the_raw_body(server: Server) -> None:
    signed = body_of({"id": 1, "customer": "ann"})
    tampered = body_of({"id": 1, "customer": "mallory"})
    r = await server.http.post(
        f"{server.url}/hooks/orders", content=tampered, headers={"X-Podium-Signature": sign(SECRET, signed)}
    )
    assert r.status_code == 401 and await server.client.list() == []
    by_hand = "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    ok = await server.http.post(
        f"{server.url}/hooks/orders", content=signed, headers={"X-Podium-Signature": by_hand}
    )
    assert ok.status_code == 202


@pytest.mark.parametrize(
    ("hook", "body", "status", "message"),
    [
        ("nope", b"{}", 404, "no hook named 'nope'"),
        ("orders", b"{not json", 400, "the body is not valid JSON"),
        ("orders", b"\xff\xfe", 400, "the body is not valid JSON"),
        ("orders", b'{"id": 1}', 422, "invalid input for flow 'hooks.greet'"),
        ("payments", b'{"amount": 5}', 422, "the body has no 'run_id' field"),
        ("payments", b'{"run_id": "0123abc"}', 404, "no run with id '0123abc'"),
    ],
)
async def test_mistakes_get_clear_4xx_answers_and_create_nothing(
    server: Server, hook: str, body: bytes, status: int, message: str
) -> None:
    r = await server.post(hook, body)
    assert r.status_code == status
    assert message in r.json()["error"]
    assert await server.client.list() == []


async def test_a_signal_hook_delivers_once_to_the_run_named_in_the_body(server: Server) -> None:
    handle = await server.client.start(await_payment, "order-9")
    body = body_of({"run_id": handle.id, "amount": 30})
    r = await server.post("payments", body, headers={"Idempotency-Key": "pay-1"})
    assert r.status_code == 202 and r.json() == {"run_id": handle.id, "created": True}
    again = await server.post("payments", body, headers={"Idempotency-Key": "pay-1"})
    assert again.status_code == 202 and again.json() == {"run_id": handle.id, "created": False}
    out = await handle.result(timeout=WAIT_SECONDS)
    assert out == {"order": "order-9", "payment": {"run_id": handle.id, "amount": 30}}
    signals = [e for e in await server.client.journal(handle.id) if e.kind == "signal"]
    assert len(signals) == 1
    late = await server.post("payments", body, headers={"Idempotency-Key": "pay-2"})
    assert late.status_code == 409 and "completed" in late.json()["error"]


async def test_a_signal_hook_refuses_runs_of_other_flows(server: Server) -> None:
    other = await server.client.start(greet, {"id": 2, "customer": "cy"})
    await other.result(timeout=WAIT_SECONDS)
    r = await server.post("payments", body_of({"run_id": other.id}))
    assert r.status_code == 404 and "is not a run of flow 'hooks.await_payment'" in r.json()["error"]


async def test_healthz(server: Server) -> None:
    r = await server.http.get(f"{server.url}/healthz")
    hooks = ["acme-orders", "acme-payments", "orders", "payments"]
    assert r.status_code == 200 and r.json() == {"ok": True, "hooks": hooks}


async def test_a_hook_of_a_tenant_starts_runs_in_it_and_signals_only_its_runs(server: Server) -> None:
    r = await server.post("acme-orders", body_of({"id": 5, "customer": "eve"}))
    assert r.status_code == 202, r.text
    assert (await server.client.get(r.json()["run_id"])).tenant == "acme"
    r = await server.post("orders", body_of({"id": 6, "customer": "fay"}))
    assert (await server.client.get(r.json()["run_id"])).tenant == "default"

    theirs = await server.client.start(await_payment, "order-1")  # the default tenant's run
    r = await server.post("acme-payments", body_of({"run_id": theirs.id}))
    assert r.status_code == 404 and r.json()["error"] == f"no run with id {theirs.id!r}"
    assert [e for e in await server.client.journal(theirs.id) if e.kind == "signal"] == []
    ours = await server.client.start(await_payment, "order-2", tenant="acme")
    r = await server.post("acme-payments", body_of({"run_id": ours.id, "amount": 5}))
    assert r.status_code == 202 and r.json() == {"run_id": ours.id, "created": True}
    assert (await ours.result(timeout=WAIT_SECONDS))["payment"]["amount"] == 5


async def test_a_server_without_a_worker_enqueues_for_a_worker_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_TEST_HOOK_SECRET", SECRET)
    settings = settings_for(f"sqlite:///{tmp_path}/podium.db")
    control = podium.Client(settings, worker=False)
    try:
        async with serving(control) as s:
            r = await s.post("orders", body_of({"id": 3, "customer": "dee"}))
            assert r.status_code == 202
            run_id = r.json()["run_id"]
            assert (await control.get(run_id)).status is podium.RunStatus.PENDING
    finally:
        await close_within(control)
    async with podium.Client(settings) as worker:  # the worker process, later
        assert await worker.result(run_id, timeout=WAIT_SECONDS) == "order 3 for dee"


def test_hook_configuration_mistakes_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODIUM_UNSET_SECRET", raising=False)
    monkeypatch.setenv("PODIUM_TEST_HOOK_SECRET", SECRET)
    cases = [
        ({"h": {"flow": "tests:greet"}}, "needs secret_env"),
        ({"h": {"flow": "tests:greet", "secret_env": "PODIUM_UNSET_SECRET"}}, "PODIUM_UNSET_SECRET"),
        ({"h": {"secret_env": "PODIUM_TEST_HOOK_SECRET"}}, "a 'start' action needs flow"),
        ({"h": {"flow": "tests:greet", "secret_env": "PODIUM_TEST_HOOK_SECRET", "action": "x"}}, "action"),
        ({"h": {"action": "signal", "secret_env": "PODIUM_TEST_HOOK_SECRET"}}, 'needs signal = "NAME"'),
        ({"h": {"flow": "tests:greet", "secret_env": "PODIUM_TEST_HOOK_SECRET", "tenant": "a/b"}}, "tenant"),
    ]
    for hooks, message in cases:
        with pytest.raises(podium.ConfigError, match=r"podium\.toml") as info:
            load_hooks({"hooks": hooks}, load=FLOWS.__getitem__)
        assert message in str(info.value)


# -- podium serve, as a user runs it -------------------------------------------------------------------


def test_podium_serve_with_an_embedded_worker(tmp_path: Path) -> None:
    (tmp_path / "podium.toml").write_text(
        f'[hooks.hello]\nflow = "{ROOT}/examples/hello.py:hello"\nsecret_env = "HELLO_HOOK_SECRET"\n'
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path}/podium.db",
        "PODIUM_POLL_SECONDS": "0.1",
        "HELLO_HOOK_SECRET": "s3cret",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "podium.cli", "serve", "--worker", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        body = b'"ann"'
        with httpx.Client(timeout=WAIT_SECONDS) as http:
            for _ in range(int(WAIT_SECONDS / 0.05)):
                try:
                    if http.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, proc.communicate()[0]
                time.sleep(0.05)
            r = http.post(
                f"{url}/hooks/hello", content=body, headers={"X-Podium-Signature": sign("s3cret", body)}
            )
            assert r.status_code == 202, r.text
            run_id = r.json()["run_id"]
            bad = http.post(
                f"{url}/hooks/hello", content=body, headers={"X-Podium-Signature": sign("x", body)}
            )
            assert bad.status_code == 401
    finally:
        proc.terminate()
        output = proc.communicate(timeout=WAIT_SECONDS)[0]
    assert "Traceback" not in output

    async def outcome() -> Any:
        async with podium.Client(settings_for(f"sqlite:///{tmp_path}/podium.db"), worker=False) as c:
            return await eventually(lambda: c.get(run_id), lambda r: r.status.terminal, what="the run")

    run = asyncio.run(outcome())
    assert run.status is podium.RunStatus.COMPLETED and run.output == "hello ann"


def test_podium_serve_without_the_extra_names_the_install_command(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['fastapi'] = None; sys.argv = ['podium', 'serve']; "
        "from podium.cli import main; main()"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert "pip install podium[server]" in r.stderr and "Traceback" not in r.stderr
