"""Policies in YAML, for operators: rules of facts and matchers, compiled to plain closures.

```yaml
policy: refund-approval            # the policy's name (default: the file's name)
description: Refunds over $500 need a human.
rules:
  - name: big-refunds
    at: tool.before                # a point, or a list of points
    when:                          # every fact must match (no `when`: always)
      tool: refund                 # equal (a list: one of)
      arguments.amount: {gt: 500}  # dotted paths reach into dicts
    then: require_approval         # allow | deny | redact | require_approval | {switch: MODEL}
    reason: refunds over $500 need an approver
```
Matchers: a value (equality; ``true``/``false`` test truthiness), a list (one of), or a mapping of
operators: ``eq``, ``ne``, ``gt``, ``gte``, ``lt``, ``lte``, ``in``, ``not_in``, ``contains`` (a list or text
holds it), ``contains_any``, ``matches`` (a regular expression, searched), ``exists``.

The facts of each point are listed in ``docs/governance.md``. ``load(path)`` reads and registers nothing;
``podium.policies.register(load(path))`` does. Errors name the file and line: ``PolicyFileError``.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .engine import POINTS, Decision, Facts

Matcher = Callable[[Any], bool]

ASYNC_FACTS = frozenset({"tenant_cost_today", "projected_tenant_cost_today"})
"""Facts that take a database read; fetched only for policies that name them."""

_ACTIONS = ("allow", "deny", "redact", "require_approval")
_ALLOWED = {  # what an action can mean at each point
    "run.start": {"allow", "deny"},
    "approval": {"allow", "deny"},
    "model.before": {"allow", "deny", "redact", "require_approval", "switch"},
    "model.after": {"allow", "deny", "redact"},
    "tool.before": {"allow", "deny", "redact", "require_approval"},
    "egress": {"allow", "deny", "redact", "require_approval", "switch"},
}
_SELECTORS = ("tool", "model")  # facts a rule may be indexed by: a call it cannot match costs nothing


class PolicyFileError(ConfigError):
    """A policy file that cannot be used; the message names the file and the line."""


def _cmp(op: Callable[[Any, Any], bool], ref: Any) -> Matcher:
    def match(v: Any) -> bool:
        try:
            return v is not None and bool(op(v, ref))
        except TypeError:
            return False

    return match


def _contains(ref: Any) -> Matcher:
    def match(v: Any) -> bool:
        try:
            return v is not None and ref in v
        except TypeError:
            return False

    return match


_OPS: dict[str, Callable[[Any], Matcher]] = {
    "eq": lambda r: lambda v: v == r,
    "ne": lambda r: lambda v: v != r,
    "gt": lambda r: _cmp(operator.gt, r),
    "gte": lambda r: _cmp(operator.ge, r),
    "lt": lambda r: _cmp(operator.lt, r),
    "lte": lambda r: _cmp(operator.le, r),
    "in": lambda r: lambda v: v in r,
    "not_in": lambda r: lambda v: v not in r,
    "contains": _contains,
    "contains_any": lambda r: lambda v: v is not None and any(_contains(x)(v) for x in r),
    "exists": lambda r: lambda v: (v is not None) == bool(r),
}


@dataclass(slots=True)
class Rule:
    """One compiled rule."""

    name: str
    points: tuple[str, ...]
    tests: tuple[tuple[tuple[str, ...], Matcher], ...]
    decision: Decision
    selectors: dict[str, frozenset[Any]] = field(default_factory=dict)
    line: int = 0

    def matches(self, facts: Facts) -> bool:
        for path, test in self.tests:
            value = facts.path(path) if len(path) > 1 else facts.get(path[0])
            if not test(value):
                return False
        return True

    def selected(self, facts: Facts) -> bool:
        for key, allowed in self.selectors.items():  # noqa: SIM110 - a loop is faster than all()
            if facts.get(key) not in allowed:
                return False
        return True


@dataclass(slots=True)
class RulePolicy:
    """A policy of YAML rules; the first matching rule of a point decides."""

    name: str
    version: str
    rules: tuple[Rule, ...]
    description: str = ""
    source: str = ""
    points: tuple[str, ...] = ()
    needs: frozenset[str] = frozenset()
    _by_point: dict[str, tuple[Rule, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.points = tuple(p for p in POINTS if any(p in r.points for r in self.rules))
        self._by_point = {p: tuple(r for r in self.rules if p in r.points) for p in self.points}

    def applies(self, point: str, facts: Facts) -> bool:
        return any(r.selected(facts) for r in self._by_point.get(point, ()))

    def evaluate(self, point: str, facts: Facts) -> Decision | None:
        for r in self._by_point.get(point, ()):
            if r.selected(facts) and r.matches(facts):
                return r.decision
        return None

    def firing(self, point: str, facts: Facts) -> list[Rule]:
        """Every rule of ``point`` that matches (``podium policy test``), not only the first."""
        return [r for r in self._by_point.get(point, ()) if r.selected(facts) and r.matches(facts)]


# -- YAML with line numbers ------------------------------------------------------------------------
class _Map(dict[str, Any]):
    line: int
    lines: dict[str, int]


def _parse(text: str, where: str) -> Any:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - the governance extra
        raise ConfigError("YAML policies need PyYAML: pip install 'podium[governance]'") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise PolicyFileError(f"{where}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if node is None:
        raise PolicyFileError(f"{where}: the file is empty")
    loader = yaml.SafeLoader("")

    def build(n: Any) -> Any:
        if isinstance(n, yaml.MappingNode):
            out = _Map()
            out.line, out.lines = n.start_mark.line + 1, {}
            for k, v in n.value:
                key = str(loader.construct_object(k, deep=True))
                if key in out:
                    raise PolicyFileError(f"{where}:{k.start_mark.line + 1}: {key!r} appears twice")
                out[key] = build(v)
                out.lines[key] = k.start_mark.line + 1
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(x) for x in n.value]
        return loader.construct_object(n, deep=True)

    return build(node)


def parse(text: str, *, where: str = "<policy>", default_name: str = "policy") -> RulePolicy:
    """A policy from YAML text; ``PolicyFileError`` naming ``where`` and the line for any mistake."""
    doc = _parse(text, where)

    def fail(line: int, msg: str) -> PolicyFileError:
        return PolicyFileError(f"{where}:{line}: {msg}")

    if not isinstance(doc, _Map):
        raise fail(1, "a policy file is a mapping with `policy` and `rules`")
    unknown = set(doc) - {"policy", "description", "rules"}
    if unknown:
        k = sorted(unknown)[0]
        raise fail(doc.lines[k], f"unknown key {k!r} (use policy, description, rules)")
    name = doc.get("policy", default_name)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,80}", name):
        raise fail(doc.lines.get("policy", 1), f"policy name {name!r}: use 1-80 letters, digits, _ . -")
    rules_raw = doc.get("rules")
    if not isinstance(rules_raw, list) or not rules_raw:
        raise fail(doc.lines.get("rules", doc.line), "`rules` must be a non-empty list of rules")
    rules: list[Rule] = []
    needs: set[str] = set()
    for i, raw in enumerate(rules_raw):
        if not isinstance(raw, _Map):
            raise fail(doc.lines["rules"] + 1, f"rule {i + 1} must be a mapping (name, at, when, then)")
        rules.append(_rule(raw, i, fail, needs))
    names = [r.name for r in rules]
    for r in rules:
        if names.count(r.name) > 1:
            raise fail(r.line, f"two rules are named {r.name!r}")
    version = hashlib.sha256(text.encode()).hexdigest()[:12]
    description = str(doc.get("description", ""))
    return RulePolicy(name, version, tuple(rules), description, where, needs=frozenset(needs))


def _rule(raw: _Map, i: int, fail: Callable[[int, str], PolicyFileError], needs: set[str]) -> Rule:
    line = raw.line
    unknown = set(raw) - {"name", "at", "when", "then", "reason"}
    if unknown:
        k = sorted(unknown)[0]
        raise fail(raw.lines[k], f"unknown key {k!r} in a rule (use name, at, when, then, reason)")
    name = str(raw.get("name", f"rule{i + 1}"))
    at = raw.get("at")
    points = (at,) if isinstance(at, str) else tuple(at) if isinstance(at, list) else ()
    bad = [p for p in points if p not in POINTS]
    if not points or bad:
        raise fail(
            raw.lines.get("at", line),
            f"rule {name!r}: `at` must name point(s) among {', '.join(POINTS)}"
            + (f" (not {bad[0]!r})" if bad else ""),
        )
    then = raw.get("then")
    model = None
    if isinstance(then, Mapping) and set(then) == {"switch"} and isinstance(then["switch"], str):
        action, model = "switch", then["switch"]
    elif isinstance(then, str) and then in _ACTIONS:
        action = then
    else:
        raise fail(
            raw.lines.get("then", line),
            f"rule {name!r}: `then` must be one of {', '.join(_ACTIONS)} or {{switch: MODEL}}, not {then!r}",
        )
    for p in points:
        if action not in _ALLOWED[p]:
            raise fail(raw.lines.get("then", line), f"rule {name!r}: {action} means nothing at {p}")
    reason = str(raw.get("reason", "")) or f"{name}: {action}"
    when = raw.get("when", _Map())
    if not isinstance(when, Mapping):
        raise fail(raw.lines.get("when", line), f"rule {name!r}: `when` must map facts to matchers")
    tests: list[tuple[tuple[str, ...], Matcher]] = []
    selectors: dict[str, frozenset[Any]] = {}
    for fact, spec in when.items():
        fline = when.lines.get(fact, line) if isinstance(when, _Map) else line
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)*", fact):
            raise fail(fline, f"rule {name!r}: {fact!r} is not a fact name")

        def problem(msg: str, fl: int = fline, fact: str = fact) -> PolicyFileError:
            return fail(fl, f"rule {name!r}, {fact}: {msg}")

        tests.append((tuple(fact.split(".")), _matcher(spec, problem)))
        if fact in ASYNC_FACTS:
            needs.add(fact)
        if fact in _SELECTORS and isinstance(spec, str | int | float) and not isinstance(spec, bool):
            selectors[fact] = frozenset([spec])
        elif fact in _SELECTORS and isinstance(spec, list) and all(isinstance(x, str) for x in spec):
            selectors[fact] = frozenset(spec)
    decision = Decision(action, reason, model, rule=name)  # type: ignore[arg-type]
    return Rule(name, points, tuple(tests), decision, selectors, line)


def _search(rx: re.Pattern[str]) -> Matcher:
    return lambda v: isinstance(v, str) and rx.search(v) is not None


def _matcher(spec: Any, fail: Callable[[str], PolicyFileError]) -> Matcher:
    if isinstance(spec, bool):
        return lambda v: bool(v) == spec
    if isinstance(spec, list):
        options = list(spec)
        return lambda v: v in options
    if isinstance(spec, Mapping):
        if not spec:
            raise fail("an empty matcher")
        parts: list[Matcher] = []
        for op, ref in spec.items():
            if op == "matches":
                try:
                    rx = re.compile(str(ref))
                except re.error as exc:
                    raise fail(f"bad regular expression {ref!r}: {exc}") from None
                parts.append(_search(rx))
                continue
            make = _OPS.get(op)
            if make is None:
                raise fail(f"unknown operator {op!r} (use {', '.join([*_OPS, 'matches'])})")
            if op in ("in", "not_in", "contains_any") and not isinstance(ref, list):
                raise fail(f"`{op}` needs a list")
            if op in ("gt", "gte", "lt", "lte") and (
                isinstance(ref, bool) or not isinstance(ref, int | float)
            ):
                raise fail(f"`{op}` needs a number, not {ref!r}")
            parts.append(make(ref))
        if len(parts) == 1:
            return parts[0]
        return lambda v: all(p(v) for p in parts)
    return lambda v: v == spec


def load(path: str | Path) -> RulePolicy:
    """The policy in a YAML file (not registered: pass it to ``podium.policies.register``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyFileError(f"{p}: cannot read the policy file ({exc.strerror})") from None
    return parse(text, where=str(p), default_name=p.stem)
