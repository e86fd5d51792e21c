"""``@podium.tool``: a typed function a model may call, with a JSON schema from its signature and docstring.

```python
@podium.tool
async def refund(order_id: str, amount: float, reason: str = "") -> dict:
    \"\"\"Refund part or all of an order.

    Args:
        order_id: The order to refund.
        amount: Dollars to give back.
    \"\"\"
```
Arguments a model sends are validated (pydantic) before the call; a validation error goes back to the model
as the tool's answer, so it can correct itself, and is never a crash. Inside a flow every call is a
journaled step named ``tool:<name>``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ..errors import UsageError

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI and Anthropic accept as a tool name


class ToolArgumentsError(Exception):
    """The arguments a model sent do not fit the tool's schema (the message is for the model)."""


@dataclass(frozen=True, eq=False)
class Tool:
    """A tool: a name, a description, a JSON schema for its arguments, and the function that runs it.

    Tools from other sources (an MCP server) are ``Tool`` objects too, with ``fn`` calling the server.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    """The JSON schema of the arguments (an object schema)."""
    fn: Callable[..., Any]
    is_async: bool = True
    validator: type[BaseModel] | None = None
    """Validates and converts arguments; None: the arguments are passed as given (schema from elsewhere)."""
    meta: Mapping[str, Any] = field(default_factory=dict)

    def schema(self) -> dict[str, Any]:
        """The tool as a model sees it (the OpenAI ``tools`` format, which Podium's providers translate)."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def validate(self, arguments: Any) -> dict[str, Any]:
        """Checked and converted arguments; ``ToolArgumentsError`` with a message a model can act on."""
        if not isinstance(arguments, Mapping):
            raise ToolArgumentsError(f"arguments of {self.name} must be a JSON object, got {arguments!r}")
        if self.validator is None:
            return dict(arguments)
        try:
            model = self.validator.model_validate(dict(arguments))
        except ValidationError as exc:
            parts = []
            for err in exc.errors()[:5]:
                loc = ".".join(str(x) for x in err["loc"]) or "arguments"
                parts.append(f"{loc}: {err['msg']}")
            raise ToolArgumentsError(f"invalid arguments for {self.name}: " + "; ".join(parts)) from None
        return {k: getattr(model, k) for k in type(model).model_fields}

    async def __call__(self, **arguments: Any) -> Any:
        """Call the tool directly with validated arguments (outside the agent loop)."""
        args = self.validate(arguments)
        if self.is_async:
            return await self.fn(**args)
        import asyncio

        return await asyncio.to_thread(self.fn, **args)

    def __repr__(self) -> str:
        return f"<podium tool {self.name}>"


def _doc(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """The description (the docstring before ``Args:``) and per-parameter descriptions (Google style)."""
    doc = inspect.getdoc(fn) or ""
    params: dict[str, str] = {}
    head, _, rest = doc.partition("\nArgs:\n")
    if rest:
        current = None
        for line in rest.splitlines():
            if not line.strip():
                continue
            if not line.startswith((" ", "\t")):
                break  # the next section (Returns:, Raises:)
            m = re.match(r"\s+(\*{0,2}\w+)(?:\s*\([^)]*\))?:\s*(.*)", line)
            if m and (len(line) - len(line.lstrip())) <= 4:
                current = m.group(1).lstrip("*")
                params[current] = m.group(2).strip()
            elif current is not None:
                params[current] += " " + line.strip()
    return head.strip(), params


def make_tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    read_only: bool = False,
    external: bool = False,
) -> Tool:
    """A ``Tool`` from a typed function (what ``@podium.tool`` does)."""
    if not callable(fn):
        raise UsageError(f"@podium.tool needs a function, not {fn!r}")
    tool_name = name or fn.__name__
    if not _NAME.match(tool_name):
        raise UsageError(
            f"tool name {tool_name!r}: use 1-64 letters, digits, '_' or '-' (model APIs allow no more)"
        )
    summary, described = _doc(fn)
    try:
        hints = get_type_hints(fn)
    except Exception as exc:
        raise UsageError(f"tool {tool_name!r}: cannot read its type hints ({exc})") from None
    fields: dict[str, Any] = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise UsageError(f"tool {tool_name!r}: *args and **kwargs cannot be described to a model")
        if p.name not in hints:
            raise UsageError(f"tool {tool_name!r}: parameter {p.name!r} needs a type annotation")
        default = ... if p.default is p.empty else p.default
        fields[p.name] = (hints[p.name], Field(default, description=described.get(p.name)))
    validator = create_model(f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    parameters = validator.model_json_schema()
    parameters.pop("title", None)
    return Tool(
        name=tool_name,
        description=description or summary or tool_name,
        parameters=parameters,
        fn=fn,
        is_async=inspect.iscoroutinefunction(fn),
        validator=validator,
        meta={"read_only": read_only, "external": external},
    )


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    read_only: bool = False,
    external: bool = False,
) -> Any:
    """Declare a tool. See the module docstring; ``name`` and ``description`` override the function's.

    ``read_only=True`` says the tool changes nothing (policies see ``side_effects: false``);
    ``external=True`` says its arguments leave the process (policies see the ``egress`` point)."""

    def wrap(f: Callable[..., Any]) -> Tool:
        return make_tool(f, name=name, description=description, read_only=read_only, external=external)

    return wrap(fn) if fn is not None else wrap
