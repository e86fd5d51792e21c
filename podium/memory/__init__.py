"""Memory, context and retrieval: conversation threads, long-term memory, document collections, hybrid
search and RAG. The embedded store lives on the run store's SQLite file; on PostgreSQL, pgvector
(``podium.memory.postgres.PostgresMemoryStore``; see docs/memory.md).

```python
from podium.memory import Memory, Thread

@podium.flow
async def support(ctx: podium.Context, msg: dict) -> str:
    thread = Thread(msg["thread"], ctx=ctx)
    await thread.add("user", msg["text"])
    docs = await ctx.retrieve(msg["text"], collection="handbook", k=4)
    history = await thread.context(budget=1500)
    ...
```
This package reaches durability only through the flow's ``Context`` (every operation inside a flow is a
journaled step); it imports neither the engine nor the run store.
"""

from .errors import DimensionMismatchError, IngestError, UnknownCollectionError
from .fusion import RRF_K
from .longterm import Memory
from .query import filter_sql, fts_query
from .sqlite import SQLiteMemoryStore
from .store import VectorStore, close_stores, memory_config, store_for
from .threads import Thread
from .types import Hit, Item, SpaceInfo

__all__ = [
    "RRF_K",
    "DimensionMismatchError",
    "Hit",
    "IngestError",
    "Item",
    "Memory",
    "SQLiteMemoryStore",
    "SpaceInfo",
    "Thread",
    "UnknownCollectionError",
    "VectorStore",
    "close_stores",
    "filter_sql",
    "fts_query",
    "memory_config",
    "store_for",
]
