"""Governance: policies, untrusted content and personal data.

- ``podium.policies.engine``: the policy engine (``Decision``, ``policy``, ``register``), evaluated at run
  start, before and after model calls, before tool calls, on approval decisions and at egress.
- ``podium.policies.rules``: policies in YAML (``load``), configured in ``podium.toml``::

      [policies]
      files = ["policies/no-pii.yaml", "policies/refunds.yaml"]

- ``podium.policies.taint``: the untrusted-content label (``podium.policies.untrusted(text)``) and its fence.
- ``podium.policies.pii``: personal data detection and reversible masking.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .engine import POINTS, Decision, Facts, Policy, PolicySet, Verdict, active, policy, register, unregister
from .pii import KINDS, Finding, Masked, mask, scan
from .rules import PolicyFileError, RulePolicy, load, parse
from .taint import Untrusted, untrusted

__all__ = [
    "KINDS",
    "POINTS",
    "Decision",
    "Facts",
    "Finding",
    "Masked",
    "Policy",
    "PolicyFileError",
    "PolicySet",
    "RulePolicy",
    "Untrusted",
    "Verdict",
    "active",
    "configure",
    "load",
    "mask",
    "parse",
    "policy",
    "register",
    "scan",
    "unregister",
    "untrusted",
]

_LOADED: dict[str, str] = {}  # file -> version registered from it


def configure(section: Any) -> None:
    """Register the policies of ``[policies] files = [...]`` (a ``podium.toml`` section); a file loaded
    already is read again only if it changed."""
    if section is None:
        return
    if not isinstance(section, dict) or not isinstance(section.get("files", []), list):
        raise ConfigError('[policies] in podium.toml must be a table with files = ["a.yaml", ...]')
    for name in section.get("files", []):
        path = Path(str(name))
        p = load(path)
        key = str(path.resolve())
        if _LOADED.get(key) != p.version:
            register(p)
            _LOADED[key] = p.version
