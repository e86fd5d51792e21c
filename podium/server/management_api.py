"""The REST routes of datasets, feedback and evaluations (``podium.management``), under ``/api``.

| route | permission |
|---|---|
| ``GET /api/runs/{id}/feedback``, ``GET /api/feedback`` | read |
| ``POST /api/runs/{id}/feedback`` (``{"step", "score", "comment", "correction", "dataset"}``) | feedback |
| ``GET /api/datasets``, ``GET /api/datasets/{name}[?version=N]``, ``GET .../{name}/export`` | read |
| ``POST /api/datasets``, ``POST /api/datasets/{name}/items``, ``POST /api/datasets/{name}/import`` | run |
| ``GET /api/evals[?dataset=D]``, ``GET /api/evals/{id}`` | read |

The ``feedback`` permission belongs to operators, approvers and admins (people who act on runs).
"""

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ..client import ApiKey, Client
from ..management.evals import EvalReport, get_eval, list_evals


class GiveFeedback(BaseModel):
    step: str = Field(min_length=1, description="A position ('2'), a step name ('model:triage') or 'output'")
    score: int | None = Field(None, description="+1 (thumbs up) or -1 (thumbs down)")
    comment: str | None = None
    correction: Any = Field(None, description="The corrected output (omit for none)")
    dataset: str | None = Field(None, description="Also add the example to this dataset")


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


def add_management_routes(
    api: APIRouter,
    client: Client,
    *,
    allowed: Callable[[str], Callable[[ApiKey], Awaitable[ApiKey]]],
    who: Callable[[ApiKey], str],
) -> None:
    """Add the routes to ``api``; ``allowed(permission)`` is the dependency that checks a caller's
    permission, ``who(key)`` names the caller."""
    Reader = Annotated[ApiKey, Depends(allowed("read"))]
    Operator = Annotated[ApiKey, Depends(allowed("run"))]
    Giver = Annotated[ApiKey, Depends(allowed("feedback"))]

    @api.get("/runs/{run_id}/feedback", summary="Feedback a run received, newest first")
    async def run_feedback(run_id: str, key: Reader) -> dict[str, Any]:
        return {"feedback": [asdict(f) for f in await client.feedback_list(run_id)]}

    @api.post("/runs/{run_id}/feedback", status_code=201, summary="Rate or correct a step's output")
    async def give_feedback(run_id: str, body: GiveFeedback, request: Request, key: Giver) -> dict[str, Any]:
        raw = await request.json()
        options: dict[str, Any] = {"score": body.score, "comment": body.comment, "dataset": body.dataset}
        if isinstance(raw, dict) and "correction" in raw:
            options["correction"] = body.correction
        fb = await client.feedback(run_id, body.step, by=who(key), **options)
        return asdict(fb)

    @api.get("/feedback", summary="Recent feedback on all runs, newest first")
    async def all_feedback(key: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        return {"feedback": [asdict(f) for f in await client.feedback_list(limit=limit)]}

    @api.get("/datasets", summary="Datasets with their versions and item counts")
    async def datasets(key: Reader) -> dict[str, Any]:
        return {"datasets": [asdict(d) for d in await client.datasets.list()]}

    @api.post("/datasets", status_code=201, summary="Create a dataset")
    async def create_dataset(body: NewDataset, key: Operator) -> dict[str, Any]:
        return asdict(await client.datasets.create(body.name, description=body.description))

    @api.get("/datasets/{name}", summary="A dataset and its items (optionally as it was at a version)")
    async def dataset(
        name: str, key: Reader, version: Annotated[int | None, Query(ge=0)] = None
    ) -> dict[str, Any]:
        d = await client.datasets.get(name)
        items = await client.datasets.items(name, version=version)
        return {"dataset": asdict(d), "items": [asdict(i) for i in items]}

    @api.post("/datasets/{name}/items", status_code=201, summary="Add an item (or a revision of one)")
    async def add_item(name: str, body: NewItem, key: Operator) -> dict[str, Any]:
        item = await client.datasets.add(name, body.input, body.expected, id=body.id, metadata=body.metadata)
        return asdict(item)

    @api.get("/datasets/{name}/export", summary="The items as JSONL")
    async def export(name: str, key: Reader, version: Annotated[int | None, Query(ge=0)] = None) -> Response:
        text = await client.datasets.export(name, version=version)
        return Response(text, media_type="application/x-ndjson")

    @api.post("/datasets/{name}/import", summary="Add the items of a JSONL body (all or nothing)")
    async def import_items(name: str, request: Request, key: Operator) -> JSONResponse:
        body = await request.body()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return JSONResponse({"error": "the body is not UTF-8 text"}, status_code=400)
        return JSONResponse({"imported": await client.datasets.import_(name, text)}, status_code=201)

    @api.get("/evals", summary="Evaluations, newest first, with per-variant summaries")
    async def evals(
        key: Reader, dataset: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 50
    ) -> dict[str, Any]:
        return {"evals": [_eval(r) for r in await list_evals(client, dataset=dataset, limit=limit)]}

    @api.get("/evals/{eval_id}", summary="One evaluation with every item's result")
    async def one_eval(eval_id: str, key: Reader) -> dict[str, Any]:
        return _eval(await get_eval(client, eval_id))
