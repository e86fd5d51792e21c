"""Governance: personal data detection and masking (``podium.policies.pii``); policies, untrusted content
and approvals act through the engine's hooks."""

from .pii import KINDS, Finding, Masked, mask, scan

__all__ = ["KINDS", "Finding", "Masked", "mask", "scan"]
