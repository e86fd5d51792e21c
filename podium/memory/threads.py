"""``Thread``: a conversation stored durably per thread id, handed to a model within a token budget.

```python
thread = Thread(msg["thread"], ctx=ctx)
await thread.append([{"role": "user", "content": msg["text"]}])
messages = await thread.context(budget=1500, system="You are a helpful clerk.")
reply = await ctx.model("default").chat(messages)
await thread.add("assistant", reply.text)
```
``append`` writes its messages as one contiguous block in one transaction, exactly once (a retried or
replayed step finds its block by its journaled batch id), so several runs writing to one thread never
interleave their turns. ``context`` keeps the newest messages that fit the budget and replaces the older
ones by a summary written by a model of your choice (the embedded SmolLM2 by default); summaries are kept,
so each older message is summarised once.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..config import Settings
from ..errors import UsageError
from ..models.types import Message, ModelRequest, estimate_tokens
from .embedder import models_of, settings_of
from .names import scoped
from .store import VectorStore, store_for

if TYPE_CHECKING:
    from ..workflow.context import Context

T = TypeVar("T")

OVERHEAD = 4
"""Tokens a message costs beyond its text (role and separators), as chat templates add them."""

SUMMARY_INPUT_CHARS = 4000
"""Older messages are summarised in pieces of about this many characters (small models have short
contexts: SmolLM2 reads 2,048 tokens)."""

SUMMARY_PROMPT = (
    "Summarise the conversation below in a few short sentences. Keep names, numbers, facts, decisions and "
    "open questions; leave out greetings.\n\n{previous}{conversation}\n\nSummary:"
)


def tokens_of(content: str) -> int:
    return estimate_tokens(content) + OVERHEAD


class Thread:
    """The messages of one conversation. ``Thread("t-42", ctx=ctx)`` inside a flow: within the run's
    tenant. Outside a run, ``tenant="acme"`` reaches that tenant's thread."""

    def __init__(
        self,
        thread_id: str,
        *,
        ctx: Context | None = None,
        settings: Settings | None = None,
        tenant: str | None = None,
    ) -> None:
        if not isinstance(thread_id, str) or not thread_id:
            raise UsageError("a thread needs a non-empty id")
        self.id = thread_id
        self._key = scoped(thread_id, ctx, tenant=tenant)  # the stored id, within the tenant
        self._ctx = ctx
        self._settings = settings_of(ctx, settings)

    @property
    def store(self) -> VectorStore:
        return store_for(self._settings)

    async def _run(self, name: str, fn: Callable[[], Awaitable[T]]) -> T:
        if self._ctx is None:
            return await fn()
        result: T = await self._ctx.step(name, fn)
        return result

    async def add(self, role: str, content: str) -> int:
        """Append one message; returns its sequence number in the thread."""
        return (await self.append([{"role": role, "content": content}]))[0]

    async def append(self, messages: Sequence[Message | dict[str, Any]]) -> list[int]:
        """Append messages as one contiguous block (exactly once); returns their sequence numbers."""
        rows = []
        for m in messages:
            msg = m if isinstance(m, Message) else Message.model_validate(m)
            rows.append((msg.role, msg.content, tokens_of(msg.content)))
        if not rows:
            return []
        batch = self._ctx.uuid().hex if self._ctx is not None else uuid.uuid4().hex

        async def append() -> list[int]:
            return self.store.append_messages(self._key, batch, rows)

        return await self._run("thread.append", append)

    async def history(self) -> list[Message]:
        """Every message of the thread, oldest first (one journaled read)."""

        async def read() -> list[list[Any]]:
            return [[r, c] for _, r, c, _ in self.store.messages(self._key)]

        return [Message(role=r, content=c) for r, c in await self._run("thread.read", read)]

    async def context(
        self,
        *,
        budget: int = 1500,
        system: str | None = None,
        summarize_with: str | None = "default",
        summary_tokens: int | None = None,
    ) -> list[Message]:
        """Messages for a model: ``system`` (if given), a summary of the older turns (if any did not fit),
        and the newest messages that fit ``budget`` tokens in all. With ``summarize_with=None`` older turns
        are dropped instead of summarised."""
        if budget < 1:
            raise UsageError("a token budget must be positive")
        reserve = (summary_tokens or min(256, budget // 4)) if summarize_with else 0
        fixed = tokens_of(system) if system else 0
        model = summarize_with or ""

        async def read() -> dict[str, Any]:
            store = self.store
            rows = store.messages(self._key)
            total = sum(t for *_, t in rows)
            room = budget - fixed
            if total > room:
                room -= reserve
            recent: list[tuple[int, str, str, int]] = []
            used = 0
            for row in reversed(rows):
                if used + row[3] > room:
                    break
                recent.append(row)
                used += row[3]
            recent.reverse()
            older = rows[: len(rows) - len(recent)]
            upto = older[-1][0] if older else -1
            out: dict[str, Any] = {
                "recent": [[r, c] for _, r, c, _ in recent],
                "upto": upto,
                "summary": None,
                "pending": [],
            }
            if older and summarize_with:
                done = store.latest_summary(self._key, model, upto)
                since = -1
                if done is not None:
                    since, out["summary"] = done
                out["pending"] = [[r, c] for s, r, c, _ in older if s > since]
            return out

        view = await self._run("thread.context", read)
        summary: str | None = view["summary"]
        if view["pending"]:
            summary = await self._summarize(model, summary, view["pending"], reserve)
            text = summary
            upto = int(view["upto"])

            async def save() -> None:
                self.store.put_summary(self._key, model, upto, text)

            await self._run("thread.summary", save)
        out: list[Message] = []
        if system:
            out.append(Message(role="system", content=system))
        if summary:
            out.append(Message(role="system", content=f"Summary of the earlier conversation: {summary}"))
        out += [Message(role=r, content=c) for r, c in view["recent"]]
        return out

    async def _summarize(
        self, model: str, previous: str | None, pending: list[list[str]], tokens: int
    ) -> str:
        pieces: list[str] = []
        piece = ""
        for role, content in pending:
            line = f"{role}: {content}\n"
            if piece and len(piece) + len(line) > SUMMARY_INPUT_CHARS:
                pieces.append(piece)
                piece = ""
            piece += line[:SUMMARY_INPUT_CHARS]
        if piece:
            pieces.append(piece)
        summary = previous
        for p in pieces:
            before = f"Earlier summary: {summary}\n\n" if summary else ""
            prompt = SUMMARY_PROMPT.format(previous=before, conversation=p.strip())
            summary = (await self._generate(model, prompt, tokens)).strip() or summary
        return summary or ""

    async def _generate(self, model: str, prompt: str, max_tokens: int) -> str:
        if self._ctx is not None:
            text: str = await self._ctx.model(model).generate(prompt, max_tokens=max_tokens, temperature=0.0)
            return text
        models = models_of(None, self._settings)
        spec = models.spec(model)
        request = ModelRequest(
            messages=[Message(role="user", content=prompt)], max_tokens=max_tokens, temperature=0.0
        )
        completion = await models.provider(spec).complete(spec, request)
        return str(completion.text)

    async def clear(self) -> int:
        """Delete the thread's messages and summaries; returns how many messages went."""

        async def clear() -> int:
            return self.store.delete_thread(self._key)

        return await self._run("thread.clear", clear)
