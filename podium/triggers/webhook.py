"""Webhooks: signed HTTP deliveries that start or signal runs (served by ``podium serve``).

```toml
[hooks.order_paid]                # POST /hooks/order_paid
flow = "shop.py:fulfil"           # the body (JSON) is the run's input
secret_env = "ORDER_HOOK_SECRET"  # environment variable holding the HMAC-SHA256 key

[hooks.payment]
action = "signal"                 # send signal "paid" to the run named by the body's "run_id"
signal = "paid"
run_field = "run_id"
secret_env = "PAYMENT_HOOK_SECRET"
```

A delivery carries ``X-Podium-Signature: sha256=<hex HMAC-SHA256 of the raw body>``. Its identity is the
``Idempotency-Key`` (or ``X-Podium-Delivery``) header, else the SHA-256 of the body; it becomes the run's
idempotency key (``hook:NAME:ID``) or the signal's deduplication key, so a sender that retries a delivery
starts one run. This module knows nothing of HTTP frameworks: ``podium.server`` maps ``deliver`` onto FastAPI.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..client import Client
from ..config import secret
from ..errors import ConfigError
from .action import Action, BadDelivery, Conflict, FlowLoader, NotFound, apply, parse_action

SIGNATURE_HEADER = "x-podium-signature"
DELIVERY_HEADERS = ("idempotency-key", "x-podium-delivery")
MAX_DELIVERY_ID = 200


@dataclass(frozen=True)
class Hook:
    """One configured webhook."""

    name: str
    action: Action
    key: bytes = field(repr=False)
    """The HMAC-SHA256 key (the value of the hook's ``secret_env`` variable)."""


class HookError(Exception):
    """A delivery refused: ``status`` is the HTTP status to answer with, ``message`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def load_hooks(config: Mapping[str, Any], *, load: FlowLoader) -> dict[str, Hook]:
    """The ``[hooks.NAME]`` tables of ``podium.toml`` (``Settings.config``); ``ConfigError`` if one is wrong
    or its secret variable is not set."""
    tables = config.get("hooks", {})
    if not isinstance(tables, Mapping):
        raise ConfigError("podium.toml: [hooks] must be a table of [hooks.NAME] tables")
    hooks: dict[str, Hook] = {}
    for name, section in tables.items():
        where = f"podium.toml [hooks.{name}]"
        if not isinstance(section, Mapping):
            raise ConfigError(f"{where} must be a table")
        env = section.get("secret_env")
        if not isinstance(env, str) or not env:
            raise ConfigError(
                f'{where}: needs secret_env = "VARIABLE" (the HMAC key\'s environment variable)'
            )
        value = secret(env)
        if not value:
            raise ConfigError(f"{where}: environment variable {env} (its secret_env) is not set")
        hooks[name] = Hook(name, parse_action(section, where, load), value.encode())
    return hooks


def sign(key: bytes | str, body: bytes) -> str:
    """The ``X-Podium-Signature`` value for ``body``: ``sha256=<hex>``."""
    raw = key.encode() if isinstance(key, str) else key
    return "sha256=" + hmac.new(raw, body, hashlib.sha256).hexdigest()


def verify(key: bytes, body: bytes, header: str | None) -> bool:
    """True if ``header`` is the signature of ``body`` under ``key`` (compared in constant time)."""
    if not header:
        return False
    return hmac.compare_digest(sign(key, body).encode(), header.strip().encode())


def delivery_id(headers: Mapping[str, str], body: bytes) -> str:
    """The delivery's identity: its ``Idempotency-Key`` or ``X-Podium-Delivery`` header, else the body's
    SHA-256 (``headers`` keys in lower case)."""
    for name in DELIVERY_HEADERS:
        value = headers.get(name, "").strip()
        if value:
            if len(value) > MAX_DELIVERY_ID:
                raise HookError(400, f"the {name} header is longer than {MAX_DELIVERY_ID} characters")
            return value
    return "sha256:" + hashlib.sha256(body).hexdigest()


async def deliver(client: Client, hook: Hook, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """Check and apply one delivery; ``{"run_id": ..., "created": bool}``, or ``HookError``.

    ``created`` is False for a delivery seen before (the same run, or a signal not sent twice).
    """
    lower = {k.lower(): v for k, v in headers.items()}
    if not verify(hook.key, body, lower.get(SIGNATURE_HEADER)):
        why = "a bad" if lower.get(SIGNATURE_HEADER) else "no"
        raise HookError(401, f"{why} X-Podium-Signature header: sign the raw body with HMAC-SHA256")
    try:
        data = json.loads(body) if body.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HookError(400, f"the body is not valid JSON: {exc}") from None
    key = f"hook:{hook.name}:{delivery_id(lower, body)}"
    try:
        run_id, created = await apply(client, hook.action, data, key)
    except NotFound as exc:
        raise HookError(404, str(exc)) from None
    except Conflict as exc:
        raise HookError(409, str(exc)) from None
    except BadDelivery as exc:
        raise HookError(422, str(exc)) from None
    return {"run_id": run_id, "created": created}
