"""Who may do what: principals, actions, per-flow permission rules and the one ``authorize`` check.

Every way into Podium (the REST API and the dashboard on it, the MCP server, the CLI, a ``Client`` bound with
``client.acting_as(principal)``) asks this module before it acts.

```python
from podium.policies.access import Permissions, Principal, authorize

ops = Principal("ci", "operator", tenant="acme")
rules = Permissions.from_config({"permissions": [
    {"role": "operator", "flows": ["billing.*"], "actions": ["start", "cancel"]},
]})
authorize(ops, "start", flow="billing.refund", tenant="acme", rules=rules)   # passes
authorize(ops, "start", flow="hr.payroll", tenant="acme", rules=rules)       # PermissionDeniedError
```

**Roles** give actions on every flow: ``viewer`` views; ``operator`` also starts, cancels and signals runs and
edits prompts; ``approver`` views and approves; ``admin`` does everything, API keys included.

**Tenants**: a principal acts in one tenant (``tenant="acme"``) or in all of them (``tenant=None``: a
platform principal, such as the local CLI). Acting on a resource of another tenant is denied.

**Rules** (``[[permissions]]`` in ``podium.toml``) narrow roles to flows. A rule names a ``role`` or a ``key``
(an API key's name), flow glob ``flows``, the ``actions`` it covers among start, view, cancel, signal and
approve, and, for approve, optionally approval name globs ``approvals``. For a principal and an action, the
rules that name its key and cover the action decide if there are any; otherwise the rules that name its
role and cover the action; if none covers the action, the role alone decides. Deciding means: some rule's
flow patterns (and approval patterns) match. Rules never grant what the role lacks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from ..errors import ConfigError, PermissionDeniedError

ROLES = ("viewer", "operator", "approver", "admin")
"""Roles of principals and API keys: viewers read; operators also start, cancel and signal runs and edit
prompts; approvers also decide approvals; admins do everything, API keys included."""

FLOW_ACTIONS = ("start", "view", "cancel", "signal", "approve")
"""Actions on a flow's runs, which ``[[permissions]]`` rules can narrow to flows."""

ACTIONS = (*FLOW_ACTIONS, "edit", "feedback", "admin")
"""Every action: the flow actions, ``edit`` (prompts, datasets), ``feedback`` (rate or correct a step's
output) and ``admin`` (API keys)."""

ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"view"}),
    "operator": frozenset({"view", "start", "cancel", "signal", "edit", "feedback"}),
    "approver": frozenset({"view", "approve", "feedback"}),
    "admin": frozenset(ACTIONS),
}

DEFAULT_TENANT = "default"
"""The tenant of runs started without one."""

_RULE_KEYS = {"role", "key", "flows", "actions", "approvals"}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who acts: a ``name`` (an API key's name, ``local``), a ``role`` and the ``tenant`` it acts in
    (None: every tenant). ``key_id`` is the API key's id, if it is one."""

    name: str
    role: str
    tenant: str | None = None
    key_id: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(f"unknown role {self.role!r}; use one of {', '.join(ROLES)}")
        if self.tenant is not None:
            check_tenant(self.tenant)

    @classmethod
    def local(cls, tenant: str | None = None) -> Principal:
        """The local operator (the CLI on this machine): an admin of every tenant, or of ``tenant``."""
        return cls("local", "admin", tenant)

    @property
    def platform(self) -> bool:
        """True if it acts in every tenant."""
        return self.tenant is None

    def sees(self, tenant: str) -> bool:
        """True if resources of ``tenant`` are visible to it."""
        return self.tenant is None or self.tenant == tenant

    def __str__(self) -> str:
        where = "all tenants" if self.tenant is None else f"tenant {self.tenant}"
        return f"{self.name} ({self.role}, {where})"


def check_tenant(tenant: object) -> str:
    """``tenant`` if it is a valid tenant name (letters, digits, ``-``, ``_``, ``.``; at most 64), else
    ``ConfigError``."""
    if (
        not isinstance(tenant, str)
        or not tenant
        or len(tenant) > 64
        or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in tenant)
    ):
        raise ConfigError(f"invalid tenant {tenant!r}: use 1-64 letters, digits, '-', '_' or '.'")
    return tenant


@dataclass(frozen=True, slots=True)
class PermissionRule:
    """One ``[[permissions]]`` rule (see the module's docstring)."""

    flows: tuple[str, ...]
    actions: frozenset[str]
    role: str | None = None
    key: str | None = None
    approvals: tuple[str, ...] | None = None

    def names(self, principal: Principal) -> bool:
        if self.key is not None:
            return self.key == principal.name
        return self.role == principal.role

    def matches(self, flow: str | None, approval: str | None) -> bool:
        if flow is None or not any(fnmatchcase(flow, p) for p in self.flows):
            return False
        if approval is not None and self.approvals is not None:
            return any(fnmatchcase(approval, p) for p in self.approvals)
        return True


class Permissions:
    """The ``[[permissions]]`` rules in force (none: roles alone decide)."""

    def __init__(self, rules: Iterable[PermissionRule] = ()) -> None:
        self.rules = tuple(rules)
        # (key or role, action) -> the rules deciding it; built once, so a check is two dict lookups
        self._by_key: dict[tuple[str, str], list[PermissionRule]] = {}
        self._by_role: dict[tuple[str, str], list[PermissionRule]] = {}
        for r in self.rules:
            index = self._by_key if r.key is not None else self._by_role
            for action in r.actions:
                index.setdefault((r.key or r.role or "", action), []).append(r)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Permissions:
        """The rules of ``config["permissions"]`` (``podium.toml``'s ``[[permissions]]``); ``ConfigError``
        naming the rule and the problem if one is malformed."""
        raw = config.get("permissions", [])
        if not isinstance(raw, list):
            raise ConfigError("permissions in podium.toml must be an array of tables: [[permissions]]")
        return cls(_rule(i + 1, item) for i, item in enumerate(raw))

    def allows(
        self, principal: Principal, action: str, flow: str | None = None, approval: str | None = None
    ) -> bool:
        """True if the rules let ``principal`` do ``action`` on ``flow`` (roles and tenants not checked)."""
        if not self.rules or action not in FLOW_ACTIONS:
            return True
        deciding = self._by_key.get((principal.name, action)) or self._by_role.get((principal.role, action))
        if not deciding:
            return True
        return any(r.matches(flow, approval) for r in deciding)


NO_RULES = Permissions()


def _denial(
    principal: Principal,
    action: str,
    flow: str | None,
    tenant: str | None,
    approval: str | None,
    rules: Permissions,
) -> str | None:
    """Why ``principal`` may not do ``action`` (``authorize``'s message), or None if it may."""
    if action not in ROLE_ACTIONS[principal.role]:
        return f"{principal} may not {action}: its role does not allow it"
    if tenant is not None and principal.tenant is not None and tenant != principal.tenant:
        return f"{principal} may not act in tenant {tenant!r}"
    if not rules.allows(principal, action, flow, approval):
        what = f"flow {flow!r}" if approval is None else f"approval {approval!r} of flow {flow!r}"
        return f"{principal} may not {action} {what} (podium.toml [[permissions]])"
    return None


def can(
    principal: Principal,
    action: str,
    *,
    flow: str | None = None,
    tenant: str | None = None,
    approval: str | None = None,
    rules: Permissions = NO_RULES,
) -> bool:
    """``authorize`` as a boolean."""
    return _denial(principal, action, flow, tenant, approval, rules) is None


def authorize(
    principal: Principal,
    action: str,
    *,
    flow: str | None = None,
    tenant: str | None = None,
    approval: str | None = None,
    rules: Permissions = NO_RULES,
) -> None:
    """Raise ``PermissionDeniedError`` unless ``principal`` may do ``action`` (one of ``ACTIONS``) on
    ``flow``'s runs in ``tenant`` (and decide ``approval``), by its role, its tenant and ``rules``."""
    reason = _denial(principal, action, flow, tenant, approval, rules)
    if reason is not None:
        if action not in ACTIONS:
            raise ConfigError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
        raise PermissionDeniedError(reason)


def _rule(n: int, item: object) -> PermissionRule:
    where = f"[[permissions]] rule {n}"
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where} must be a table")
    unknown = set(item) - _RULE_KEYS
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(_RULE_KEYS))}"
        )
    role, key = item.get("role"), item.get("key")
    if (role is None) == (key is None):
        raise ConfigError(f"{where} must name exactly one of role = ... or key = ...")
    if role is not None and role not in ROLES:
        raise ConfigError(f"{where}: unknown role {role!r}; use one of {', '.join(ROLES)}")
    if key is not None and (not isinstance(key, str) or not key):
        raise ConfigError(f"{where}: key must be an API key's name")
    flows = _globs(where, "flows", item.get("flows"))
    if flows is None:
        raise ConfigError(f'{where} needs flows = ["pattern", ...] (globs such as "billing.*")')
    actions = item.get("actions")
    if isinstance(actions, str):
        actions = [actions]
    if not isinstance(actions, list) or not actions:
        raise ConfigError(f"{where} needs actions = [...] among {', '.join(FLOW_ACTIONS)}")
    bad = [a for a in actions if a not in FLOW_ACTIONS]
    if bad:
        raise ConfigError(f"{where}: unknown action(s) {bad!r}; use {', '.join(FLOW_ACTIONS)}")
    approvals = _globs(where, "approvals", item.get("approvals"))
    if approvals is not None and "approve" not in actions:
        raise ConfigError(f"{where}: approvals = [...] needs the approve action")
    return PermissionRule(flows, frozenset(actions), role=role, key=key, approvals=approvals)


def _globs(where: str, name: str, value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f'{where}: {name} must be a list of glob patterns, such as ["billing.*"]')
    return tuple(value)
