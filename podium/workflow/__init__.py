"""What flow authors write: ``@flow``, ``@step``, ``Context``, ``RetryPolicy``."""

from .context import Approval, Context
from .flow import Flow, flow, registered, resolve_flow
from .retry import RetryPolicy
from .step import StepFunction, StepInfo, current_step, step

__all__ = [
    "Approval",
    "Context",
    "Flow",
    "RetryPolicy",
    "StepFunction",
    "StepInfo",
    "current_step",
    "flow",
    "registered",
    "resolve_flow",
    "step",
]
