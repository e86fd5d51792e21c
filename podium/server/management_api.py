"""The REST routes of feedback, datasets and evaluations (``podium.management``), under ``/api``; each
declares its action (``podium.server.authz``).

| route | action |
|---|---|
| ``GET /api/runs/{id}/feedback``, ``GET /api/feedback`` | view |
| ``POST /api/runs/{id}/feedback`` (``{"step", "score", "comment", "correction", "dataset"}``) | feedback |
| ``GET /api/datasets``, ``GET /api/datasets/{name}[?version=N]``, ``GET .../{name}/export`` | view |
| ``POST /api/datasets``, ``POST /api/datasets/{name}/items``, ``POST /api/datasets/{name}/import`` | edit |
| ``GET /api/evals[?dataset=D]``, ``GET /api/evals/{id}`` | view |

Feedback belongs to its run: a key of one tenant sees and gives feedback on its tenant's runs only. Datasets
and evaluations are shared by every tenant, like prompts: any viewer reads them; only keys of no one tenant
(platform keys) change them, or copy a run's data into one (feedback with ``dataset``).
"""

# No ``from __future__ import annotations``: FastAPI reads the dependency annotations at definition time.

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ..acting import ActingClient
from ..client import Client
from ..errors import PermissionDeniedError, RunNotFoundError
from ..management.evals import EvalReport, get_eval, list_evals
from .authz import caller_dependency, needs


class GiveFeedback(BaseModel):
    step: str = Field(min_length=1, description="A position ('2'), a step name ('model:triage') or 'output'")
    score: int | None = Field(None, description="+1 (thumbs up) or -1 (thumbs down)")
    comment: str | None = None
    correction: Any = Field(None, description="The corrected output (omit for none)")
    dataset: str | None = Field(None, description="Also add the example to this dataset (platform keys)")


class NewDataset(BaseModel):
    name: str = Field(min_length=1)
    description: str = ""


class NewItem(BaseModel):
    input: Any
    expected: Any = None
    id: str | None = Field(None, description="An existing id adds a new revision of that item")
    metadata: dict[str, Any] | None = None


def _eval(report: EvalReport) -> dict[str, Any]:
    d = asdict(report)
    d["variants"] = [asdict(v) for v in report.variants]
    return d


def _platform(me: ActingClient, what: str) -> None:
    if me.principal.tenant is not None:
        raise PermissionDeniedError(
            f"{what}: datasets are shared by every tenant; use a key of no one tenant"
        )


def add_management_routes(api: APIRouter, client: Client) -> None:
    """Add the routes to ``api``, each declaring its action (see ``podium.server.authz``)."""
    Caller = Annotated[ActingClient, Depends(caller_dependency(client))]

    @api.get(
        "/runs/{run_id}/feedback",
        summary="Feedback a run received, newest first",
        openapi_extra=needs("view"),
    )
    async def run_feedback(run_id: str, me: Caller) -> dict[str, Any]:
        await me.get(run_id)  # another tenant's run is a RunNotFoundError (404)
        return {"feedback": [asdict(f) for f in await client.feedback_list(run_id)]}

    @api.post(
        "/runs/{run_id}/feedback",
        status_code=201,
        summary="Rate or correct a step's output",
        openapi_extra=needs("feedback"),
    )
    async def give_feedback(run_id: str, body: GiveFeedback, request: Request, me: Caller) -> dict[str, Any]:
        await me.get(run_id)
        if body.dataset is not None:
            _platform(me, "feedback into a dataset")
        raw = await request.json()
        options: dict[str, Any] = {"score": body.score, "comment": body.comment, "dataset": body.dataset}
        if isinstance(raw, dict) and "correction" in raw:
            options["correction"] = body.correction
        return asdict(await client.feedback(run_id, body.step, by=me.who, **options))

    @api.get("/feedback", summary="Recent feedback on all runs, newest first", openapi_extra=needs("view"))
    async def all_feedback(me: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        found = await client.feedback_list(limit=limit)
        if me.principal.tenant is not None:  # only feedback on runs this key may see
            visible = []
            for f in found:
                try:
                    await me.get(f.run_id)
                except RunNotFoundError:
                    continue
                visible.append(f)
            found = visible
        return {"feedback": [asdict(f) for f in found]}

    @api.get("/datasets", summary="Datasets with their versions and item counts", openapi_extra=needs("view"))
    async def datasets(me: Caller) -> dict[str, Any]:
        return {"datasets": [asdict(d) for d in await client.datasets.list()]}

    @api.post("/datasets", status_code=201, summary="Create a dataset", openapi_extra=needs("edit"))
    async def create_dataset(body: NewDataset, me: Caller) -> dict[str, Any]:
        _platform(me, "creating a dataset")
        return asdict(await client.datasets.create(body.name, description=body.description))

    @api.get(
        "/datasets/{name}",
        summary="A dataset and its items (optionally as it was at a version)",
        openapi_extra=needs("view"),
    )
    async def dataset(
        name: str, me: Caller, version: Annotated[int | None, Query(ge=0)] = None
    ) -> dict[str, Any]:
        d = await client.datasets.get(name)
        items = await client.datasets.items(name, version=version)
        return {"dataset": asdict(d), "items": [asdict(i) for i in items]}

    @api.post(
        "/datasets/{name}/items",
        status_code=201,
        summary="Add an item (or a revision of one)",
        openapi_extra=needs("edit"),
    )
    async def add_item(name: str, body: NewItem, me: Caller) -> dict[str, Any]:
        _platform(me, "adding to a dataset")
        item = await client.datasets.add(name, body.input, body.expected, id=body.id, metadata=body.metadata)
        return asdict(item)

    @api.get("/datasets/{name}/export", summary="The items as JSONL", openapi_extra=needs("view"))
    async def export(name: str, me: Caller, version: Annotated[int | None, Query(ge=0)] = None) -> Response:
        text = await client.datasets.export(name, version=version)
        return Response(text, media_type="application/x-ndjson")

    @api.post(
        "/datasets/{name}/import",
        summary="Add the items of a JSONL body (all or nothing)",
        openapi_extra=needs("edit"),
    )
    async def import_items(name: str, request: Request, me: Caller) -> JSONResponse:
        _platform(me, "importing into a dataset")
        body = await request.body()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return JSONResponse({"error": "the body is not UTF-8 text"}, status_code=400)
        return JSONResponse({"imported": await client.datasets.import_(name, text)}, status_code=201)

    @api.get(
        "/evals", summary="Evaluations, newest first, with per-variant summaries", openapi_extra=needs("view")
    )
    async def evals(
        me: Caller, dataset: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 50
    ) -> dict[str, Any]:
        return {"evals": [_eval(r) for r in await list_evals(client, dataset=dataset, limit=limit)]}

    @api.get(
        "/evals/{eval_id}", summary="One evaluation with every item's result", openapi_extra=needs("view")
    )
    async def one_eval(eval_id: str, me: Caller) -> dict[str, Any]:
        return _eval(await get_eval(client, eval_id))
