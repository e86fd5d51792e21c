"""The models a process knows: configured specs, in-code registrations, and their providers."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Literal

from ..errors import ConfigError, UsageError
from .errors import UnknownModelError
from .router import RouterSpec, routers_from
from .spec import DEFAULTS, ModelSpec, specs_from

_REGISTERED: dict[str, tuple[ModelSpec, Any]] = {}


def register(
    name: str,
    target: Any,
    *,
    kind: Literal["chat", "embedding"] = "chat",
    price_input: float = 0.0,
    price_output: float = 0.0,
) -> ModelSpec:
    """Make a Python callable or a fitted estimator available as ``ctx.model(name)``.

    ```python
    podium.models.register("spam", fitted_sklearn_pipeline)          # classify() calls .predict
    podium.models.register("echo", lambda request: request.messages[-1].content)
    ```
    """
    if not isinstance(name, str) or not name:
        raise UsageError("a model needs a non-empty name")
    if not callable(target) and not hasattr(target, "predict"):
        raise UsageError(f"model {name!r}: expected a callable or an object with .predict, got {target!r}")
    spec = ModelSpec(
        name=name,
        provider="function",
        model=getattr(target, "__name__", type(target).__name__),
        kind=kind,
        price_input=price_input,
        price_output=price_output,
    )
    _REGISTERED[name] = (spec, target)
    return spec


class Models:
    """Resolves model names to specs and provider instances (created on first use, then reused)."""

    def __init__(
        self, specs: Mapping[str, ModelSpec] | None = None, routers: Mapping[str, RouterSpec] | None = None
    ) -> None:
        self._specs = dict(DEFAULTS if specs is None else specs)
        self._routers = dict(routers or {})
        self._providers: dict[str, Any] = {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Models:
        return cls(specs_from(config), routers_from(config))

    def names(self) -> list[str]:
        return sorted(set(self._specs) | set(_REGISTERED))

    def routers(self) -> list[RouterSpec]:
        return [self._routers[k] for k in sorted(self._routers)]

    def router(self, name: str) -> RouterSpec | None:
        """The router called ``name`` (routers and models share one namespace), or None."""
        return None if name in _REGISTERED else self._routers.get(name)

    def spec(self, name: str) -> ModelSpec:
        if name in _REGISTERED:
            return _REGISTERED[name][0]
        spec = self._specs.get(name)
        if spec is None:
            raise UnknownModelError(f"unknown model {name!r}; configured: {', '.join(self.names())}")
        return spec

    def provider(self, spec: ModelSpec) -> Any:
        if spec.name in _REGISTERED and _REGISTERED[spec.name][0] is spec:
            from .providers.function import FunctionProvider

            return FunctionProvider(_REGISTERED[spec.name][1])
        key = spec.provider if spec.provider != "function" else f"function:{spec.name}"
        provider = self._providers.get(key)
        if provider is None:
            provider = self._providers[key] = self._make(spec)
        return provider

    @staticmethod
    def _make(spec: ModelSpec) -> Any:
        if spec.provider == "local":
            from .providers.local import LocalProvider

            return LocalProvider()
        if spec.provider == "openai":
            from .providers.openai import OpenAIProvider

            return OpenAIProvider()
        if spec.provider == "anthropic":
            from .providers.anthropic import AnthropicProvider

            return AnthropicProvider()
        if spec.provider == "function":
            from .providers.function import FunctionProvider

            ref = spec.target or spec.model
            module, _, attr = ref.partition(":")
            try:
                target = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError, ValueError) as exc:
                raise ConfigError(f"[models.{spec.name}]: cannot load target {ref!r}: {exc}") from None
            return FunctionProvider(target)
        raise ConfigError(f"[models.{spec.name}]: unknown provider {spec.provider!r}")

    async def aclose(self) -> None:
        for provider in self._providers.values():
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()
