"""Podium: durable, routed, governed and observable AI orchestration in plain async Python.

```python
import podium

@podium.step(retries=3)
async def greet(name: str) -> str:
    return f"hello {name}"

@podium.flow
async def hello(ctx: podium.Context, name: str) -> str:
    return await greet(name)

print(podium.run(hello, "world"))
```
"""

from .agents import Agent, AgentError, AgentResult
from .client import Client, RunHandle, run
from .config import Settings
from .engine import TimelineRow, Worker
from .errors import (
    ApplicationError,
    ConfigError,
    InvalidInputError,
    InvalidStateError,
    LeaseLostError,
    NondeterminismError,
    NotFoundError,
    PermissionDeniedError,
    PodiumError,
    PolicyDeniedError,
    PolicyViolationError,
    PromptNotFoundError,
    RunCancelledError,
    RunError,
    RunFailedError,
    RunNotFoundError,
    RunTimeoutError,
    SignalRefusedError,
    StepError,
    StepTimeoutError,
    StoreError,
    UnknownFlowError,
    UsageError,
)
from .hooks import EngineEvent, Observer
from .management import Prompt, Prompts
from .policies.access import Principal
from .records import ApiKey, FeedEntry, JournalEntry, PendingApproval, Run
from .tools import Tool, ToolResult, Toolset, tool
from .types import RenderedPrompt, RunStatus
from .workflow import (
    Approval,
    CancelScope,
    Context,
    Finished,
    Flow,
    Group,
    Milestone,
    RetryPolicy,
    StepFunction,
    StepInfo,
    TaskHandle,
    current_step,
    flow,
    step,
)

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentError",
    "AgentResult",
    "ApiKey",
    "ApplicationError",
    "Approval",
    "CancelScope",
    "Client",
    "ConfigError",
    "Context",
    "EngineEvent",
    "FeedEntry",
    "Finished",
    "Flow",
    "Group",
    "InvalidInputError",
    "InvalidStateError",
    "JournalEntry",
    "LeaseLostError",
    "Milestone",
    "NondeterminismError",
    "NotFoundError",
    "Observer",
    "PendingApproval",
    "PermissionDeniedError",
    "PodiumError",
    "PolicyDeniedError",
    "PolicyViolationError",
    "Principal",
    "Prompt",
    "PromptNotFoundError",
    "Prompts",
    "RenderedPrompt",
    "RetryPolicy",
    "Run",
    "RunCancelledError",
    "RunError",
    "RunFailedError",
    "RunHandle",
    "RunNotFoundError",
    "RunStatus",
    "RunTimeoutError",
    "Settings",
    "SignalRefusedError",
    "StepError",
    "StepFunction",
    "StepInfo",
    "StepTimeoutError",
    "StoreError",
    "TaskHandle",
    "TimelineRow",
    "Tool",
    "ToolResult",
    "Toolset",
    "UnknownFlowError",
    "UsageError",
    "Worker",
    "__version__",
    "current_step",
    "flow",
    "run",
    "step",
    "tool",
]
