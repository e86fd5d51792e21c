"""The policy engine: policies evaluated at the points the engine already has, each returning a decision.

Points (``POINTS``): ``run.start`` (``Client.start``), ``model.before`` and ``model.after`` (model calls),
``tool.before`` (every tool call of a toolset or agent), ``approval`` (``Client.approve``/``reject``) and
``egress`` (data about to leave the process: a model whose provider is not embedded, an MCP server, a tool
marked ``external``; evaluated together with the call's own point).

A decision is ``allow``, ``deny``, ``redact``, ``require_approval`` or ``switch`` (to another model). Every
policy that applies is asked; the strictest action wins (deny > require_approval > switch > redact > allow)
and every non-allow decision is kept, with its policy's name and version, in the journal and the audit
trail.

```python
from podium.policies import Decision, policy, register

@policy(points=["tool.before"])
def no_weekend_refunds(point: str, facts: Facts) -> Decision | None:
    if facts["tool"] == "refund" and facts["weekday"] >= 5:
        return Decision.deny("no refunds at weekends")
    return None

register(no_weekend_refunds)
```
Policies in YAML (``podium.policies.load``) are described in ``podium.policies.rules``.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

from ..errors import UsageError

Action = Literal["allow", "deny", "redact", "require_approval", "switch"]
ACTIONS: tuple[str, ...] = ("allow", "redact", "switch", "require_approval", "deny")  # by strictness
POINTS: tuple[str, ...] = ("run.start", "model.before", "model.after", "tool.before", "approval", "egress")
_RANK = {a: i for i, a in enumerate(ACTIONS)}


@dataclass(frozen=True, slots=True)
class Decision:
    """What a policy decided. Build one with ``Decision.deny("why")`` and friends; the engine fills in
    ``policy`` and ``version``."""

    action: Action
    reason: str = ""
    model: str | None = None
    """The model to switch to (``switch`` only)."""
    rule: str = ""
    policy: str = ""
    version: str = ""

    @classmethod
    def allow(cls) -> Decision:
        return cls("allow")

    @classmethod
    def deny(cls, reason: str, *, rule: str = "") -> Decision:
        return cls("deny", reason, rule=rule)

    @classmethod
    def redact(cls, reason: str = "personal data masked", *, rule: str = "") -> Decision:
        return cls("redact", reason, rule=rule)

    @classmethod
    def require_approval(cls, reason: str, *, rule: str = "") -> Decision:
        return cls("require_approval", reason, rule=rule)

    @classmethod
    def switch(cls, model: str, reason: str = "", *, rule: str = "") -> Decision:
        return cls("switch", reason or f"switched to model {model!r}", model=model, rule=rule)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"policy": self.policy, "version": self.version, "action": self.action}
        if self.rule:
            out["rule"] = self.rule
        if self.reason:
            out["reason"] = self.reason
        if self.model is not None:
            out["model"] = self.model
        return out


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome at one point: the strictest ``action`` and every non-allow decision (``hits``)."""

    action: Action = "allow"
    hits: tuple[Decision, ...] = ()

    @property
    def redacts(self) -> bool:
        """Whether some policy asked for redaction (it applies with any action but deny)."""
        return any(h.action == "redact" for h in self.hits)

    @property
    def model(self) -> str | None:
        """The model a ``switch`` names (the first switching policy's)."""
        return next((h.model for h in self.hits if h.action == "switch"), None)

    def reasons(self) -> str:
        """The reasons of the hits that decided the action, for error messages and reviewers."""
        top = [h for h in self.hits if h.action == self.action] or list(self.hits)
        return "; ".join(f"{h.policy}{'/' + h.rule if h.rule else ''}: {h.reason or h.action}" for h in top)

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "decisions": [h.to_json() for h in self.hits]}

    @classmethod
    def from_json(cls, data: Any) -> Verdict:
        if not isinstance(data, Mapping):
            return cls()
        hits = tuple(
            Decision(
                d.get("action", "allow"),
                d.get("reason", ""),
                d.get("model"),
                d.get("rule", ""),
                d.get("policy", ""),
                d.get("version", ""),
            )
            for d in data.get("decisions", ())
        )
        return cls(data.get("action", "allow"), hits)


ALLOW = Verdict()


class Facts(dict[str, Any]):
    """What a policy knows at a point: a dict, some of whose values are computed on first read (the PII
    kinds of the text, say), so that policies that do not ask do not pay for them."""

    __slots__ = ("_lazy",)

    def __init__(self, values: Mapping[str, Any] | None = None, **lazy: Callable[[Facts], Any]) -> None:
        super().__init__(values or {})
        self._lazy = lazy

    def __missing__(self, key: str) -> Any:
        make = self._lazy.get(key)
        if make is None:
            raise KeyError(key)
        value = self[key] = make(self)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def path(self, dotted: tuple[str, ...]) -> Any:
        """The value at ``("arguments", "amount")``; None where the path does not exist."""
        value: Any = self.get(dotted[0])
        for part in dotted[1:]:
            if isinstance(value, Mapping):
                value = value.get(part)
            else:
                return None
        return value


@runtime_checkable
class Policy(Protocol):
    """A policy: a ``name``, a ``version`` (a content hash), the ``points`` it acts at, and ``evaluate``.

    ``evaluate`` returns a ``Decision``, or None for "nothing to say" (an allow). It must be quick and pure:
    it runs on the event loop at every call of its points. ``applies(point, facts)`` (optional) says cheaply
    whether the policy concerns a call at all; a policy that does not apply leaves no trace in the journal.
    """

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def points(self) -> Collection[str]: ...

    def evaluate(self, point: str, facts: Facts) -> Decision | None: ...


def source_version(obj: Any) -> str:
    """A policy's version: the first 12 hex digits of the SHA-256 of its source (or its name)."""
    try:
        text = inspect.getsource(obj)
    except (OSError, TypeError):
        text = getattr(obj, "__qualname__", repr(obj))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(slots=True)
class FunctionPolicy:
    """A policy from a function ``(point, facts) -> Decision | None`` (what ``@policy`` makes)."""

    fn: Callable[[str, Facts], Decision | None]
    name: str
    points: Collection[str]
    version: str = ""
    needs: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        self.version = self.version or source_version(self.fn)

    def evaluate(self, point: str, facts: Facts) -> Decision | None:
        return self.fn(point, facts)


def policy(
    fn: Callable[[str, Facts], Decision | None] | None = None,
    /,
    *,
    name: str | None = None,
    points: Iterable[str] = POINTS,
    needs: Iterable[str] = (),
) -> Any:
    """Make a policy of a function ``(point, facts) -> Decision | None``. ``needs`` names facts that take
    I/O to compute (``tenant_cost_today``) so the engine fetches them before asking."""

    def wrap(f: Callable[[str, Facts], Decision | None]) -> FunctionPolicy:
        chosen = _check_points(points, f"policy {name or f.__name__!r}")
        return FunctionPolicy(f, name or f.__name__, chosen, needs=frozenset(needs))

    return wrap(fn) if fn is not None else wrap


def _check_points(points: Iterable[str], what: str) -> tuple[str, ...]:
    chosen = (points,) if isinstance(points, str) else tuple(points)
    bad = [p for p in chosen if p not in POINTS]
    if bad or not chosen:
        raise UsageError(f"{what}: unknown point(s) {bad or chosen!r}; use {', '.join(POINTS)}")
    return chosen


class PolicySet:
    """Policies by point. The process-wide set is ``podium.policies.active()``; ``register`` adds to it."""

    def __init__(self, policies: Iterable[Policy] = ()) -> None:
        self._policies: dict[str, Policy] = {}
        self._by_point: dict[str, tuple[Policy, ...]] = {}
        for p in policies:
            self.add(p)

    def add(self, p: Policy) -> Policy:
        for attr in ("name", "version", "points", "evaluate"):
            if not hasattr(p, attr):
                raise UsageError(f"{p!r} is not a policy: it has no {attr!r} (see podium.policies.Policy)")
        _check_points(p.points, f"policy {p.name!r}")
        self._policies[p.name] = p  # the same name again replaces (a reloaded file)
        self._index()
        return p

    def remove(self, name: str) -> None:
        self._policies.pop(name, None)
        self._index()

    def clear(self) -> None:
        self._policies.clear()
        self._index()

    def _index(self) -> None:
        self._by_point = {pt: tuple(p for p in self._policies.values() if pt in p.points) for pt in POINTS}

    def __iter__(self) -> Any:
        return iter(list(self._policies.values()))

    def __len__(self) -> int:
        return len(self._policies)

    def get(self, name: str) -> Policy | None:
        return self._policies.get(name)

    def applicable(self, points: tuple[str, ...], facts: Facts) -> list[tuple[str, Policy]]:
        """The (point, policy) pairs that concern this call."""
        out: list[tuple[str, Policy]] = []
        for pt in points:
            for p in self._by_point.get(pt, ()):
                applies = getattr(p, "applies", None)
                if applies is None or applies(pt, facts):
                    out.append((pt, p))
        return out

    def needs(self, pairs: Iterable[tuple[str, Policy]]) -> set[str]:
        """The I/O facts the given policies read."""
        out: set[str] = set()
        for _, p in pairs:
            out.update(getattr(p, "needs", ()))
        return out

    def evaluate(self, points: str | tuple[str, ...], facts: Facts) -> Verdict:
        """Ask every applicable policy; the strictest action wins (see the module docstring)."""
        pts = (points,) if isinstance(points, str) else points
        return decide(self.applicable(pts, facts), facts)


def decide(pairs: Iterable[tuple[str, Policy]], facts: Facts) -> Verdict:
    """Evaluate the given (point, policy) pairs into one verdict."""
    hits: list[Decision] = []
    rank = 0
    for pt, p in pairs:
        d = p.evaluate(pt, facts)
        if d is None or d.action == "allow":
            continue
        if d.action not in _RANK:
            raise UsageError(f"policy {p.name!r} returned an unknown action {d.action!r}")
        hits.append(replace(d, policy=p.name, version=p.version))
        rank = max(rank, _RANK[d.action])
    if not hits:
        return ALLOW
    return Verdict(ACTIONS[rank], tuple(hits))  # type: ignore[arg-type]


_ACTIVE = PolicySet()


def active() -> PolicySet:
    """The process-wide policies that flows, tools and the client consult."""
    return _ACTIVE


def register(*policies: Policy) -> None:
    """Add policies (Python policies, or ones loaded from YAML) to the process-wide set; a policy with the
    name of one registered already replaces it."""
    for p in policies:
        _ACTIVE.add(p)


def unregister(name: str) -> None:
    """Remove the policy named ``name`` (no error if there is none)."""
    _ACTIVE.remove(name)
