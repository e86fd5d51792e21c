"""``podium.Agent``: a model that plans, calls tools and hands work on, one journaled step per turn.

```python
support = podium.Agent(
    "support",
    instructions="Answer customer questions. Look orders up before you answer.",
    model="smart",
    tools=[lookup_order, refund],
    output=Answer,          # a pydantic model: the final answer is validated JSON
    max_turns=8,
)

@podium.flow
async def help_desk(ctx: podium.Context, question: str) -> Answer:
    return (await support.run(ctx, question)).output
```
Every model turn is a step (``model:<name>``) and every tool call a step (``tool:<name>``), so an agent that
crashes after 40 tool calls resumes at call 41 and never repeats a finished one; an approval rule on a tool
makes the agent wait, durably, for a human. An agent is also a flow of its own (``agent.flow``), so it can
be started, watched and resumed like any run, or called by another agent as a tool (``agent.as_tool()``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from ..errors import ApplicationError, UsageError
from ..models.types import Completion, Message, ToolCall
from ..policies.taint import Untrusted, fence
from ..tools.tool import Tool
from ..tools.toolset import ToolResult, Toolset

if TYPE_CHECKING:
    from ..workflow.context import Context
    from ..workflow.flow import Flow


class AgentError(ApplicationError):
    """An agent stopped without an answer: too many turns, tokens or dollars, or no valid output."""

    def __init__(self, message: str, *, type: str) -> None:
        super().__init__(message, type=type, retryable=False)


@dataclass(slots=True)
class AgentResult:
    """What an agent run produced."""

    output: Any
    """The final answer: validated against ``output`` when the agent has one, else the text."""
    agent: str
    """The agent that gave the answer (after handoffs)."""
    turns: int
    tool_calls: int
    input_tokens: int
    output_tokens: int
    cost: float
    messages: list[Message] = field(default_factory=list)
    handoffs: list[str] = field(default_factory=list)


class AgentInput(BaseModel):
    """The input of an agent's own flow."""

    task: str
    context: dict[str, Any] | None = None


_HANDOFF = "transfer_to_"
_AGENTS: dict[str, Agent] = {}  # agents whose flow is registered, by name


class Agent:
    """A model that loops: think, call tools (each a journaled step), until it answers. See the module
    docstring; ``handoffs`` are agents this one may pass the conversation to (the model chooses)."""

    def __init__(
        self,
        name: str,
        instructions: str,
        *,
        model: str = "default",
        tools: Toolset | Iterable[Any] = (),
        output: Any = None,
        max_turns: int = 10,
        max_tokens: int | None = None,
        max_cost: float | None = None,
        handoffs: Sequence[Agent] = (),
        temperature: float | None = None,
        description: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,48}", name):
            raise UsageError(f"agent name {name!r}: use 1-48 letters, digits, '_' or '-'")
        if not isinstance(instructions, str) or not instructions.strip():
            raise UsageError(f"agent {name!r} needs instructions")
        if not isinstance(max_turns, int) or max_turns < 1:
            raise UsageError("max_turns must be a positive integer")
        self.name = name
        self.instructions = instructions
        self.model = model
        self.tools = tools if isinstance(tools, Toolset) else Toolset(*tools)
        self.output = output
        self._adapter: TypeAdapter[Any] | None = None if output is None else TypeAdapter(output)
        self.max_turns = max_turns
        self.max_tokens = max_tokens
        self.max_cost = max_cost
        self.handoffs = list(handoffs)
        self.temperature = temperature
        self.description = description or instructions.strip().splitlines()[0][:200]
        self._flow: Flow[Any, Any] | None = None

    def __repr__(self) -> str:
        return f"<podium agent {self.name}>"

    # -- what the model is told ---------------------------------------------------------------
    def _system(self) -> str:
        text = self.instructions.strip()
        if self._adapter is not None:
            schema = json.dumps(self._adapter.json_schema())
            text += (
                f"\n\nWhen you have the final answer, reply with JSON only, matching this schema: {schema}"
            )
        return text

    def _tool_schemas(self) -> list[dict[str, Any]]:
        out = self.tools.schemas()
        for other in self.handoffs:
            out.append(
                {
                    "type": "function",
                    "function": {
                        "name": _HANDOFF + other.name,
                        "description": f"Hand the conversation to {other.name}: {other.description}",
                        "parameters": {"type": "object", "properties": {}},
                    },
                }
            )
        return out

    # -- the loop -----------------------------------------------------------------------------
    async def run(
        self,
        ctx: Context,
        task: str | Sequence[Message | dict[str, Any]],
        *,
        context: dict[str, Any] | None = None,
    ) -> AgentResult:
        """Run the agent inside a flow until it answers; every turn and tool call is journaled."""
        if isinstance(task, str):
            if not task.strip():
                raise UsageError("an agent needs a task")
            user = task if context is None else f"{task}\n\nContext: {json.dumps(context, default=str)}"
            if isinstance(task, Untrusted):  # a document handed over as the task: fenced, as data
                user = fence(task) if context is None else f"{fence(task)}\n\nContext: {json.dumps(context)}"
            history = [Message(role="user", content=user)]
        else:
            history = [m if isinstance(m, Message) else Message.model_validate(m) for m in task]
        agent: Agent = self
        turns = calls = tin = tout = 0
        cost = 0.0
        handoffs: list[str] = []
        mine = 0  # turns of the agent in charge (a specialist reached by a handoff has its own max_turns)
        tokens_before = 0
        cost_before = 0.0
        while True:
            if mine >= agent.max_turns:
                raise AgentError(
                    f"agent {agent.name!r} did not answer within {agent.max_turns} turns",
                    type="AgentTurnLimit",
                )
            turns += 1
            mine += 1
            messages = [Message(role="system", content=agent._system()), *history]
            completion: Completion = await ctx.model(agent.model).chat(
                messages, tools=agent._tool_schemas(), temperature=agent.temperature
            )
            tin += completion.usage.input_tokens
            tout += completion.usage.output_tokens
            cost += completion.cost
            used = tin + tout - tokens_before
            if agent.max_tokens is not None and used > agent.max_tokens:
                raise AgentError(
                    f"agent {agent.name!r} used {used} tokens (limit {agent.max_tokens})",
                    type="AgentTokenLimit",
                )
            if agent.max_cost is not None and cost - cost_before > agent.max_cost:
                raise AgentError(
                    f"agent {agent.name!r} spent ${cost - cost_before:.4f} (limit ${agent.max_cost})",
                    type="AgentCostLimit",
                )
            if completion.tool_calls:
                history.append(
                    Message(role="assistant", content=completion.text, tool_calls=completion.tool_calls)
                )
                target = agent._handoff(completion.tool_calls)
                if target is not None:
                    history.extend(
                        Message(role="tool", tool_call_id=c.id, content=f"transferred to {target.name}")
                        for c in completion.tool_calls
                    )
                    handoffs.append(target.name)
                    agent = target
                    mine, tokens_before, cost_before = 0, tin + tout, cost
                    continue
                results = await agent._call_tools(ctx, completion.tool_calls)
                calls += len(results)
                history.extend(  # what a tool returned is untrusted: fenced, never instructions
                    Message(
                        role="tool",
                        tool_call_id=r.call_id,
                        content=r.for_model()
                        if agent._trusted(r)
                        else fence(r.for_model(), f"tool:{r.tool}"),
                    )
                    for r in results
                )
                continue
            text = completion.text
            history.append(Message(role="assistant", content=text))
            if agent._adapter is None:
                output: Any = text
            else:
                try:
                    output = agent._adapter.validate_json(_json_part(text))
                except ValidationError as exc:
                    problem = "; ".join(
                        f"{'.'.join(str(x) for x in e['loc']) or 'answer'}: {e['msg']}"
                        for e in exc.errors()[:3]
                    )
                    history.append(
                        Message(
                            role="user",
                            content=f"Your answer is not valid JSON for the schema ({problem}). "
                            "Reply again with JSON only.",
                        )
                    )
                    continue
            return AgentResult(output, agent.name, turns, calls, tin, tout, cost, history, handoffs)

    def _trusted(self, r: ToolResult) -> bool:
        """A refusal written by Podium, or the answer of a sub-agent (which fenced its own tools' output)."""
        t = self.tools.get(r.tool)
        return r.refused or (t is not None and t.meta.get("agent") is not None)

    def _handoff(self, calls: Sequence[ToolCall]) -> Agent | None:
        for c in calls:
            if c.name.startswith(_HANDOFF):
                wanted = c.name[len(_HANDOFF) :]
                for other in self.handoffs:
                    if other.name == wanted:
                        return other
        return None

    async def _call_tools(self, ctx: Context, calls: Sequence[ToolCall]) -> list[ToolResult]:
        if len(calls) == 1:
            c = calls[0]
            return [await self.tools.call(ctx, c.name, c.arguments, call_id=c.id)]
        return list(
            await ctx.gather(*(self.tools.call(ctx, c.name, c.arguments, call_id=c.id) for c in calls))
        )

    # -- as a flow and as a tool --------------------------------------------------------------
    @property
    def flow(self) -> Flow[Any, Any]:
        """The agent as a flow of its own, named ``agent.<name>``: input ``{"task": ..., "context": ...}``,
        output the agent's answer (JSON)."""
        if self._flow is None:
            from ..workflow.flow import Flow, register

            agent = self

            async def run_agent(ctx: Context, input: AgentInput) -> Any:
                result = await agent.run(ctx, input.task, context=input.context)
                out = result.output
                return out.model_dump(mode="json") if isinstance(out, BaseModel) else out

            run_agent.__doc__ = f"Agent {self.name}: {self.description}"
            run_agent.__annotations__ = {"ctx": Any, "input": AgentInput, "return": Any}  # resolved types
            fl: Flow[Any, Any] = Flow(run_agent, name=f"agent.{self.name}", timeout=None)
            other = _AGENTS.get(self.name)
            if other is not None and other is not self:
                raise UsageError(
                    f"an agent named {self.name!r} exists already (its flow is agent.{self.name}); "
                    "give one of them another name"
                )
            register(fl)
            _AGENTS[self.name] = self
            self._flow = fl
        return self._flow

    def as_tool(self, name: str | None = None, description: str | None = None) -> Tool:
        """The agent as a tool another agent may call (a supervisor delegating): each call is a child run."""
        self.flow  # registered now, so workers know it  # noqa: B018
        return Tool(
            name=name or self.name,
            description=description or f"Delegate a task to {self.name}: {self.description}",
            parameters={
                "type": "object",
                "properties": {"task": {"type": "string", "description": "What to do, in full"}},
                "required": ["task"],
            },
            fn=_never,
            meta={"agent": self},
        )

    async def _as_child(self, ctx: Context, args: dict[str, Any]) -> Any:
        return await ctx.child(self.flow, {"task": str(args.get("task", ""))})


def _never(**kwargs: Any) -> None:  # pragma: no cover - sub-agent tools run as child flows
    raise RuntimeError("a sub-agent tool runs as a child flow")


def _json_part(text: str) -> str:
    """The JSON inside a reply that may wrap it in prose or a code fence."""
    m = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if m:
        return m.group(1).strip()
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    return text[start:].strip() if start >= 0 else text.strip()
