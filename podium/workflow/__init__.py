"""What flow authors write: ``@flow``, ``@step``, ``Context``, ``RetryPolicy``."""

from .branches import Finished, TaskHandle
from .context import Approval, CancelScope, Context, Group, Milestone
from .flow import Flow, flow, registered, resolve_flow
from .retry import RetryPolicy
from .step import StepFunction, StepInfo, current_step, step

__all__ = [
    "Approval",
    "CancelScope",
    "Context",
    "Finished",
    "Flow",
    "Group",
    "Milestone",
    "RetryPolicy",
    "StepFunction",
    "StepInfo",
    "TaskHandle",
    "current_step",
    "flow",
    "registered",
    "resolve_flow",
    "step",
]
