"""The management part of ``Client``: feedback on steps, datasets of examples, evaluations
(``podium.management`` gives them their meaning)."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from .workflow.flow import Flow

if TYPE_CHECKING:
    from .client import Client
    from .management.datasets import Datasets
    from .management.evals import EvalReport
    from .management.feedback import Feedback

_UNSET: Any = object()
"""An argument not given (None is a value); ``podium.client`` uses the same one."""


class ManagementMixin:
    """Feedback, datasets and evaluations (a part of ``Client``)."""

    def _client(self) -> Client:
        return cast("Client", self)

    @property
    def datasets(self) -> Datasets:
        """Datasets of examples: ``create``, ``add``, ``items``, ``export`` and ``import_`` (JSONL)."""
        from .management.datasets import Datasets

        return Datasets(self._client())

    async def feedback(
        self,
        run_id: str,
        step: str,
        *,
        score: int | None = None,
        comment: str | None = None,
        correction: Any = _UNSET,
        dataset: str | None = None,
        by: str | None = None,
    ) -> Feedback:
        """Feedback on a step's output (``step``: a position, a unique step name, or ``"output"`` for the
        run's output): ``score`` +1/-1, a ``comment``, a ``correction``; linked to the model and prompt
        version that produced it, and added to ``dataset`` as an item if given (``podium.management``)."""
        from .management.feedback import UNSET, give_feedback

        fixed = UNSET if correction is _UNSET else correction
        return await give_feedback(
            self._client(),
            run_id,
            step,
            score=score,
            comment=comment,
            correction=fixed,
            dataset=dataset,
            by=by,
        )

    async def feedback_list(self, run_id: str | None = None, *, limit: int = 100) -> builtins.list[Feedback]:
        """Feedback records (of one run, or all), newest first."""
        from .management.feedback import list_feedback

        return await list_feedback(self._client(), run_id, limit=limit)

    async def evaluate(
        self,
        dataset: str,
        flow: Flow[Any, Any] | str,
        *,
        variants: Any = None,
        scorers: Iterable[Any] = ("exact",),
        concurrency: int = 8,
        eval_id: str | None = None,
        resume: bool = True,
        version: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> EvalReport:
        """Run ``flow`` on every item of ``dataset`` under each variant (run pins: ``{"v4": {"prompt:triage":
        "4"}}`` or ``["v4=prompt=triage@4"]``), score the outputs (``"exact"``, ``"judge:smart"``, a function,
        ...) with at most ``concurrency`` runs at once, and store the results. A killed evaluation resumes
        (same ``eval_id``, or the same dataset version, flow, variants and scorers) without running finished
        items again. See ``podium.management.evals.evaluate``."""
        from .management.evals import evaluate

        return await evaluate(
            self._client(), dataset, flow, variants=variants, scorers=scorers, concurrency=concurrency,
            eval_id=eval_id, resume=resume, version=version, progress=progress,
        )  # fmt: skip
