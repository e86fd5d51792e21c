"""The API keys part of ``Client``: create, list, revoke, authenticate, and act as a key's principal."""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from .errors import UsageError
from .policies.access import ROLES, Principal, check_tenant
from .records import ApiKey, _hash_key
from .storage.base import KeyRecord
from .types import Duration, new_id, parse_duration

if TYPE_CHECKING:
    from .acting import ActingClient
    from .client import Client
    from .observability.audit import Auditor
    from .storage.base import Store


class KeysMixin:
    """API keys of the HTTP API (a part of ``Client``)."""

    if TYPE_CHECKING:
        store: Store
        clock: Callable[[], float]
        auditor: Auditor | None

        def _check_open(self) -> None: ...

    async def create_key(
        self,
        name: str,
        role: str,
        *,
        tenant: str | None = None,
        expires: Duration | None = None,
        by: str | None = None,
    ) -> tuple[ApiKey, str]:
        """Create an API key for the HTTP API; returns it and its secret. Only a hash of the secret is
        stored: show the secret to its owner now, it cannot be read back.

        The key acts in ``tenant`` only (None: in every tenant, a platform key) and, with ``expires``
        (seconds or ``"30d"``), stops authenticating that long from now."""
        self._check_open()
        if not isinstance(name, str) or not name.strip():
            raise UsageError("an API key needs a name (who or what uses it)")
        if role not in ROLES:
            raise UsageError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        if tenant is not None:
            check_tenant(tenant)
        now = self.clock()
        expires_at = None
        if expires is not None:
            seconds = parse_duration(expires)
            if seconds <= 0:
                raise UsageError(f"expires must be a positive duration, not {expires!r}")
            expires_at = now + seconds
        secret = "pdm_" + secrets.token_urlsafe(32)
        rec = KeyRecord(new_id(), name.strip(), role, _hash_key(secret), now, None, tenant, expires_at)
        await self.store.key_add(rec)
        if self.auditor is not None:
            payload: dict[str, Any] = {"name": rec.name, "role": role, "tenant": tenant}
            if expires_at is not None:
                payload["expires_at"] = expires_at
            await self.auditor.record("key.created", subject=rec.id, actor=by, payload=payload)
        return ApiKey._of(rec), secret

    async def keys(self) -> builtins.list[ApiKey]:
        """Every API key (revoked ones too), oldest first."""
        self._check_open()
        return [ApiKey._of(k) for k in await self.store.key_list()]

    async def revoke_key(self, key_id: str, *, by: str | None = None) -> None:
        """Revoke an API key at once. ``UsageError`` if there is no such active key."""
        self._check_open()
        if not await self.store.key_revoke(key_id, now=self.clock()):
            raise UsageError(f"no active API key with id {key_id!r}")
        if self.auditor is not None:
            tenant = next((k.tenant for k in await self.store.key_list() if k.id == key_id), None)
            await self.auditor.record("key.revoked", subject=key_id, actor=by, payload={"tenant": tenant})

    async def authenticate(self, secret: str) -> ApiKey | None:
        """The active key whose secret this is, or None (unknown, revoked or expired)."""
        self._check_open()
        if not isinstance(secret, str) or not secret:
            return None
        rec = await self.store.key_find(_hash_key(secret))
        if rec is None or (rec.expires_at is not None and rec.expires_at <= self.clock()):
            return None
        return ApiKey._of(rec)

    def acting_as(self, principal: Principal | ApiKey, *, by: str | None = None) -> ActingClient:
        """This client bound to ``principal`` (or an API key's): its methods check, with
        ``podium.policies.access.authorize``, that the principal may act before acting, and see only the
        principal's tenant. The REST API, the MCP server and the CLI all act through one. What it does is
        journaled as done by ``by`` (default: ``"NAME (ROLE)"`` of the principal)."""
        from .acting import ActingClient

        who = principal.principal if isinstance(principal, ApiKey) else principal
        return ActingClient(cast("Client", self), who, by=by)
