"""A provider key is never journaled, logged, traced or audited: a test plants one, makes a provider quote it
back in an error (as some gateways do), and searches every journal row, the database files, the JSON logs, the
exported traces and the audit trail for it."""

from __future__ import annotations

import gzip
import http.server
import io
import json
import logging
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import WAIT_SECONDS

import podium
from podium.observability.audit import export
from podium.observability.logs import configure_logging
from podium.testing import FakeOpenAIServer


class Collector(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP receiver that keeps every body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@podium.flow(name="secrets.ask")
async def ask(ctx: podium.Context, question: str) -> str:
    first = await ctx.model("remote").generate(question)
    return first + await ctx.model("remote").generate("and again")  # the gateway refuses this one


async def test_a_planted_key_appears_in_no_journal_log_trace_or_audit_entry(
    tmp_path: Path, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = "sk-proj-" + secrets.token_urlsafe(32)
    monkeypatch.setenv("T_PLANTED_KEY", planted)
    logs = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("DEBUG", logs)
    try:
        with FakeOpenAIServer() as server:
            server.script("ok:hello", "401echo")
            config = {
                "models": {
                    "remote": {
                        "provider": "openai",
                        "model": "m1",
                        "base_url": server.url,
                        "api_key_env": "T_PLANTED_KEY",
                        "max_retries": 0,
                    }
                }
            }
            settings = podium.Settings(
                database_url=f"sqlite:///{tmp_path / 'p.db'}",
                poll_seconds=0.05,
                config=config,
                otlp_endpoint=f"http://127.0.0.1:{collector.server_address[1]}",
                log_format="json",
                log_level="DEBUG",
            )
            async with podium.Client(settings) as client:
                run = await client.start(ask, "hi", by="tester")
                with pytest.raises(podium.RunFailedError) as failed:
                    await run.result(timeout=WAIT_SECONDS)
                journal = json.dumps([e.data for e in await client.journal(run.id)])
                audit = io.StringIO()
                await export(client.store, audit)
            # The key was really used, and really quoted back by the provider.
            assert [r["authorization"] for r in server.requests] == [f"Bearer {planted}"] * 2
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])

    assert "Incorrect API key provided: Bearer [REDACTED]" in str(failed.value)
    assert "[REDACTED]" in journal
    assert collector.bodies, "no trace was exported"
    places = {
        "the journal": journal,
        "the error": str(failed.value),
        "the logs": logs.getvalue(),
        "the audit trail": audit.getvalue(),
    }
    for name, text in places.items():
        assert planted not in text, f"the key is in {name}"
    assert logs.getvalue(), "nothing was logged"
    raw = planted.encode()
    for body in collector.bodies:
        assert raw not in body, "the key is in an exported trace"
    assert not _files_holding(tmp_path, raw)  # the database, its WAL, the audit key: every byte on disk


def _files_holding(folder: Path, raw: bytes) -> list[str]:
    return [f.name for f in folder.iterdir() if f.is_file() and raw in f.read_bytes()]
