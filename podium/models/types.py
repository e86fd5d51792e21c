"""The shapes every model provider speaks: messages in, a completion (with usage and cost) out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ToolCall(BaseModel):
    """A model's request to call a tool."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """One chat message."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None


class Usage(BaseModel):
    """Tokens a call used; ``estimated`` when the provider did not report them."""

    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False


class ModelRequest(BaseModel):
    """Everything a provider needs for one call."""

    messages: list[Message]
    temperature: float | None = None
    max_tokens: int | None = None
    json_schema: dict[str, Any] | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    stop: list[str] = Field(default_factory=list)


class Completion(BaseModel):
    """A model's answer, as journaled: text, tool calls, tokens, cost and latency."""

    model: str
    provider: str
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0
    latency: float = 0.0
    attempts: int = 1
    cached: bool = False  # answered from the response cache (cost 0)
    served_by: str = ""  # the configured name of the model that answered (after fallbacks)
    failed: list[str] = Field(default_factory=list)  # "name: error" of models tried before it
    prompt: dict[str, Any] | None = None
    """The registry prompt the call's text came from: ``{"name", "version", "label"}``
    (see ``ctx.prompt``)."""


class Embedding(BaseModel):
    """Vectors for some texts, with tokens and cost."""

    model: str
    provider: str
    vectors: list[list[float]]
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0
    latency: float = 0.0


def estimate_tokens(text: str) -> int:
    """A rough token count (about 4 characters per token) for providers that report none."""
    return max(1, (len(text) + 3) // 4) if text else 0
