"""Where the memory layer resolves names: a tenant's memories, collections and threads live under its name.

Inside a run whose tenant is not ``default`` every memory namespace, collection and thread name a flow uses
is stored as ``<tenant>/<name>``: two tenants' flows that both say ``Memory("user:42", ctx=ctx)`` or
``ctx.retrieve(q, collection="docs")`` never see each other's data, and a flow cannot name its way into
another tenant's (a tenant name holds no ``/``, so ``"other/docs"`` inside tenant ``acme`` is
``acme/other/docs``). The default tenant, and code outside a run, keep the names as written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UsageError
from ..policies.access import DEFAULT_TENANT, check_tenant

if TYPE_CHECKING:
    from ..workflow.context import Context


def tenant_of(ctx: Context | None) -> str:
    """The tenant whose data ``ctx`` reaches: the run's, or ``default`` outside a run."""
    tenant = getattr(ctx, "tenant", None) if ctx is not None else None
    return tenant if isinstance(tenant, str) and tenant else DEFAULT_TENANT


def scoped(name: str, ctx: Context | None = None, *, tenant: str | None = None) -> str:
    """``name`` as stored for the run's tenant, or for ``tenant`` outside a run (a platform tool reading a
    tenant's data): unchanged for ``default``. Naming another tenant than the run's is a ``UsageError``."""
    t = tenant_of(ctx)
    if tenant is not None:
        check_tenant(tenant)
        if ctx is not None and tenant != t:
            raise UsageError(f"a run of tenant {t!r} cannot reach tenant {tenant!r}'s memory")
        t = tenant
    return name if t == DEFAULT_TENANT else f"{t}/{name}"
