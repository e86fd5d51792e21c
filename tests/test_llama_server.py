"""The OpenAI-compatible provider against a real llama.cpp server (``python -m llama_cpp.server``) that serves
a tiny random-weight model written by ``tiny_gguf.py``.

The model writes gibberish, so the tests check protocol properties only: usage reported by the server and
journaled, streamed pieces that add up to the answer, ``max_tokens`` honoured, a clear non-retried error for a
bad endpoint, embeddings. The server's access log (uvicorn, in ``server.log``) is its request log.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import WAIT_SECONDS, settings_for
from tiny_gguf import N_EMBD, write_tiny_gguf

import podium
from podium.models import Completion, Embedding

if os.environ.get("PODIUM_REQUIRE_LOCAL"):  # ./dev test sets it: a missing install is a failure there
    import llama_cpp.server  # noqa: F401
else:
    pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server]")

START_SECONDS = 60.0
"""Upper bound for a server to load the model and answer; only there so a broken install cannot hang CI."""


@dataclass
class LlamaServer:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def requests(self, method: str, path: str) -> int:
        """How many ``method path`` requests the server's access log records."""
        needle = f'"{method} {path} HTTP/'
        return sum(needle in line for line in self.log.read_text(errors="replace").splitlines())

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(directory: Path, *extra: str) -> Iterator[LlamaServer]:
    model = write_tiny_gguf(directory / "tiny.gguf")
    port = free_port()
    log = directory / "server.log"
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}  # they would override the flags
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--model",
                str(model),
                "--n_ctx",
                "512",
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = LlamaServer(proc, port, log)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited ({proc.returncode}):\n{server.log_tail()}")
            try:
                if httpx.get(f"{server.url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer within {START_SECONDS}s:\n{server.log_tail()}")
            time.sleep(0.1)
        yield server
    finally:
        proc.kill()
        proc.wait(timeout=WAIT_SECONDS)


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A llama.cpp server with the tiny model, for this module."""
    yield from start_server(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="module")
def llama_embedding(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A second server, started with ``--embedding true`` (the tiny model pools by mean)."""
    yield from start_server(tmp_path_factory.mktemp("llama-embed"), "--embedding", "true")


def client_for(store_url: str, **models: dict[str, Any]) -> podium.Client:
    return podium.Client(settings_for(store_url).with_(config={"models": models}))


def tiny(server: LlamaServer, **extra: Any) -> dict[str, Any]:
    return {"provider": "openai", "model": "tiny", "base_url": server.url, "timeout": 30, **extra}


async def model_step(client: podium.Client, run_id: str, name: str) -> dict[str, Any]:
    steps = [e for e in await client.journal(run_id) if e.kind == "step"]
    assert [e.name for e in steps] == [name]
    data: dict[str, Any] = steps[0].data
    return data


# -- chat ---------------------------------------------------------------------------------------------
@podium.flow(name="llama.generate")
async def generate(ctx: podium.Context, params: dict[str, Any]) -> str:
    return await ctx.model(params["model"]).generate(
        params["prompt"], system="You are terse.", max_tokens=params.get("max_tokens")
    )


async def test_chat_answer_and_the_servers_usage_are_journaled(store_url: str, llama: LlamaServer) -> None:
    async with client_for(store_url, tiny=tiny(llama, max_retries=0)) as c:
        handle = await c.start(generate, {"model": "tiny", "prompt": "Name three colours.", "max_tokens": 16})
        text = await handle.result(timeout=WAIT_SECONDS)
        step = await model_step(c, handle.id, "model:tiny")
    assert isinstance(text, str) and text.strip()
    completion = Completion.model_validate(step["result"])
    assert completion.text == text
    assert (completion.provider, completion.model) == ("openai", "tiny")
    assert completion.usage.estimated is False
    assert completion.usage.input_tokens > 0
    assert 0 < completion.usage.output_tokens <= 16
    assert completion.finish_reason in ("stop", "length")
    assert completion.attempts == 1
    assert llama.requests("POST", "/v1/chat/completions") >= 1


@podium.flow(name="llama.chat")
async def chat(ctx: podium.Context, max_tokens: int | None) -> dict[str, Any]:
    completion = await ctx.model("tiny").chat(
        [{"role": "user", "content": "Write a long story about the sea."}], max_tokens=max_tokens
    )
    return completion.model_dump(mode="json")


@pytest.mark.parametrize(("per_call", "configured"), [(1, None), (5, None), (None, 3), (2, 50)])
async def test_max_tokens_is_honoured(
    store_url: str, llama: LlamaServer, per_call: int | None, configured: int | None
) -> None:
    extra = {} if configured is None else {"max_tokens": configured}
    async with client_for(store_url, tiny=tiny(llama, **extra)) as c:
        completion = Completion.model_validate(
            await (await c.start(chat, per_call)).result(timeout=WAIT_SECONDS)
        )
    limit = per_call or configured
    assert limit is not None
    assert 0 < completion.usage.output_tokens <= limit
    assert completion.usage.estimated is False


# -- streaming ----------------------------------------------------------------------------------------
@podium.flow(name="llama.stream")
async def streamed(ctx: podium.Context, max_tokens: int) -> dict[str, Any]:
    pieces: list[str] = []
    text = await ctx.model("tiny").stream(
        "Tell me about rivers.", on_token=pieces.append, max_tokens=max_tokens
    )
    return {"text": text, "pieces": pieces}


async def test_streaming_delivers_pieces_that_add_up_to_the_answer(
    store_url: str, llama: LlamaServer
) -> None:
    async with client_for(store_url, tiny=tiny(llama, max_retries=0)) as c:
        handle = await c.start(streamed, 8)
        out = await handle.result(timeout=WAIT_SECONDS)
        step = await model_step(c, handle.id, "model:tiny")
    pieces, text = out["pieces"], out["text"]
    assert 2 <= len(pieces) <= 8, pieces  # several pieces, and no more than max_tokens tokens' worth
    assert all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces) == text and text.strip()
    assert Completion.model_validate(step["result"]).text == text


# -- errors -------------------------------------------------------------------------------------------
async def test_a_bad_endpoint_is_a_clear_error_and_not_retried(store_url: str, llama: LlamaServer) -> None:
    path = f"/nope-{uuid.uuid4().hex[:8]}/v1"
    lost = tiny(llama, base_url=f"http://127.0.0.1:{llama.port}{path}", max_retries=2)
    async with client_for(store_url, lost=lost) as c:
        handle = await c.start(generate, {"model": "lost", "prompt": "hello?"})
        with pytest.raises(podium.RunFailedError) as info:
            await handle.result(timeout=WAIT_SECONDS)
        journal = await c.journal(handle.id)
    error = info.value.error
    assert error["type"] == "HTTP404"
    assert "HTTP 404" in error["message"] and "'lost'" in error["message"] and path in error["message"]
    assert error["retryable"] is False
    assert [e.kind for e in journal if e.kind in ("attempt", "step")] == ["step"]  # no step-level retry
    assert llama.requests("POST", f"{path}/chat/completions") == 1  # no provider-level retry either


async def test_a_bad_endpoint_while_streaming_is_the_same_clear_error(
    store_url: str, llama: LlamaServer
) -> None:
    path = f"/nope-{uuid.uuid4().hex[:8]}/v1"
    lost = tiny(llama, base_url=f"http://127.0.0.1:{llama.port}{path}", max_retries=2)
    async with client_for(store_url, tiny=lost) as c:
        with pytest.raises(podium.RunFailedError) as info:
            await (await c.start(streamed, 4)).result(timeout=WAIT_SECONDS)
    error = info.value.error
    assert error["type"] == "HTTP404" and error["retryable"] is False
    assert "HTTP 404" in error["message"] and "'tiny'" in error["message"]
    assert llama.requests("POST", f"{path}/chat/completions") == 1


# -- embeddings ---------------------------------------------------------------------------------------
@podium.flow(name="llama.embed")
async def embedded(ctx: podium.Context, texts: list[str]) -> dict[str, Any]:
    one = await ctx.embed(texts[0], model="vec")
    many = await ctx.embed(texts, model="vec")
    return {"one": one, "many": many}


async def test_embeddings(store_url: str, llama_embedding: LlamaServer) -> None:
    vec = tiny(llama_embedding, kind="embedding", max_retries=0)
    async with client_for(store_url, vec=vec) as c:
        handle = await c.start(embedded, ["the river", "a long story about the sea", "north"])
        out = await handle.result(timeout=WAIT_SECONDS)
        steps = [e for e in await c.journal(handle.id) if e.kind == "step"]
    one, many = out["one"], out["many"]
    assert len(one) == N_EMBD and len(many) == 3
    assert all(len(v) == N_EMBD for v in many)
    assert one == pytest.approx(many[0], abs=1e-4)  # the same text, alone or in a batch
    assert many[0] != pytest.approx(many[1], abs=1e-4)
    assert [e.name for e in steps] == ["embed:vec", "embed:vec"]
    usage = Embedding.model_validate(steps[1].data["result"]).usage
    assert usage.estimated is False and usage.input_tokens > 0
