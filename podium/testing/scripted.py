"""``ScriptedModel``: a fake chat model that answers from a script, for exact tests of agents and flows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..models.types import Completion, ModelRequest, ToolCall, Usage, estimate_tokens

Reply = str | ToolCall | Sequence[ToolCall] | Callable[[ModelRequest], Any]


def call(name: str, /, **arguments: Any) -> ToolCall:
    """A tool call for a script: ``call("refund", order_id="A1", amount=20)``."""
    return ToolCall(id="", name=name, arguments=arguments)


class ScriptedModel:
    """A chat model whose reply at turn *n* is ``script[n]``: a text, one or more tool calls, or a function
    of the request returning either. The turn is the number of assistant messages already in the request,
    so the model is stateless: a resumed or replayed run gets the same replies, in any process.

    ```python
    podium.models.register("scripted", ScriptedModel(
        call("lookup_order", order_id="A1"),
        '{"answer": "refunded", "amount": 20}',
    ))
    ```
    After the script ends it keeps giving its last reply (a model that loops forever, for limit tests).
    Every request it saw is kept in ``requests``.
    """

    def __init__(self, *script: Reply, price_input: float = 0.0, price_output: float = 0.0) -> None:
        if not script:
            raise ValueError("a ScriptedModel needs at least one reply")
        self.script = list(script)
        self.requests: list[ModelRequest] = []
        self.price_input = price_input
        self.price_output = price_output

    def __call__(self, request: ModelRequest) -> Completion:
        self.requests.append(request)
        turn = sum(1 for m in request.messages if m.role == "assistant")
        reply: Any = self.script[min(turn, len(self.script) - 1)]
        if callable(reply) and not isinstance(reply, ToolCall):
            reply = reply(request)
        calls: list[ToolCall] = []
        text = ""
        if isinstance(reply, ToolCall):
            calls = [reply]
        elif isinstance(reply, str):
            text = reply
        else:
            calls = list(reply)
        calls = [c if c.id else c.model_copy(update={"id": f"call_{turn}_{i}"}) for i, c in enumerate(calls)]
        usage = Usage(
            input_tokens=sum(estimate_tokens(m.content) for m in request.messages) + 1,
            output_tokens=estimate_tokens(text) + 5 * len(calls) + 1,
            estimated=True,
        )
        cost = (usage.input_tokens * self.price_input + usage.output_tokens * self.price_output) / 1e6
        return Completion(
            model="scripted",
            provider="function",
            text=text,
            tool_calls=calls,
            finish_reason="tool_calls" if calls else "stop",
            usage=usage,
            cost=cost,
        )
