"""The prompt registry under ``/api/prompts``: viewers read; operators and admins push, label, roll back and
split. A tenant's key works in its tenant's registry (reading a name the tenant has no prompt of reads the
shared one); a platform key in the shared registry, or in ``?tenant=T``'s.

| method | path | does |
|---|---|---|
| GET | /api/prompts | every prompt: latest version, labels, split |
| GET | /api/prompts/{name} | its versions, labels, split and the history of each label |
| POST | /api/prompts/{name}/versions | push a version (201; 200 when the same content exists already) |
| GET | /api/prompts/{name}/versions/{ref} | one version by number or label |
| GET | /api/prompts/{name}/diff?a=REF&b=REF | a unified diff of two versions |
| PUT | /api/prompts/{name}/labels/{label} | point a label at ``{"version": N}`` |
| POST | /api/prompts/{name}/labels/{label}/rollback | move a label back |
| PUT | /api/prompts/{name}/split | set ``{"arms": {"production": 90, "candidate": 10}}`` |
| DELETE | /api/prompts/{name}/split | remove the split |
"""

# No ``from __future__ import annotations``: FastAPI reads the dependency annotations at definition time.

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ..acting import ActingClient
from ..client import Client
from ..management.prompts import Prompt
from .authz import caller_dependency, needs


class PushPrompt(BaseModel):
    template: str = Field(description="The Jinja2 template (rendered in a sandbox)")
    system: str | None = Field(None, description="System text (a template too)")
    variables: list[str] | None = Field(None, description="Declared variables (default: those it reads)")
    model: str | None = Field(None, description="The model it is written for (a hint)")
    params: dict[str, Any] | None = Field(None, description="Model parameters (a hint)")
    metadata: dict[str, Any] | None = None
    label: str | None = Field(None, description="Point this label at the version")


class MoveLabel(BaseModel):
    version: int = Field(ge=1)


class SetSplit(BaseModel):
    arms: dict[str, int] | None = Field(description="Percentages over labels or version numbers (sum 100)")


def _prompt(p: Prompt) -> dict[str, Any]:
    return p.to_json()


def add_prompt_routes(api: APIRouter, client: Client) -> None:
    """Add the routes to ``api``, each declaring its action (see ``podium.server.authz``).

    Each tenant has its own prompts (``ActingClient.prompts``); platform keys manage the shared ones."""
    Me = Annotated[ActingClient, Depends(caller_dependency(client))]
    Tenant = Annotated[str | None, Query(description="A tenant's prompts (platform keys)")]

    @api.get(
        "/prompts", summary="Prompts: latest version, labels and split of each", openapi_extra=needs("view")
    )
    async def list_prompts(me: Me, tenant: Tenant = None) -> dict[str, Any]:
        prompts = me.prompts("view", tenant=tenant)
        return {"prompts": [asdict(i) for i in await prompts.list()]}

    @api.get(
        "/prompts/{name}",
        summary="A prompt's versions, labels, split and label history",
        openapi_extra=needs("view"),
    )
    async def get_prompt(name: str, me: Me, tenant: Tenant = None) -> dict[str, Any]:
        prompts = me.prompts("view", tenant=tenant)
        versions = await prompts.versions(name)
        labels = await prompts.labels(name)
        history = {label: [asdict(m) for m in await prompts.history(name, label)] for label in labels}
        return {
            "name": name,
            "versions": [_prompt(p) for p in versions],
            "labels": labels,
            "split": await prompts.get_split(name),
            "history": history,
        }

    @api.post(
        "/prompts/{name}/versions",
        status_code=201,
        summary="Push a version (idempotent on content)",
        openapi_extra=needs("edit"),
    )
    async def push(name: str, body: PushPrompt, me: Me, tenant: Tenant = None) -> JSONResponse:
        prompts = me.prompts("edit", tenant=tenant)
        before = len(await prompts.versions(name)) if await prompts.owns(name) else 0
        p = await prompts.push(name, **body.model_dump())
        created = p.version > before
        return JSONResponse({"prompt": _prompt(p), "created": created}, status_code=201 if created else 200)

    @api.get(
        "/prompts/{name}/versions/{ref}",
        summary="One version, by number or label",
        openapi_extra=needs("view"),
    )
    async def get_version(name: str, ref: str, me: Me, tenant: Tenant = None) -> dict[str, Any]:
        prompts = me.prompts("view", tenant=tenant)
        return _prompt(await prompts.get_ref(name, ref))

    @api.get(
        "/prompts/{name}/diff",
        summary="A unified diff of two versions (numbers or labels)",
        openapi_extra=needs("view"),
    )
    async def diff(name: str, a: str, b: str, me: Me, tenant: Tenant = None) -> dict[str, Any]:
        prompts = me.prompts("view", tenant=tenant)
        return {"a": a, "b": b, "diff": await prompts.diff(name, a, b)}

    @api.put(
        "/prompts/{name}/labels/{label}", summary="Point a label at a version", openapi_extra=needs("edit")
    )
    async def move(name: str, label: str, body: MoveLabel, me: Me, tenant: Tenant = None) -> dict[str, Any]:
        prompts = me.prompts("edit", tenant=tenant)
        p = await prompts.label(name, body.version, label)
        return {"label": label, "version": p.version}

    @api.post(
        "/prompts/{name}/labels/{label}/rollback",
        summary="Move a label back to its previous version",
        openapi_extra=needs("edit"),
    )
    async def rollback(name: str, label: str, me: Me, tenant: Tenant = None) -> dict[str, Any]:
        prompts = me.prompts("edit", tenant=tenant)
        p = await prompts.rollback(name, label)
        return {"label": label, "version": p.version}

    @api.put(
        "/prompts/{name}/split",
        summary="Split live traffic over labels or versions by percentage",
        openapi_extra=needs("edit"),
    )
    async def put_split(name: str, body: SetSplit, me: Me, tenant: Tenant = None) -> dict[str, Any]:
        prompts = me.prompts("edit", tenant=tenant)
        return {"split": await prompts.split(name, body.arms)}

    @api.delete(
        "/prompts/{name}/split",
        summary="Remove the split: runs resolve the label again",
        openapi_extra=needs("edit"),
    )
    async def delete_split(name: str, me: Me, tenant: Tenant = None) -> dict[str, Any]:
        prompts = me.prompts("edit", tenant=tenant)
        return {"split": await prompts.split(name, None)}
