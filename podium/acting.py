"""A ``Client`` bound to a principal (``client.acting_as(principal)``): every method authorizes first.

```python
acme = client.acting_as(Principal("ci", "operator", tenant="acme"))
handle = await acme.start("billing.refund", {"amount": 20})     # a run of tenant acme
await acme.get(other_tenants_run_id)                            # RunNotFoundError: no existence leak
await acme.approve(handle.id)                                   # PermissionDeniedError: operators don't
```

The rules: a run of another tenant, or of a flow the principal may not view, does not exist for it
(``RunNotFoundError``); an action its role or a ``[[permissions]]`` rule does not allow is
``PermissionDeniedError``. Lists, the inbox and the feed hold only what it may view. The REST API, the MCP
server and the CLI act through this class, so they enforce the same rules.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

from .client import Client, RunHandle
from .client_management import _UNSET
from .engine.timeline import ModelUsage, TimelineRow
from .errors import PermissionDeniedError, RunNotFoundError, UsageError
from .management.prompts import Prompts
from .observability import audit_read
from .observability.audit_read import AuditPage
from .policies.access import DEFAULT_TENANT, Principal, authorize, can
from .records import ApiKey, FeedEntry, JournalEntry, PendingApproval, Run
from .storage.base import RunRecord, StreamChunk
from .types import JSON, Duration, RunStatus
from .workflow.flow import Flow, resolve_flow


class ActingClient:
    """``client``'s control plane as ``principal`` may use it (see the module's docstring)."""

    def __init__(self, client: Client, principal: Principal, *, by: str | None = None) -> None:
        self.client = client
        self.principal = principal
        self._by = by
        self.settings = client.settings
        self.observers = client.observers

    @property
    def who(self) -> str:
        """How the principal is journaled (``by``): ``name (role)``, unless the binding named it."""
        return self._by or f"{self.principal.name} ({self.principal.role})"

    def can(self, action: str, *, flow: str | None = None, tenant: str | None = None) -> bool:
        """True if the principal may do ``action`` (on ``flow``, in ``tenant``)."""
        return can(self.principal, action, flow=flow, tenant=tenant, rules=self.client.permissions)

    def authorize(
        self, action: str, *, flow: str | None = None, tenant: str | None = None, approval: str | None = None
    ) -> None:
        """``PermissionDeniedError`` unless the principal may do ``action``."""
        authorize(
            self.principal,
            action,
            flow=flow,
            tenant=tenant,
            approval=approval,
            rules=self.client.permissions,
        )

    def prompts(self, action: str = "view", *, tenant: str | None = None) -> Prompts:
        """The prompt registry the principal works in, once it may do ``action`` (``view`` or ``edit``):
        its tenant's (reads of a name the tenant has no prompt of read the shared one); a platform key's is
        the shared registry, or ``tenant``'s. Naming another tenant is ``PermissionDeniedError``."""
        if tenant is not None and not self.principal.sees(tenant):
            raise PermissionDeniedError(f"{self.principal} may not reach the prompts of tenant {tenant!r}")
        self.authorize(action)
        return self.client.prompts.for_tenant(self.principal.tenant or tenant)

    def require_platform(self, what: str) -> None:
        """``PermissionDeniedError`` unless the principal acts in every tenant (shared, platform data)."""
        if not self.principal.platform:
            raise PermissionDeniedError(
                f"{self.principal} may not {what}: only a platform key (all tenants) may"
            )

    async def _visible(self, run_id: str, action: str = "view") -> RunRecord:
        rec = await self.client._record(run_id)
        if not self.principal.sees(rec.tenant) or not self.can("view", flow=rec.flow, tenant=rec.tenant):
            raise RunNotFoundError(f"no run with id {run_id!r}")
        if action != "view":
            self.authorize(action, flow=rec.flow, tenant=rec.tenant)
        return rec

    # -- runs ---------------------------------------------------------------------------------
    async def start(
        self,
        flow: Flow[Any, Any] | str,
        input: Any = None,
        *,
        key: str | None = None,
        timeout: Duration | None = None,
        priority: int = 0,
        pins: Mapping[str, str] | None = None,
        tenant: str | None = None,
        subject: str | None = None,
    ) -> RunHandle[Any]:
        """``Client.start`` in the principal's tenant (a platform principal may name one; default
        ``default``), journaled as started by the principal."""
        name = resolve_flow(flow).name
        where = tenant or self.principal.tenant or DEFAULT_TENANT
        self.authorize("start", flow=name, tenant=where)
        return await self.client.start(
            flow, input, key=key, timeout=timeout, by=self.who, priority=priority, pins=pins, tenant=where,
            subject=subject,
        )  # fmt: skip

    async def get(self, run_id: str) -> Run:
        return Run._of(await self._visible(run_id))

    async def list(
        self,
        *,
        status: RunStatus | str | Sequence[RunStatus | str] | None = None,
        flow: str | None = None,
        limit: int = 50,
        before: str | None = None,
        tenant: str | None = None,
    ) -> builtins.list[Run]:
        """``Client.list`` of the runs the principal may view (of its tenant; a platform principal may
        narrow to ``tenant``)."""
        if tenant is not None and not self.principal.sees(tenant):
            return []
        where = self.principal.tenant or tenant
        out: builtins.list[Run] = []
        while len(out) < limit:
            page = await self.client.list(status=status, flow=flow, limit=limit, before=before, tenant=where)
            out.extend(r for r in page if self.can("view", flow=r.flow))
            if len(page) < limit:
                break
            before = page[-1].id
        return out[:limit]

    async def cancel(self, run_id: str) -> Run:
        await self._visible(run_id, "cancel")
        return await self.client.cancel(run_id, by=self.who)

    async def signal(
        self,
        run_id: str,
        name: str,
        payload: JSON = None,
        *,
        key: str | None = None,
        transient: bool = False,
        milestone: str | None = None,
    ) -> bool:
        await self._visible(run_id, "signal")
        return await self.client.signal(
            run_id, name, payload, key=key, transient=transient, milestone=milestone, by=self.who
        )

    async def _approval(self, run_id: str, name: str | None) -> str | None:
        """Authorize deciding ``name`` (or the one pending approval) of the run; the name decided."""
        rec = await self._visible(run_id, "approve")
        if self.client.permissions.rules and name is None:
            pending = [a.name for a in await self.client.pending_approvals(run_id)]
            if len(pending) == 1:
                name = pending[0]  # decide exactly the approval that was authorized
        self.authorize("approve", flow=rec.flow, tenant=rec.tenant, approval=name)
        return name

    async def approve(
        self, run_id: str, name: str | None = None, *, payload: JSON = _UNSET, comment: str | None = None
    ) -> PendingApproval:
        which = await self._approval(run_id, name)
        return await self.client.approve(run_id, which, payload=payload, by=self.who, comment=comment)

    async def reject(
        self, run_id: str, name: str | None = None, *, comment: str | None = None
    ) -> PendingApproval:
        which = await self._approval(run_id, name)
        return await self.client.reject(run_id, which, by=self.who, comment=comment)

    async def journal(self, run_id: str) -> builtins.list[JournalEntry]:
        await self._visible(run_id)
        return await self.client.journal(run_id)

    async def tokens(self, run_id: str, *, after: int = 0, limit: int = 1000) -> builtins.list[StreamChunk]:
        """``Client.tokens`` of a run the principal may view."""
        await self._visible(run_id)
        return await self.client.tokens(run_id, after=after, limit=limit)

    async def timeline(self, run_id: str) -> builtins.list[TimelineRow]:
        await self._visible(run_id)
        return await self.client.timeline(run_id)

    async def usage(self, run_id: str) -> ModelUsage:
        await self._visible(run_id)
        return await self.client.usage(run_id)

    async def usage_by_flow(self, *, flow: str | None = None, limit: int = 1000) -> dict[str, ModelUsage]:
        totals: dict[str, ModelUsage] = {}
        for run in await self.list(flow=flow, limit=limit):
            totals.setdefault(run.flow, ModelUsage()).add(await self.client.usage(run.id))
        return totals

    async def tenant_spend(self, tenant: str | None = None, *, day: str | None = None) -> float:
        """``Client.tenant_spend`` of the principal's tenant (a platform principal names one, default
        ``default``)."""
        where = tenant or self.principal.tenant or DEFAULT_TENANT
        self.authorize("view", tenant=where)
        return await self.client.tenant_spend(where, day=day)

    async def audit(
        self, *, after: int = 0, limit: int = 100, action: str | None = None, tenant: str | None = None
    ) -> AuditPage:
        """The audit trail's entries of the principal's tenant (a platform admin reads every entry, or one
        ``tenant``'s), after ``after`` (a ``seq``); needs the ``admin`` action. See
        ``podium.observability.audit_read``."""
        self.authorize("admin", tenant=tenant)
        if not 1 <= limit <= 1000:
            raise UsageError("limit must be between 1 and 1000")
        if after < 0:
            raise UsageError("after must be a sequence number (0 or more)")
        where = self.principal.tenant or tenant
        return await audit_read.read(self.client.store, tenant=where, after=after, limit=limit, action=action)

    async def pending_approvals(self, run_id: str | None = None) -> builtins.list[PendingApproval]:
        """The inbox: approvals of runs the principal may view."""
        if run_id is not None:
            await self._visible(run_id)
        found = await self.client.pending_approvals(run_id)
        if self.principal.platform and not self.client.permissions.rules:
            return found
        tenants = {a.run_id: (await self._tenant_of(a.run_id)) for a in found}
        return [
            a for a in found if self.principal.sees(tenants[a.run_id] or "") and self.can("view", flow=a.flow)
        ]

    async def _tenant_of(self, run_id: str) -> str | None:
        rec = await self.client.store.get_run(run_id)
        return None if rec is None else rec.tenant

    async def feed(self, after: int = 0, *, limit: int = 500) -> builtins.list[FeedEntry]:
        """The feed of every run's events, less those of runs the principal may not view."""
        return await self.filter_feed(await self.client.feed(after, limit=limit))

    async def filter_feed(self, entries: builtins.list[FeedEntry]) -> builtins.list[FeedEntry]:
        """The entries of runs the principal may view."""
        if self.principal.platform and not self.client.permissions.rules:
            return entries
        visible: dict[str, bool] = {}
        out = []
        for e in entries:
            if e.run_id not in visible:
                rec = await self.client.store.get_run(e.run_id)
                visible[e.run_id] = (
                    rec is not None and self.principal.sees(rec.tenant) and self.can("view", flow=rec.flow)
                )
            if visible[e.run_id]:
                out.append(e)
        return out

    # -- API keys -----------------------------------------------------------------------------
    async def keys(self) -> builtins.list[ApiKey]:
        """The API keys of the principal's tenant (every key, for a platform admin)."""
        self.authorize("admin")
        return [k for k in await self.client.keys() if self._owns(k)]

    def _owns(self, key: ApiKey) -> bool:
        return self.principal.platform or key.tenant == self.principal.tenant

    async def create_key(
        self, name: str, role: str, *, tenant: str | None = None, expires: Duration | None = None
    ) -> tuple[ApiKey, str]:
        """A new key; a tenant's admin makes keys of its own tenant only (``tenant`` defaults to it)."""
        self.authorize("admin")
        if not self.principal.platform:
            if tenant not in (None, self.principal.tenant):
                raise PermissionDeniedError(f"{self.principal} may not create keys of tenant {tenant!r}")
            tenant = self.principal.tenant
        return await self.client.create_key(name, role, tenant=tenant, expires=expires, by=self.who)

    async def revoke_key(self, key_id: str) -> None:
        self.authorize("admin")
        if not self.principal.platform:
            mine = {k.id for k in await self.client.keys() if self._owns(k)}
            if key_id not in mine:
                raise UsageError(f"no active API key with id {key_id!r}")
        await self.client.revoke_key(key_id, by=self.who)
