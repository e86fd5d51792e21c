"""Anthropic's Messages API (``/v1/messages``).

Structured output uses a forced tool whose input schema is the requested schema (the API's own way to get
JSON of a given shape); retries and errors behave as for the OpenAI-compatible provider.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from ..errors import ModelError
from ..spec import ModelSpec
from ..types import Completion, Embedding, Message, ModelRequest, ToolCall, Usage
from . import priced
from .openai import OpenAIProvider, api_key

VERSION = "2023-06-01"
_OUTPUT_TOOL = "output"


def _content(m: Message) -> Any:
    if m.role == "tool":
        return [{"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": m.content}]
    if m.tool_calls:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
        blocks += [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in m.tool_calls
        ]
        return blocks
    return m.content


class AnthropicProvider(OpenAIProvider):
    """Speaks the Messages API; shares HTTP pooling and retry logic with ``OpenAIProvider``."""

    def _headers(self, spec: ModelSpec) -> dict[str, str]:
        headers = {"anthropic-version": VERSION}
        key = api_key(spec)
        if key is not None:
            headers["x-api-key"] = key
        return headers

    def _body(self, spec: ModelSpec, request: ModelRequest) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        messages = [
            {"role": "user" if m.role == "tool" else m.role, "content": _content(m)}
            for m in request.messages
            if m.role != "system"
        ]
        body: dict[str, Any] = {
            "model": spec.model,
            "messages": messages,
            "max_tokens": request.max_tokens or spec.max_tokens or 1024,
        }
        if system:
            body["system"] = system
        temperature = request.temperature if request.temperature is not None else spec.temperature
        if temperature is not None:
            body["temperature"] = temperature
        if request.stop:
            body["stop_sequences"] = request.stop
        tools = [
            {
                "name": t["function"]["name"],
                "description": t["function"].get("description", ""),
                "input_schema": t["function"].get("parameters", {"type": "object"}),
            }
            if "function" in t
            else t
            for t in request.tools
        ]
        if request.json_schema is not None:
            tools.append(
                {"name": _OUTPUT_TOOL, "description": "Give the answer.", "input_schema": request.json_schema}
            )
            body["tool_choice"] = {"type": "tool", "name": _OUTPUT_TOOL}
        if tools:
            body["tools"] = tools
        return body

    async def complete(self, spec: ModelSpec, request: ModelRequest) -> Completion:
        started = time.perf_counter()
        data, attempts = await self._post(spec, "v1/messages", self._body(spec, request))
        blocks = data.get("content")
        if not isinstance(blocks, list):
            raise ModelError(f"model {spec.name!r}: answer without content: {str(data)[:200]}")
        text, calls = "", []
        for b in blocks:
            if b.get("type") == "text":
                text += b.get("text", "")
            elif b.get("type") == "tool_use":
                if request.json_schema is not None and b.get("name") == _OUTPUT_TOOL:
                    text = json.dumps(b.get("input", {}))
                else:
                    calls.append(
                        ToolCall(id=b.get("id", ""), name=b.get("name", ""), arguments=b.get("input") or {})
                    )
        u = data.get("usage") or {}
        usage = Usage(
            input_tokens=int(u.get("input_tokens", 0)), output_tokens=int(u.get("output_tokens", 0))
        )
        return priced(
            spec,
            started,
            provider="anthropic",
            usage=usage,
            text=text,
            tool_calls=calls,
            finish_reason=data.get("stop_reason"),
            attempts=attempts,
        )

    async def stream(self, spec: ModelSpec, request: ModelRequest) -> AsyncIterator[str]:
        body = {**self._body(spec, request), "stream": True}
        async for line in self._lines(spec, "v1/messages", body):
            if not line.startswith("data:"):
                continue
            try:
                event = json.loads(line[5:].strip())
            except ValueError:
                raise ModelError(f"model {spec.name!r}: malformed stream event {line[:120]!r}") from None
            if event.get("type") == "content_block_delta":
                delta = event.get("delta", {}).get("text")
                if delta:
                    yield delta
            elif event.get("type") == "message_stop":
                break

    async def embed(self, spec: ModelSpec, texts: list[str], *, query: bool = False) -> Embedding:
        raise ModelError(f"model {spec.name!r}: Anthropic has no embeddings API", retryable=False)
