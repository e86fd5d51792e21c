"""Human feedback as data: ratings, comments and corrections of a step's output.

```python
await client.feedback(run.id, "model:triage", score=-1, comment="wrong team",
                      correction="billing", dataset="triage-fixes")
```
Each record is linked to the run, the step (position and name), the model that answered and, when the text
sent to the model came from the prompt registry, the prompt's name and version, all read from the step's
journaled result. With ``dataset=`` (created if needed), the correction also becomes a dataset item
(input: the run's input; expected: the correction; source: the links above). An approval decided with an
edited payload is recorded as feedback automatically (``kind="approval"``: the proposal and the edit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..engine.codec import to_json
from ..errors import UsageError
from ..storage.base import Event, FeedbackRecord
from ..types import JSON, RunStatus, new_id
from .datasets import check_name

if TYPE_CHECKING:
    from ..client import Client

UNSET: Any = object()
OUTPUT = "output"
"""The ``step`` that names the run's own output (rather than one step's)."""


@dataclass(frozen=True, slots=True)
class Feedback:
    """A feedback record (see ``Client.feedback``). ``kind``: ``rating``, ``correction`` or ``approval``."""

    id: str
    run_id: str
    step: str
    kind: str
    step_name: str | None
    score: int | None
    comment: str | None
    original: JSON
    correction: JSON
    model: str | None
    served_by: str | None
    prompt: dict[str, Any] | None
    dataset: str | None
    item_id: str | None
    author: str | None
    created_at: float

    @classmethod
    def _of(cls, f: FeedbackRecord) -> Feedback:
        return cls(
            f.id, f.run_id, f.step, f.kind, f.step_name, f.score, f.comment, f.original, f.correction,
            f.model, f.served_by, f.prompt, f.dataset, f.item_id, f.author, f.created_at,
        )  # fmt: skip


def _target(events: list[Event], step: str, run_id: str) -> Event:
    """The journaled step (or approval) that ``step`` names: its position, or a unique step name."""
    done = [e for e in events if e.kind in ("step", "approval")]
    by_position = [e for e in done if e.step == step]
    if by_position:
        return by_position[-1]
    named = [e for e in done if e.name == step]
    if len(named) == 1:
        return named[0]
    if named:
        where = ", ".join(e.step for e in named)
        raise UsageError(f"run {run_id} has several steps named {step!r} (at {where}); give the position")
    known = ", ".join(f"{e.step} ({e.name})" for e in done[:20]) or "none"
    raise UsageError(f"run {run_id} has no finished step {step!r}; steps: {known}, or {OUTPUT!r}")


def _links(event: Event) -> tuple[JSON, dict[str, Any]]:
    """A step's output and what produced it (model, served_by, prompt) from its journaled result."""
    data = to_json(event.data) or {}
    if event.kind == "approval":
        return data.get("payload"), {}
    if "error" in data:
        raise UsageError(f"step {event.step} ({event.name}) failed; it has no output to give feedback on")
    result = data.get("result")
    links: dict[str, Any] = {}
    if isinstance(result, dict) and (event.name or "").startswith("model:"):
        links = {k: result.get(k) for k in ("model", "served_by", "prompt") if result.get(k)}
        return result.get("text", result), links
    return result, links


async def give_feedback(
    client: Client,
    run_id: str,
    step: str,
    *,
    score: int | None = None,
    comment: str | None = None,
    correction: Any = UNSET,
    dataset: str | None = None,
    by: str | None = None,
) -> Feedback:
    """``Client.feedback``: record feedback on a step's output (see the module docstring)."""
    rec = await client._record(run_id)
    if not isinstance(step, str) or not step:
        raise UsageError("name the step: its position (e.g. '2'), its name (e.g. 'model:triage') or 'output'")
    if score is not None and (isinstance(score, bool) or score not in (1, -1)):
        raise UsageError(f"score must be +1 (thumbs up) or -1 (thumbs down), not {score!r}")
    if comment is not None and not isinstance(comment, str):
        raise UsageError("comment must be a string")
    if score is None and comment is None and correction is UNSET:
        raise UsageError("feedback needs a score, a comment or a correction")
    if dataset is not None:
        check_name(dataset)
    if step == OUTPUT:
        if rec.status is not RunStatus.COMPLETED:
            raise UsageError(f"run {run_id} is {rec.status.value}; it has no output to give feedback on")
        original, name = rec.output, None
        links: dict[str, Any] = {}
    else:
        target = _target(await client.store.load_events(run_id), step, run_id)
        (original, links), name, step = _links(target), target.name, target.step
    fixed: JSON = None
    if correction is not UNSET:
        try:
            fixed = to_json(correction)
        except Exception as exc:
            raise UsageError(f"the correction is not JSON-serializable: {exc}") from None
    fid = new_id()
    item_id = None
    if dataset is not None:
        expected = fixed if correction is not UNSET else (original if score == 1 else None)
        source = {"run_id": run_id, "step": step, "step_name": name, "feedback": fid, **links}
        meta = {k: v for k, v in (("score", score), ("comment", comment)) if v is not None}
        await client.datasets.create(dataset, exist_ok=True)
        item = await client.datasets.add(dataset, rec.input, expected, id=fid, metadata=meta, source=source)
        item_id = item.id
    record = FeedbackRecord(
        id=fid, run_id=run_id, step=step, kind="correction" if correction is not UNSET else "rating",
        step_name=name, score=score, comment=comment, original=original, correction=fixed,
        model=links.get("model"), served_by=links.get("served_by"), prompt=links.get("prompt"),
        dataset=dataset, item_id=item_id, author=by, created_at=client.clock(),
    )  # fmt: skip
    await client.store.feedback_add(record)
    return Feedback._of(record)


async def approval_feedback(
    client: Client, approval: Event, payload: JSON, *, by: str | None, comment: str | None
) -> None:
    """Record an approval decided with an edited payload (once per approval: the id is the position's)."""
    record = FeedbackRecord(
        id=f"approval:{approval.run_id}:{approval.step}", run_id=approval.run_id, step=approval.step,
        kind="approval", step_name=approval.name, comment=comment,
        original=(to_json(approval.data) or {}).get("payload"), correction=payload, author=by,
        created_at=client.clock(),
    )  # fmt: skip
    await client.store.feedback_add(record)


async def list_feedback(client: Client, run_id: str | None = None, *, limit: int = 100) -> list[Feedback]:
    """Feedback records (of one run, or all), newest first."""
    client._check_open()
    if run_id is not None:
        await client._record(run_id)
    if not 1 <= limit <= 1000:
        raise UsageError("limit must be between 1 and 1000")
    return [Feedback._of(f) for f in await client.store.feedback_list(run_id=run_id, limit=limit)]
