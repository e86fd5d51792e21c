"""NATS JetStream events against the real server on 127.0.0.1:4222: duplicates and redeliveries become
exactly one run per message, malformed messages are terminated, signals, shared durable consumers, and
``podium worker`` consuming configured events."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import WAIT_SECONDS, close_within, eventually, settings_for
from pydantic import BaseModel

import podium
from podium.triggers.action import Action
from podium.triggers.nats import EventConsumer, EventSource, ensure_stream, load_events, start_events

nats = pytest.importorskip("nats", reason="needs podium[nats]")
from nats.js.api import AckPolicy, ConsumerConfig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NATS_URL = os.environ.get("PODIUM_TEST_NATS_URL", "nats://127.0.0.1:4222")

STEPS: Counter[str] = Counter()
"""How often each order's step body ran, across every run in this process."""


@podium.step
async def record(order_id: str) -> str:
    STEPS[order_id] += 1
    return order_id


class OrderEvent(BaseModel):
    id: str


@podium.flow(name="nats.order")
async def order(ctx: podium.Context, event: OrderEvent) -> str:
    return await record(event.id)


@podium.flow(name="nats.shipment")
async def shipment(ctx: podium.Context, order_id: str) -> dict[str, Any]:
    shipped = await ctx.wait_for_signal("shipped")
    return {"order": order_id, "shipped": shipped}


def _reachable() -> bool:
    host, port = NATS_URL.removeprefix("nats://").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2) as s:
            return s.recv(4).startswith(b"INFO")
    except OSError:
        return False


@dataclass
class Names:
    """A stream and subjects of this test's own, so tests (and parallel workers) never share one."""

    stream: str
    subject: str


@pytest.fixture
async def names() -> AsyncIterator[Names]:
    if not _reachable():
        reason = f"no NATS server at {NATS_URL} (start one with JetStream: nats-server -js)"
        if os.environ.get("PODIUM_REQUIRE_NATS"):
            pytest.fail(reason)
        pytest.skip(reason)
    tag = uuid.uuid4().hex[:10]
    n = Names(stream=f"PODIUM_TEST_{tag}", subject=f"podium-test.{tag}.orders")
    yield n
    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(n.stream)
    except Exception:
        pass  # a test that failed early may not have made it
    finally:
        await nc.close()


@pytest.fixture
async def js(names: Names) -> AsyncIterator[Any]:
    nc = await nats.connect(NATS_URL)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


async def completed_runs(client: podium.Client, count: int) -> list[podium.Run]:
    return await eventually(
        lambda: client.list(limit=1000),
        lambda rs: len(rs) >= count and all(r.status is podium.RunStatus.COMPLETED for r in rs),
        what=f"{count} completed runs",
    )


async def test_a_duplicate_msg_id_and_a_redelivery_make_exactly_two_runs(
    tmp_path: Path, names: Names, js: Any
) -> None:
    source = EventSource("orders", names.subject, names.stream, Action("start", order))
    client = podium.Client(settings_for(f"sqlite:///{tmp_path}/podium.db"))
    await client.open()
    try:
        await ensure_stream(js, names.stream, names.subject)
        # A worker that will die after starting a run but before acknowledging its message.
        dying = await js.subscribe(
            names.subject,
            queue=source.durable,
            durable=source.durable,
            stream=names.stream,
            manual_ack=True,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=1.0),
        )
        p1 = await js.publish(names.subject, body({"id": "o-1"}), headers={"Nats-Msg-Id": "o-1"})
        p2 = await js.publish(names.subject, body({"id": "o-1"}), headers={"Nats-Msg-Id": "o-1"})  # a retry
        p3 = await js.publish(names.subject, body({"id": "o-2"}))
        assert p2.duplicate and p2.seq == p1.seq and p3.seq == p1.seq + 1  # JetStream dropped the retry
        first = await dying.next_msg(timeout=WAIT_SECONDS)
        run_id, created = await EventConsumer(client, source).process(first)
        assert created
        await dying.unsubscribe()  # ... it dies: neither message it holds is acknowledged
        consumers = await start_events(client, {"orders": source}, servers=[NATS_URL])
        try:
            live = consumers.consumers[0]
            await eventually(
                lambda: asyncio.sleep(0, live.started + live.repeated), lambda n: n >= 2, what="redelivery"
            )
            runs = await completed_runs(client, 2)
            assert sorted(r.key or "" for r in runs) == sorted(
                [f"nats:{names.stream}:o-1", f"nats:{names.stream}:{p3.seq}"]
            )
            assert run_id in {r.id for r in runs}
            # o-2 started its run; o-1, redelivered, found the run the dying worker started. (With a 1 s
            # ack_wait, a very slow machine may deliver a message once more: it would find its run too.)
            assert live.started == 1 and live.repeated >= 1 and live.terminated == 0
            assert STEPS["o-1"] == 1 and STEPS["o-2"] == 1
            info = await js.consumer_info(names.stream, source.durable)
            assert info.num_ack_pending == 0 and info.num_pending == 0
        finally:
            await consumers.stop()
    finally:
        await close_within(client)


async def test_a_malformed_message_is_terminated_not_redelivered(
    tmp_path: Path, names: Names, js: Any
) -> None:
    source = EventSource("orders", names.subject, names.stream, Action("start", order))
    client = podium.Client(settings_for(f"sqlite:///{tmp_path}/podium.db"))
    await client.open()
    consumers = await start_events(client, {"orders": source}, servers=[NATS_URL], ack_wait=1.0)
    try:
        live = consumers.consumers[0]
        await js.publish(names.subject, b"{this is not json")
        await js.publish(names.subject, body({"wrong": "shape"}))  # JSON the flow refuses
        await eventually(lambda: asyncio.sleep(0, live.terminated), lambda n: n == 2, what="terminations")
        # The server applies a termination shortly after the consumer sends it: wait for it to say so.
        info = await eventually(
            lambda: js.consumer_info(names.stream, source.durable),
            lambda i: i.num_ack_pending == 0,
            what="no message pending acknowledgement",
        )
        assert info.num_redelivered == 0
        await js.publish(names.subject, body({"id": "after"}))
        runs = await completed_runs(client, 1)
        assert [r.output for r in runs] == ["after"]
        assert live.started == 1 and live.terminated == 2
        assert (await js.consumer_info(names.stream, source.durable)).num_ack_pending == 0
    finally:
        await consumers.stop()
        await close_within(client)


async def test_a_signal_event_reaches_the_run_named_in_the_message_once(
    tmp_path: Path, names: Names, js: Any
) -> None:
    source = EventSource(
        "shipped", names.subject, names.stream, Action("signal", shipment, "shipped", "run_id")
    )
    client = podium.Client(settings_for(f"sqlite:///{tmp_path}/podium.db"))
    await client.open()
    consumers = await start_events(client, {"shipped": source}, servers=[NATS_URL])
    try:
        handle = await client.start(shipment, "o-7")
        message = body({"run_id": handle.id, "carrier": "ups"})
        await js.publish(names.subject, message, headers={"Nats-Msg-Id": "ship-o-7"})
        await js.publish(names.subject, body({"run_id": "0123abc"}))  # no such run: terminated
        out = await handle.result(timeout=WAIT_SECONDS)
        assert out == {"order": "o-7", "shipped": {"run_id": handle.id, "carrier": "ups"}}
        live = consumers.consumers[0]
        await eventually(lambda: asyncio.sleep(0, live.terminated), lambda n: n == 1, what="termination")
        signals = [e for e in await client.journal(handle.id) if e.kind == "signal"]
        assert [e.position for e in signals] == [f"k:nats:{names.stream}:ship-o-7"]
    finally:
        await consumers.stop()
        await close_within(client)


async def test_two_workers_share_one_durable_consumer(tmp_path: Path, names: Names, js: Any) -> None:
    source = EventSource("orders", names.subject, names.stream, Action("start", order))
    settings = settings_for(f"sqlite:///{tmp_path}/podium.db")
    clients = [podium.Client(settings), podium.Client(settings)]
    for c in clients:
        await c.open()
    running = [await start_events(c, {"orders": source}, servers=[NATS_URL]) for c in clients]
    try:
        for i in range(30):
            await js.publish(names.subject, body({"id": f"shared-{i}"}))
        runs = await completed_runs(clients[0], 30)
        assert sorted(r.output for r in runs) == sorted(f"shared-{i}" for i in range(30))
        consumers = [r.consumers[0] for r in running]
        await eventually(
            lambda: asyncio.sleep(0, sum(c.started for c in consumers)), lambda n: n == 30, what="acks"
        )
        assert sum(c.repeated for c in consumers) == 0  # each message went to one of the two workers
        assert all(STEPS[f"shared-{i}"] == 1 for i in range(30))
        info = await js.consumer_info(names.stream, source.durable)
        assert info.config.deliver_group == source.durable and info.num_ack_pending == 0
    finally:
        for r in running:
            await r.stop()
        for c in clients:
            await close_within(c)


async def test_podium_worker_consumes_the_events_in_podium_toml(
    tmp_path: Path, names: Names, js: Any
) -> None:
    (tmp_path / "podium.toml").write_text(
        f'[nats]\nservers = ["{NATS_URL}"]\n\n'
        f'[events.greetings]\nsubject = "{names.subject}"\nstream = "{names.stream}"\n'
        f'flow = "{ROOT}/examples/hello.py:hello"\n'
    )
    env = {**os.environ, "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path}/podium.db", "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "podium.cli", "worker"),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        info = await eventually(
            lambda: _consumer(js, names.stream, "podium-greetings"), bool, what="the worker's consumer"
        )
        assert info is not None
        await js.publish(names.subject, body("ann"), headers={"Nats-Msg-Id": "greet-ann"})
        async with podium.Client(settings_for(f"sqlite:///{tmp_path}/podium.db"), worker=False) as c:
            runs = await completed_runs(c, 1)
            assert [(r.flow, r.output, r.key) for r in runs] == [
                ("hello", "hello ann", f"nats:{names.stream}:greet-ann")
            ]
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(WAIT_SECONDS):
            _, stderr = await proc.communicate()
    errors = stderr.decode()
    assert proc.returncode == 0, errors
    assert "consuming NATS events: greetings" in errors and "Traceback" not in errors


async def _consumer(js: Any, stream: str, durable: str) -> Any:
    try:
        return await js.consumer_info(stream, durable)
    except Exception:
        return None


def test_event_configuration_mistakes_are_config_errors() -> None:
    flows = {"m:order": order}
    cases = [
        ({"e": {"stream": "S", "flow": "m:order"}}, "needs subject"),
        ({"e": {"subject": "a.b", "stream": "bad name", "flow": "m:order"}}, "needs stream"),
        ({"e": {"subject": "a.b", "stream": "S"}}, "a 'start' action needs flow"),
        ({"e": {"subject": "a.b", "stream": "S", "action": "signal", "signal": "x"}}, "needs run_field"),
    ]
    for events, message in cases:
        with pytest.raises(podium.ConfigError) as info:
            load_events({"events": events}, load=flows.__getitem__)
        assert message in str(info.value) and "[events.e]" in str(info.value)
    ok = load_events(
        {"events": {"my.orders": {"subject": "a.b", "stream": "S", "flow": "m:order"}}}, load=flows.get
    )
    assert ok["my.orders"].durable == "podium-my_orders"


def test_podium_worker_with_events_but_without_the_extra_names_the_install_command(tmp_path: Path) -> None:
    import subprocess

    (tmp_path / "podium.toml").write_text(
        f'[events.greetings]\nsubject = "a.b"\nstream = "S"\nflow = "{ROOT}/examples/hello.py:hello"\n'
    )
    code = (
        "import sys; sys.modules['nats'] = None; sys.argv = ['podium', 'worker']; "
        "from podium.cli import main; main()"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200", "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path}/podium.db"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert "pip install podium[nats]" in r.stderr and "Traceback" not in r.stderr
