"""Where policies act: the hook functions the model handle, toolsets and the client call.

Inside a run, a point where some policy applies records its verdict as a journaled value named
``policy:<point>`` (so replay gives the same verdict, whatever the clock or the spending says then), and a
verdict that is not a plain allow is appended to the audit trail as ``policy.decision``. A point where no
policy applies costs a dictionary lookup and leaves no trace.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import PolicyDeniedError, PolicyViolationError
from . import taint as _u
from .engine import ALLOW, Facts, Verdict, active, decide
from .pii import Masked, mask, scan

if TYPE_CHECKING:
    from ..models.spec import ModelSpec
    from ..models.types import Completion, ModelRequest

LOCAL_PROVIDERS = frozenset({"local", "function"})
"""Providers whose models run in this process: calls to them are not ``egress``."""


def _pii_kinds(facts: Facts) -> list[str]:
    return sorted({f.kind for f in scan(str(facts.get("text") or ""))})


def _day(clock: float) -> str:
    return datetime.fromtimestamp(clock, UTC).strftime("%Y-%m-%d")


async def _fetch(store: Any, facts: Facts, needs: set[str], now: float) -> None:
    """Facts that take a database read, fetched only when an applicable policy names them."""
    if needs & {"tenant_cost_today", "projected_tenant_cost_today"}:
        tenant = facts.get("tenant")
        today = 0.0 if not tenant or store is None else await store.spend_get(f"tenant:{tenant}", _day(now))
        facts["tenant_cost_today"] = today
        facts["projected_tenant_cost_today"] = today + float(facts.get("estimate") or 0.0)


async def _audit(
    store: Any, verdict: Verdict, point: str, subject: str | None, actor: str | None, tenant: Any = None
) -> None:
    if store is None or not verdict.hits:
        return
    from ..observability.audit import Auditor

    payload = {"point": point, **verdict.to_json()}
    if isinstance(tenant, str):
        payload["tenant"] = tenant  # who may read the entry (``GET /api/audit``)
    await Auditor(store).record("policy.decision", subject=subject, actor=actor, payload=payload)


async def guard(ctx: Any, points: tuple[str, ...], facts: Facts) -> Verdict:
    """The verdict at ``points`` for a call inside a run (journaled) or outside one (``ctx`` None)."""
    pairs = active().applicable(points, facts)
    recorder = getattr(ctx, "_record_policy", None)
    if not pairs:  # a journaled verdict still counts on replay, even if its policy is gone
        return ALLOW if recorder is None else Verdict.from_json(await recorder(f"policy:{points[0]}", None))
    needs = active().needs(pairs)
    driver = getattr(ctx, "_driver", None)
    store = getattr(driver, "store", None)
    settings = getattr(getattr(driver, "worker", None), "settings", None)
    audit = store if getattr(settings, "audit", True) else None  # PODIUM_AUDIT=0 records nothing

    async def produce() -> Any:
        now = driver.clock() if driver is not None else time.time()
        await _fetch(store, facts, needs, now)
        verdict = decide(pairs, facts)
        if verdict.hits:
            run_id = getattr(ctx, "run_id", None)
            await _audit(audit, verdict, points[0], run_id, "policy", getattr(ctx, "tenant", None))
        return verdict.to_json()

    if recorder is None:
        return Verdict.from_json(await produce())
    return Verdict.from_json(await recorder(f"policy:{points[0]}", produce))


# -- models ------------------------------------------------------------------------------------------
def shield(request: ModelRequest) -> tuple[ModelRequest, bool]:
    """The request with no untrusted text in the system role, and whether it carries untrusted text."""
    from ..models.types import Message

    tainted = False
    out: list[Message] = []
    moved = False
    for m in request.messages:
        if m.role == "tool" or _u.is_untrusted(m.content):
            tainted = True
        if m.role == "system" and _u.FENCE_OPEN in m.content:
            kept, blocks = _u.split_system(m.content)
            if kept:
                out.append(m.model_copy(update={"content": kept}))
            out.extend(Message(role="user", content=b) for b in blocks)
            moved = True
            continue
        out.append(m)
    if moved:
        request = request.model_copy(update={"messages": out})
    return request, tainted


def model_facts(
    ctx: Any, name: str, spec: ModelSpec, request: ModelRequest, *, task: str | None, data_class: str | None
) -> Facts:
    driver = getattr(ctx, "_driver", None)
    pins = dict(getattr(driver, "pins", {}) or {})
    spent = float(getattr(driver, "spent", 0.0) or 0.0)
    input_tokens = sum(len(m.content) // 4 + 1 for m in request.messages)
    estimate = spec.cost(input_tokens, request.max_tokens or 256)
    external = bool(spec.extra.get("external", spec.provider not in LOCAL_PROVIDERS))
    return Facts(
        {
            "run_id": getattr(ctx, "run_id", None),
            "flow": getattr(ctx, "flow", None),
            "model": name,
            "provider": spec.provider,
            "external": external,
            "destination": f"model:{spec.name}",
            "data_class": data_class,
            "task": task,
            "untrusted": bool(getattr(ctx, "_untrusted", False)),
            "run_cost": spent,
            "estimate": estimate,
            "projected_run_cost": spent + estimate,
            "tenant": _tenant(ctx, pins),
            "pins": pins,
        },
        text=lambda f: "\n".join(m.content for m in request.messages),
        pii=_pii_kinds,
    )


async def before_model(
    ctx: Any, facts: Facts, request: ModelRequest
) -> tuple[ModelRequest, Masked | None, str | None]:
    """Apply the verdict at ``model.before`` (and ``egress`` for an external model): the request to send
    (masked when a policy redacts), the ``Masked`` to restore the answer with, and a model to switch to."""
    points = ("model.before", "egress") if facts["external"] else ("model.before",)
    verdict = await guard(ctx, points, facts)
    if verdict is ALLOW:
        return request, None, None
    if verdict.action == "deny":
        raise PolicyDeniedError(f"model {facts['model']!r} refused by policy: {verdict.reasons()}")
    if verdict.action == "require_approval":
        decision = await ctx.approval(
            f"policy:model:{facts['model']}",
            payload={"point": "model.before", "model": facts["model"], "policy": verdict.reasons()},
        )
        if not decision:
            raise PolicyDeniedError(f"a reviewer rejected the call of model {facts['model']!r}")
    masked = None
    if verdict.redacts:
        masked = Masked("")
        messages = [
            m.model_copy(update={"content": mask(m.content, into=masked).text}) for m in request.messages
        ]
        request = request.model_copy(update={"messages": messages})
    return request, masked, verdict.model if verdict.action == "switch" else None


async def before_embed(ctx: Any, spec: ModelSpec, texts: list[str]) -> list[str]:
    """``egress`` for texts sent to an external embedding model: deny raises, redact masks each text (the
    vectors are of the masked texts); approval and switch mean nothing here and are refused."""
    external = bool(spec.extra.get("external", spec.provider not in LOCAL_PROVIDERS))
    if not external:
        return texts
    facts = Facts(
        {
            "run_id": getattr(ctx, "run_id", None),
            "flow": getattr(ctx, "flow", None),
            "model": spec.name,
            "provider": spec.provider,
            "external": True,
            "destination": f"embed:{spec.name}",
            "untrusted": bool(getattr(ctx, "_untrusted", False)),
        },
        text=lambda f: "\n".join(texts),
        pii=_pii_kinds,
    )
    verdict = await guard(ctx, ("egress",), facts)
    if verdict.action in ("deny", "require_approval", "switch"):
        raise PolicyDeniedError(f"embedding with {spec.name!r} refused by policy: {verdict.reasons()}")
    return [mask(t).text for t in texts] if verdict.redacts else texts


async def after_model(ctx: Any, facts: Facts, completion: Completion, masked: Masked | None) -> Completion:
    """Apply the verdict at ``model.after`` to the answer (as the provider gave it), then restore what
    ``before_model`` masked."""
    answer = Facts({**facts, "text": completion.text}, pii=_pii_kinds)
    answer.pop("pii", None)
    verdict = await guard(ctx, ("model.after",), answer)
    if verdict.action == "deny":
        raise PolicyDeniedError(f"the answer of model {facts['model']!r} was blocked: {verdict.reasons()}")
    text = completion.text
    if verdict.redacts:
        text = mask(text).text
    if masked is None and text == completion.text:
        return completion
    update: dict[str, Any] = {"text": masked.restore(text) if masked is not None else text}
    if masked is not None and completion.tool_calls:
        update["tool_calls"] = [
            c.model_copy(update={"arguments": _restore(c.arguments, masked)}) for c in completion.tool_calls
        ]
    return completion.model_copy(update=update)


def _restore(value: Any, masked: Masked) -> Any:
    if isinstance(value, str):
        return masked.restore(value)
    if isinstance(value, Mapping):
        return {k: _restore(v, masked) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v, masked) for v in value]
    return value


def _tenant(ctx: Any, pins: Mapping[str, str]) -> str | None:
    """The run's tenant (``Client.start(tenant=)``); a run pin ``tenant`` stands in for it in the default
    tenant (a deployment that keeps one Podium tenant and tells its customers apart by pin)."""
    tenant = getattr(ctx, "tenant", None)
    if tenant in (None, "default") and pins.get("tenant"):
        return pins["tenant"]
    return tenant if isinstance(tenant, str) else None


async def charge(ctx: Any, completion: Completion) -> None:
    """Add a model call's cost to its tenant's spending today (the run's tenant), inside the step."""
    driver = getattr(ctx, "_driver", None)
    tenant = _tenant(ctx, getattr(driver, "pins", None) or {})
    if driver is None or not tenant or not completion.cost or getattr(driver, "store", None) is None:
        return
    await driver.store.spend_add(f"tenant:{tenant}", _day(driver.clock()), float(completion.cost))


# -- tools -------------------------------------------------------------------------------------------
async def before_tool(ctx: Any, tool: Any, arguments: dict[str, Any]) -> Verdict:
    """The verdict at ``tool.before`` (and ``egress`` for an MCP or external tool)."""
    meta = getattr(tool, "meta", {}) or {}
    external = bool(meta.get("external") or meta.get("mcp") or meta.get("server"))
    pins = dict(getattr(getattr(ctx, "_driver", None), "pins", {}) or {})
    facts = Facts(
        {
            "run_id": getattr(ctx, "run_id", None),
            "flow": getattr(ctx, "flow", None),
            "tool": tool.name,
            "arguments": arguments,
            "side_effects": not meta.get("read_only", False),
            "untrusted": bool(getattr(ctx, "_untrusted", False)),
            "external": external,
            "destination": f"tool:{tool.name}",
            "tenant": _tenant(ctx, pins),
            "pins": pins,
        },
        text=lambda f: json.dumps(arguments, default=str),
        pii=_pii_kinds,
    )
    points = ("tool.before", "egress") if external else ("tool.before",)
    return await guard(ctx, points, facts)


def redact_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments with personal data in their strings masked (not restored: the tool gets placeholders)."""
    masked = Masked("")

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return mask(v, into=masked).text
        if isinstance(v, Mapping):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return {k: walk(v) for k, v in arguments.items()}


# -- the control plane ---------------------------------------------------------------------------------
async def control(store: Any, point: str, facts: Facts, *, subject: str | None, actor: str | None) -> None:
    """``run.start`` and ``approval``: raise ``PolicyViolationError`` (nothing changed) on a deny."""
    if not len(active()):
        return
    verdict = await guard(None, (point,), facts)
    if verdict.hits:
        await _audit(store, verdict, point, subject, actor, facts.get("tenant"))
    if verdict.action == "deny":
        raise PolicyViolationError(f"refused by policy: {verdict.reasons()}")
