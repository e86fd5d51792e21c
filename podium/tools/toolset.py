"""Toolsets: the tools a flow or agent is granted, composed with filters, prefixes and approval rules.

```python
tools = podium.Toolset(search, lookup_order, refund).requires_approval(
    lambda tool, args: tool.name == "refund" and args["amount"] > 500
)
support = tools.filter(["search", "lookup_order"])     # a narrower grant
```
A model that asks for a tool outside the grant gets a refusal it can read, and the attempt is journaled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import RunError, StepError, UsageError
from ..policies import enforce as _policies
from ..types import JSON
from .tool import Tool, ToolArgumentsError, make_tool

if TYPE_CHECKING:
    from ..workflow.context import Context

ApprovalRule = Callable[[Tool, dict[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool call gave back to the model: ``content`` (JSON) or an ``error`` the model can read.

    ``refused`` is true when the call never ran: not granted, invalid arguments, or rejected by a reviewer.
    """

    call_id: str
    tool: str
    content: JSON = None
    error: str | None = None
    refused: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    def for_model(self) -> str:
        """The text of the ``tool`` message the model receives."""
        import json

        if self.error is not None:
            return f"ERROR: {self.error}"
        return self.content if isinstance(self.content, str) else json.dumps(self.content, default=str)


class Toolset:
    """An immutable, ordered set of tools by name; every method returns a new toolset."""

    def __init__(self, *items: Tool | Toolset | Callable[..., Any] | Iterable[Any]) -> None:
        self._tools: dict[str, Tool] = {}
        self._rules: dict[str, ApprovalRule] = {}
        for item in items:
            self._add(item)

    def _add(self, item: Any) -> None:
        if isinstance(item, Toolset):
            for t in item:
                self._put(t, item._rules.get(t.name))
        elif isinstance(item, Tool):
            self._put(item, None)
        elif callable(item):
            self._put(make_tool(item), None)
        elif isinstance(item, Iterable) and not isinstance(item, str | bytes):
            for x in item:
                self._add(x)
        else:
            raise UsageError(f"a toolset holds tools, functions or toolsets, not {item!r}")

    def _put(self, t: Tool, rule: ApprovalRule | None) -> None:
        if t.name in self._tools and self._tools[t.name] is not t:
            raise UsageError(f"two tools are named {t.name!r}; rename one or use .prefix()")
        self._tools[t.name] = t
        if rule is not None:
            self._rules[t.name] = rule

    def _copy(self, tools: Iterable[Tool], rules: dict[str, ApprovalRule]) -> Toolset:
        out = Toolset()
        for t in tools:
            out._tools[t.name] = t
        out._rules = {k: v for k, v in rules.items() if k in out._tools}
        return out

    # -- composition --------------------------------------------------------------------------
    def filter(self, keep: Callable[[Tool], bool] | Iterable[str]) -> Toolset:
        """Only the tools ``keep`` accepts (a predicate, or a list of names; unknown names are an error)."""
        if callable(keep):
            return self._copy([t for t in self if keep(t)], self._rules)
        names = list(keep)
        unknown = [n for n in names if n not in self._tools]
        if unknown:
            raise UsageError(f"no tools named {', '.join(map(repr, unknown))} in this toolset")
        return self._copy([self._tools[n] for n in names], self._rules)

    def prefix(self, prefix: str) -> Toolset:
        """The same tools named ``prefix + name`` (to combine toolsets whose names clash), e.g. ``"crm_"``."""
        from .tool import _NAME

        if not isinstance(prefix, str) or not all(_NAME.match(prefix + t.name) for t in self):
            raise UsageError(f"prefix {prefix!r}: tool names may hold only letters, digits, '_' and '-'")
        renamed = [replace(t, name=prefix + t.name) for t in self]
        return self._copy(renamed, {prefix + k: v for k, v in self._rules.items()})

    def requires_approval(
        self, when: ApprovalRule | bool = True, *, tools: Iterable[str] | None = None
    ) -> Toolset:
        """Calls for which ``when(tool, arguments)`` is true wait (durably) for a human: the reviewer may
        approve, reject, or edit the arguments. ``tools`` limits the rule to some tool names."""
        names = set(self._tools) if tools is None else set(tools)
        unknown = names - set(self._tools)
        if unknown:
            raise UsageError(f"no tools named {', '.join(map(repr, sorted(unknown)))} in this toolset")
        rule: ApprovalRule = (
            (lambda t, a: True) if when is True else (lambda t, a: False) if when is False else when
        )
        if not callable(rule):
            raise UsageError("requires_approval takes a predicate (tool, arguments) -> bool, or True")
        rules = dict(self._rules)
        for n in names:
            old = rules.get(n)
            rules[n] = rule if old is None else _either(old, rule)
        return self._copy(self, rules)

    # -- reading ------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def schemas(self) -> list[dict[str, Any]]:
        """The tools as a model sees them."""
        return [t.schema() for t in self]

    def needs_approval(self, t: Tool, arguments: dict[str, Any]) -> bool:
        rule = self._rules.get(t.name)
        return bool(rule is not None and rule(t, arguments))

    def __repr__(self) -> str:
        return f"<podium toolset {', '.join(self._tools)}>"

    # -- calling ------------------------------------------------------------------------------
    async def call(self, ctx: Context, name: str, arguments: Any, *, call_id: str = "") -> ToolResult:
        """Call tool ``name`` from a flow: checked against this grant, arguments validated, an approval
        awaited if a rule asks for one, then run as the journaled step ``tool:<name>``. Never raises for
        the model's mistakes or the tool's failure: those come back as an error the model can read."""
        t = self._tools.get(name)
        if t is None:
            granted = ", ".join(self._tools) or "none"
            msg = f"tool {name!r} is not available to you (you may use: {granted})"
            await ctx.step(f"refused:{name}", _refusal, msg)  # journaled: the attempt is on record
            return ToolResult(call_id, name, error=msg, refused=True)
        try:
            args = t.validate(arguments)
        except ToolArgumentsError as exc:
            await ctx.step(f"refused:{name}", _refusal, str(exc))
            return ToolResult(call_id, name, error=str(exc), refused=True)
        verdict = await _policies.before_tool(ctx, t, args)  # podium.policies at tool.before
        if verdict.action == "deny":
            return ToolResult(
                call_id, name, error=f"a policy refused this call: {verdict.reasons()}", refused=True
            )
        if verdict.redacts:
            args = _policies.redact_arguments(args)
        if verdict.action == "require_approval" or self.needs_approval(t, args):
            shown: dict[str, Any] = {"tool": name, "arguments": _jsonable(args)}
            if verdict.action == "require_approval":
                shown["policy"] = verdict.reasons()
            decision = await ctx.approval(f"tool:{name}", payload=shown)
            if not decision:
                why = f": {decision.comment}" if decision.comment else ""
                return ToolResult(call_id, name, error=f"a reviewer rejected this call{why}", refused=True)
            if decision.edited:
                edited = decision.payload.get("arguments") if isinstance(decision.payload, dict) else None
                try:
                    args = t.validate(edited)
                except ToolArgumentsError as exc:
                    return ToolResult(
                        call_id, name, error=f"the reviewer's edit is invalid: {exc}", refused=True
                    )
        agent = t.meta.get("agent")
        try:
            if agent is not None:  # a sub-agent: a child run, not a step
                content = await agent._as_child(ctx, args)
            else:
                # the arguments travel as one dict: a tool's own `timeout` or `retries` is not ctx.step's
                content = await ctx.step(f"tool:{name}", _runner(t), args)
        except StepError as exc:
            return ToolResult(call_id, name, error=f"{exc.type}: {exc}")
        except RunError as exc:  # a sub-agent's run failed or was cancelled
            return ToolResult(call_id, name, error=f"{exc.type}: {exc}")
        return ToolResult(call_id, name, content=_jsonable(content))


def _runner(t: Tool) -> Callable[[dict[str, Any]], Any]:
    """``t.fn`` taking its arguments as one dict (its result is made JSON by the caller either way)."""
    import asyncio

    if asyncio.iscoroutinefunction(t.fn):

        async def run_async(arguments: dict[str, Any]) -> Any:
            return await t.fn(**arguments)

        return run_async

    def run_sync(arguments: dict[str, Any]) -> Any:
        return t.fn(**arguments)

    return run_sync


def _either(a: ApprovalRule, b: ApprovalRule) -> ApprovalRule:
    return lambda t, args: a(t, args) or b(t, args)


def _refusal(message: str) -> dict[str, str]:
    return {"refused": message}


def _jsonable(value: Any) -> JSON:
    from pydantic_core import to_jsonable_python

    try:
        return to_jsonable_python(value)
    except Exception:
        return str(value)
