"""Models: named models behind one interface, called from flows as journaled steps.

```python
label = await ctx.model("fast").classify(ticket.text, labels=["refund", "bug", "question"])
reply = await ctx.model("smart").generate(prompt, system="...", output=Reply)
vector = await ctx.embed(ticket.text)
```
"""

from .errors import BudgetExceededError, MissingExtraError, ModelError, ModelOutputError, UnknownModelError
from .handle import ModelHandle
from .registry import Models, register
from .spec import ModelSpec
from .types import Completion, Embedding, Message, ModelRequest, ToolCall, Usage

__all__ = [
    "BudgetExceededError",
    "Completion",
    "Embedding",
    "Message",
    "MissingExtraError",
    "ModelError",
    "ModelHandle",
    "ModelOutputError",
    "ModelRequest",
    "ModelSpec",
    "Models",
    "ToolCall",
    "UnknownModelError",
    "Usage",
    "register",
]
