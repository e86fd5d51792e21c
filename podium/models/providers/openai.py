"""Any OpenAI-compatible server: vLLM, Ollama, llama.cpp's server, LM Studio, or OpenAI itself.

Retries 429 (honouring ``Retry-After``), 5xx, timeouts, dropped connections and malformed answers with
exponential backoff, up to ``max_retries`` times; everything else is a ``ModelError`` at once.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ...config import secret
from ..errors import ModelError
from ..spec import ModelSpec
from ..types import Completion, Embedding, Message, ModelRequest, ToolCall, Usage, estimate_tokens
from . import embedding, priced


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for c in m.tool_calls
        ]
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


_WARM = False


def api_key(spec: ModelSpec) -> str | None:
    """The key named by ``spec.api_key_env`` (None when the model needs none); a clear error if unset."""
    if not spec.api_key_env:
        return None
    key = secret(spec.api_key_env)
    if not key:
        raise ModelError(
            f"model {spec.name!r}: environment variable {spec.api_key_env} is not set", retryable=False
        )
    return key


class _Retry(Exception):
    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class OpenAIProvider:
    """Talks the ``/chat/completions`` and ``/embeddings`` protocol over HTTP (httpx)."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, float], httpx.AsyncClient] = {}

    def _client(self, spec: ModelSpec) -> httpx.AsyncClient:
        assert spec.base_url is not None
        key = (spec.base_url, spec.timeout)
        client = self._clients.get(key)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(base_url=spec.base_url.rstrip("/") + "/", timeout=spec.timeout)
            self._clients[key] = client
        return client

    def prepare(self, spec: ModelSpec) -> None:
        """Open the HTTP client now (it costs tens of milliseconds the first time), so that a rate-limit
        slot is spent on sending, not on setting up."""
        self._client(spec)
        global _WARM
        if not _WARM:  # the first connection imports httpcore's async backend (~30 ms): do it here
            _WARM = True
            try:
                import anyio._backends._asyncio  # noqa: F401
            except ImportError:  # pragma: no cover - another backend layout
                pass

    def _headers(self, spec: ModelSpec) -> dict[str, str]:
        key = api_key(spec)
        return {} if key is None else {"Authorization": f"Bearer {key}"}

    def _body(self, spec: ModelSpec, request: ModelRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": spec.model, "messages": [_message(m) for m in request.messages]}
        temperature = request.temperature if request.temperature is not None else spec.temperature
        if temperature is not None:
            body["temperature"] = temperature
        if request.max_tokens or spec.max_tokens:
            body["max_tokens"] = request.max_tokens or spec.max_tokens
        if request.stop:
            body["stop"] = request.stop
        if request.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.json_schema, "strict": False},
            }
        if request.tools:
            body["tools"] = request.tools
        return body

    async def _post(self, spec: ModelSpec, path: str, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """POST with retries; returns the JSON answer and the number of attempts."""
        headers = self._headers(spec)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._client(spec).post(path, json=body, headers=headers)
                if response.status_code == 429 or response.status_code >= 500:
                    raise _Retry(
                        f"HTTP {response.status_code}: {response.text[:200]}", _retry_after(response)
                    )
                if response.status_code >= 400:
                    raise ModelError(
                        f"model {spec.name!r}: HTTP {response.status_code} from {spec.base_url}: "
                        f"{response.text[:300]}",
                        type=f"HTTP{response.status_code}",
                        retryable=False,
                    )
                try:
                    data = response.json()
                except ValueError:
                    raise _Retry(f"malformed JSON answer: {response.text[:120]!r}") from None
                if not isinstance(data, dict):
                    raise _Retry(f"unexpected answer: {str(data)[:120]!r}")
                return data, attempt
            except (_Retry, httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt > spec.max_retries:
                    kind = (
                        "timed out"
                        if isinstance(exc, httpx.TimeoutException)
                        else str(exc) or type(exc).__name__
                    )
                    raise ModelError(
                        f"model {spec.name!r} at {spec.base_url}: {kind} (after {attempt} attempts)",
                        retryable=True,
                    ) from exc
                wait = exc.wait if isinstance(exc, _Retry) and exc.wait is not None else None
                if wait is None:
                    wait = min(8.0, 0.25 * 2 ** (attempt - 1)) * (0.8 + 0.4 * random.random())
                await asyncio.sleep(wait)

    async def complete(self, spec: ModelSpec, request: ModelRequest) -> Completion:
        started = time.perf_counter()
        data, attempts = await self._post(spec, "chat/completions", self._body(spec, request))
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (KeyError, IndexError, TypeError):
            raise ModelError(f"model {spec.name!r}: answer without choices: {str(data)[:200]}") from None
        text = message.get("content") or ""
        calls = []
        for c in message.get("tool_calls") or []:
            fn = c.get("function") or {}
            raw = fn.get("arguments") or "{}"
            try:
                args = json.loads(raw) if isinstance(raw, str) else raw
            except json.JSONDecodeError:
                args = {"_raw": raw}
            calls.append(
                ToolCall(
                    id=c.get("id", ""),
                    name=fn.get("name", ""),
                    arguments=args if isinstance(args, dict) else {"_value": args},
                )
            )
        usage = self._usage(data, request, text)
        return priced(
            spec,
            started,
            provider="openai",
            usage=usage,
            text=text,
            tool_calls=calls,
            finish_reason=choice.get("finish_reason"),
            attempts=attempts,
        )

    @staticmethod
    def _usage(data: dict[str, Any], request: ModelRequest, text: str) -> Usage:
        u = data.get("usage") or {}
        if "prompt_tokens" in u:
            return Usage(
                input_tokens=int(u.get("prompt_tokens", 0)), output_tokens=int(u.get("completion_tokens", 0))
            )
        prompt = sum(estimate_tokens(m.content) for m in request.messages)
        return Usage(input_tokens=prompt, output_tokens=estimate_tokens(text), estimated=True)

    async def _lines(self, spec: ModelSpec, path: str, body: dict[str, Any]) -> AsyncIterator[str]:
        """The lines of a streamed answer. Failures before the first line are retried like any call;
        a stream that breaks after it started is a ``ModelError`` (its text so far is not journaled)."""
        attempt = 0
        while True:
            attempt += 1
            started = False
            try:
                async with self._client(spec).stream(
                    "POST", path, json=body, headers=self._headers(spec)
                ) as r:
                    if r.status_code == 429 or r.status_code >= 500:
                        text = (await r.aread()).decode(errors="replace")[:200]
                        raise _Retry(f"HTTP {r.status_code}: {text}", _retry_after(r))
                    if r.status_code >= 400:
                        text = (await r.aread()).decode(errors="replace")[:300]
                        raise ModelError(
                            f"model {spec.name!r}: HTTP {r.status_code} from {spec.base_url}: {text}",
                            type=f"HTTP{r.status_code}",
                            retryable=False,
                        )
                    async for line in r.aiter_lines():
                        started = True
                        yield line
                    return
            except (_Retry, httpx.TimeoutException, httpx.TransportError) as exc:
                if started or attempt > spec.max_retries:
                    what = (
                        "stream broke"
                        if started
                        else f"{exc or type(exc).__name__} (after {attempt} attempts)"
                    )
                    raise ModelError(f"model {spec.name!r} at {spec.base_url}: {what}") from exc
                wait = exc.wait if isinstance(exc, _Retry) and exc.wait is not None else None
                if wait is None:
                    wait = min(8.0, 0.25 * 2 ** (attempt - 1)) * (0.8 + 0.4 * random.random())
                await asyncio.sleep(wait)

    async def stream(self, spec: ModelSpec, request: ModelRequest) -> AsyncIterator[str | Usage]:
        """Text pieces, then the server's ``Usage`` if it reports one (``stream_options.include_usage``)."""
        body = {**self._body(spec, request), "stream": True, "stream_options": {"include_usage": True}}
        async for line in self._lines(spec, "chat/completions", body):
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            try:
                chunk = json.loads(payload)
                choices = chunk.get("choices") or []
                delta = choices[0].get("delta", {}).get("content") if choices else None
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                raise ModelError(f"model {spec.name!r}: malformed stream chunk {payload[:120]!r}") from None
            if delta:
                yield delta
            usage = chunk.get("usage")
            if isinstance(usage, dict) and "prompt_tokens" in usage:
                yield Usage(
                    input_tokens=int(usage["prompt_tokens"]),
                    output_tokens=int(usage.get("completion_tokens", 0)),
                )

    async def embed(self, spec: ModelSpec, texts: list[str], *, query: bool = False) -> Embedding:
        started = time.perf_counter()
        data, _ = await self._post(spec, "embeddings", {"model": spec.model, "input": texts})
        try:
            rows = sorted(data["data"], key=lambda r: r.get("index", 0))
            vectors = [[float(x) for x in r["embedding"]] for r in rows]
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"model {spec.name!r}: malformed embeddings answer {str(data)[:200]}") from None
        u = data.get("usage") or {}
        tokens = int(u.get("prompt_tokens", 0)) or sum(estimate_tokens(t) for t in texts)
        usage = Usage(input_tokens=tokens, estimated="prompt_tokens" not in u)
        return embedding(spec, started, provider="openai", vectors=vectors, texts=texts, usage=usage)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
