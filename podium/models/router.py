"""Routers: one name in flow code, a model chosen per call.

```toml
[routers.assistant]
strategy = "rules"                     # the first rule whose conditions all hold
rules = [
  { when = { data_class = ["confidential"] }, model = "local" },     # never leaves the machine
  { when = { max_input_tokens = 500, task = "classify" }, model = "fast" },
  { when = { budget_left_below = 0.10 }, model = "fast" },
  { model = "smart" },                                                # no conditions: the default
]

[routers.cheap]
strategy = "cheapest"                  # the cheapest candidate that has every required capability
candidates = ["fast", "smart", "big"]
requires = ["json"]                    # capabilities are declared per model: capabilities = ["json", "tools"]

[routers.topic]
strategy = "classifier"                # the route whose description is nearest to the prompt (embeddings)
embed = "embed"
routes = { smart = "code, maths, careful multi-step reasoning", fast = "greetings, short factual questions" }
```
The choice is made inside the model call's step, so the journal records which model answered (``served_by``)
and a replay never re-routes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ConfigError, UsageError

Strategy = Literal["rules", "cheapest", "classifier"]
_CONDITIONS = {"max_input_tokens", "min_input_tokens", "task", "data_class", "budget_left_below"}


@dataclass(frozen=True, kw_only=True)
class Rule:
    model: str
    when: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, facts: Mapping[str, Any]) -> bool:
        """``facts``: input_tokens, task, data_class, budget_left (None without a budget)."""
        for key, want in self.when.items():
            if key == "max_input_tokens" and not facts["input_tokens"] <= want:
                return False
            if key == "min_input_tokens" and not facts["input_tokens"] >= want:
                return False
            if key in ("task", "data_class") and facts.get(key) not in (
                [want] if isinstance(want, str) else want
            ):
                return False
            if key == "budget_left_below" and (
                facts["budget_left"] is None or not facts["budget_left"] < want
            ):
                return False
        return True


@dataclass(frozen=True, kw_only=True)
class RouterSpec:
    """A configured router."""

    name: str
    strategy: Strategy
    rules: tuple[Rule, ...] = ()
    candidates: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    routes: Mapping[str, str] = field(default_factory=dict)
    embed: str = "embed"

    def models(self) -> list[str]:
        """Every model this router may choose."""
        return [r.model for r in self.rules] + list(self.candidates) + list(self.routes)

    @classmethod
    def parse(cls, name: str, raw: Mapping[str, Any]) -> RouterSpec:
        where = f"[routers.{name}]"
        strategy = raw.get("strategy")
        if strategy == "rules":
            rules = raw.get("rules")
            if not isinstance(rules, list) or not rules:
                raise ConfigError(
                    f"{where}: rules must be a non-empty list of {{ when = {{...}}, model = ... }}"
                )
            parsed = []
            for i, r in enumerate(rules):
                if not isinstance(r, Mapping) or not isinstance(r.get("model"), str):
                    raise ConfigError(f"{where}: rule {i + 1} needs a model")
                when = r.get("when", {})
                unknown = set(when) - _CONDITIONS if isinstance(when, Mapping) else {"?"}
                if unknown:
                    raise ConfigError(
                        f"{where}: rule {i + 1} has unknown conditions {sorted(unknown)}; "
                        f"use {sorted(_CONDITIONS)}"
                    )
                parsed.append(Rule(model=r["model"], when=dict(when)))
            return cls(name=name, strategy="rules", rules=tuple(parsed))
        if strategy == "cheapest":
            candidates = raw.get("candidates")
            if not isinstance(candidates, list) or not candidates:
                raise ConfigError(f"{where}: candidates must be a non-empty list of model names")
            return cls(
                name=name,
                strategy="cheapest",
                candidates=tuple(candidates),
                requires=tuple(raw.get("requires", ())),
            )
        if strategy == "classifier":
            routes = raw.get("routes")
            if not isinstance(routes, Mapping) or len(routes) < 2:
                raise ConfigError(f"{where}: routes must map at least two model names to descriptions")
            return cls(
                name=name, strategy="classifier", routes=dict(routes), embed=str(raw.get("embed", "embed"))
            )
        raise ConfigError(f"{where}: strategy must be rules, cheapest or classifier, not {strategy!r}")


def routers_from(config: Mapping[str, Any]) -> dict[str, RouterSpec]:
    raw = config.get("routers", {})
    if not isinstance(raw, Mapping):
        raise ConfigError("'routers' in podium.toml must be a table of [routers.NAME] tables")
    return {name: RouterSpec.parse(name, r) for name, r in raw.items()}


def no_route(router: RouterSpec, facts: Mapping[str, Any]) -> UsageError:
    return UsageError(f"router {router.name!r} has no rule for this call ({dict(facts)}); add a default rule")
