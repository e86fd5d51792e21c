"""The REST API under ``/api``: runs, signals, approvals, journals, live event streams, flows, models, keys,
the audit trail.

Every route needs an API key (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``; event streams also take
``?key=KEY`` because browsers' EventSource cannot set headers) that is not revoked or expired (else 401),
whose role allows the route's action (else 403):

| role | may |
|---|---|
| viewer | view runs, journals, timelines, the inbox, flows, models, costs, streams, datasets (``view``) |
| operator | viewer + ``start``, ``cancel``, ``signal`` runs, ``edit`` prompts and datasets, ``feedback`` |
| approver | viewer + ``approve`` (and reject), give ``feedback`` |
| admin | everything, API keys included (``admin``) |

A key of one tenant sees and acts on that tenant's runs, approvals, journals, streams, keys and audit
entries only (``GET /api/audit``, admin; platform keys read every entry, or ``?tenant=T``'s): another
tenant's run answers 404, as if it did not exist. ``[[permissions]]`` rules in ``podium.toml`` narrow roles to
flows (403). Prompts (``/api/prompts``, see ``prompts_api``) are shared: every viewer reads them, platform
operators and admins (keys of no one tenant) change them. ``/api/metrics`` is for platform keys.

**Adding routes** (any router module): declare the action and take the caller, and check nothing else by
hand; ``check_routes`` refuses a route under ``/api`` without an action, and tests/test_authz_matrix.py runs
every declared route for every role and tenant::

    Caller = Annotated[ActingClient, Depends(caller_dependency(client))]

    @api.get("/datasets/{name}", summary="...", openapi_extra=needs("view"))
    async def dataset(name: str, me: Caller) -> dict[str, Any]:
        run = await me.get(run_id)            # me: podium.acting.ActingClient, the key's principal

Read runs through ``me`` (``me.get``, ``me.list``, ...: tenant and rules checked, another tenant's run is a
``RunNotFoundError``), or check a run's flow and tenant with ``me.authorize(action, flow=, tenant=)``.

Mutating calls are journaled with who made them (the key's name and role). User mistakes are 4xx with a JSON
body ``{"error": "..."}``; a store that is down is 503; never a 500 for a caller's mistake.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from ..acting import ActingClient
from ..client import Client, RunHandle
from ..errors import (
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    PermissionDeniedError,
    PodiumError,
    PolicyViolationError,
    PromptNotFoundError,
    RunNotFoundError,
    StoreError,
    UnknownFlowError,
    UsageError,
)
from ..records import Run
from ..workflow.flow import registered
from .authz import ApiError, caller_dependency, check_routes, needs
from .management_api import add_management_routes
from .prompts_api import add_prompt_routes
from .stats import compute_stats

STREAM_POLL = 0.2
"""How often an event stream looks for new journal events (seconds)."""


# -- request bodies ---------------------------------------------------------------------------------
class StartRun(BaseModel):
    flow: str = Field(description="The registered flow's name")
    input: Any = None
    key: str | None = Field(None, description="Idempotency key: starting again returns the same run")
    timeout: float | None = Field(None, gt=0, description="Seconds the whole run may take")
    tenant: str | None = Field(None, description="The run's tenant (default: the key's, else 'default')")
    subject: str | None = Field(None, description="The data subject (a person) whose data the run holds")


class SendSignal(BaseModel):
    name: str = Field(min_length=1)
    payload: Any = None
    key: str | None = Field(None, description="Deduplication id: the same signal is applied once")
    transient: bool = False
    milestone: str | None = None


class Decide(BaseModel):
    name: str | None = Field(None, description="Which approval, if the run waits for several")
    payload: Any = Field(None, description="An edited payload (approve only); omit to keep the proposal")
    comment: str | None = None


class NewKey(BaseModel):
    name: str = Field(min_length=1)
    role: str
    tenant: str | None = Field(None, description="The tenant it acts in (default: the caller's; none: all)")
    expires: str | None = Field(None, description="How long it is valid, such as '30d' (default: no end)")


def _run(r: Run) -> dict[str, Any]:
    d = asdict(r)
    d["status"] = r.status.value
    return d


def create_api(client: Client) -> APIRouter:
    """The ``/api`` routes, all going through ``client``."""

    Caller = Annotated[ActingClient, Depends(caller_dependency(client))]

    api = APIRouter(prefix="/api")

    @api.get("/whoami", summary="The calling key", openapi_extra=needs("view"))
    async def whoami(me: Caller) -> dict[str, Any]:
        return {
            "name": me.principal.name,
            "role": me.principal.role,
            "tenant": me.principal.tenant,
            "id": me.principal.key_id,
        }

    # -- runs -------------------------------------------------------------------------------------
    @api.get("/runs", summary="List runs, newest first", openapi_extra=needs("view"))
    async def list_runs(
        me: Caller,
        status: Annotated[list[str] | None, Query()] = None,
        flow: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        before: Annotated[str | None, Query(description="The last id of the previous page")] = None,
        tenant: Annotated[str | None, Query(description="One tenant's runs (platform keys)")] = None,
    ) -> dict[str, Any]:
        runs = await me.list(status=status, flow=flow, limit=limit, before=before, tenant=tenant)
        nxt = runs[-1].id if len(runs) == limit else None
        return {"runs": [_run(r) for r in runs], "next": nxt}

    @api.post(
        "/runs", status_code=201, summary="Start a run (idempotent with a key)", openapi_extra=needs("start")
    )
    async def start_run(body: StartRun, me: Caller) -> JSONResponse:
        h: RunHandle[Any] = await me.start(
            body.flow,
            body.input,
            key=body.key,
            timeout=body.timeout,
            tenant=body.tenant,
            subject=body.subject,
        )
        run = await me.get(h.id)
        return JSONResponse({"run": _run(run), "created": h.created}, status_code=201 if h.created else 200)

    @api.get("/runs/{run_id}", summary="One run", openapi_extra=needs("view"))
    async def get_run(run_id: str, me: Caller) -> dict[str, Any]:
        return _run(await me.get(run_id))

    @api.post("/runs/{run_id}/cancel", summary="Cancel a run (idempotent)", openapi_extra=needs("cancel"))
    async def cancel_run(run_id: str, me: Caller) -> dict[str, Any]:
        return _run(await me.cancel(run_id))

    @api.post("/runs/{run_id}/signals", summary="Send a signal", openapi_extra=needs("signal"))
    async def signal_run(run_id: str, body: SendSignal, me: Caller) -> dict[str, Any]:
        delivered = await me.signal(
            run_id,
            body.name,
            body.payload,
            key=body.key,
            transient=body.transient,
            milestone=body.milestone,
        )
        return {"delivered": delivered}

    @api.post(
        "/runs/{run_id}/approve",
        summary="Approve a pending approval, optionally with an edited payload",
        openapi_extra=needs("approve"),
    )
    async def approve(run_id: str, body: Decide, request: Request, me: Caller) -> dict[str, Any]:
        raw = await request.json() if await request.body() else {}
        kwargs: dict[str, Any] = {"comment": body.comment}
        if isinstance(raw, dict) and "payload" in raw:
            kwargs["payload"] = body.payload
        decided = await me.approve(run_id, body.name, **kwargs)
        return {"approved": True, **asdict(decided)}

    @api.post("/runs/{run_id}/reject", summary="Reject a pending approval", openapi_extra=needs("approve"))
    async def reject(run_id: str, body: Decide, me: Caller) -> dict[str, Any]:
        decided = await me.reject(run_id, body.name, comment=body.comment)
        return {"approved": False, **asdict(decided)}

    @api.get("/runs/{run_id}/journal", summary="The run's journal", openapi_extra=needs("view"))
    async def journal(run_id: str, me: Caller) -> dict[str, Any]:
        return {"events": [asdict(e) for e in await me.journal(run_id)]}

    @api.get(
        "/runs/{run_id}/timeline",
        summary="The run's positions with outcomes and durations",
        openapi_extra=needs("view"),
    )
    async def timeline(run_id: str, me: Caller) -> dict[str, Any]:
        rows = await me.timeline(run_id)
        return {
            "rows": [{**asdict(r), "duration": r.duration} for r in rows],
            "usage": asdict(await me.usage(run_id)),
        }

    @api.get(
        "/runs/{run_id}/events",
        summary="Live journal of one run (server-sent events)",
        openapi_extra=needs("view"),
    )
    async def run_events(run_id: str, request: Request, me: Caller) -> StreamingResponse:
        await me.get(run_id)  # 404 before the stream starts
        after = _last_event_id(request)

        async def poll(seen: int) -> list[dict[str, Any]]:
            return [
                {"id": e.seq, "run_id": run_id, **{k: v for k, v in asdict(e).items() if k != "seq"}}
                for e in await me.journal(run_id)
                if e.seq > seen
            ]

        return _stream(request, poll, after)

    @api.get(
        "/runs/{run_id}/tokens",
        summary="The run's streamed model text, resumable (server-sent events)",
        openapi_extra=needs("view"),
    )
    async def run_tokens(run_id: str, request: Request, me: Caller) -> StreamingResponse:
        await me.get(run_id)  # 404 before the stream starts (also for a run the caller may not view)
        return _token_stream(me, run_id, request, _last_event_id(request))

    @api.get("/events", summary="Live journal of all runs (server-sent events)", openapi_extra=needs("view"))
    async def all_events(request: Request, me: Caller) -> StreamingResponse:
        after = _last_event_id(request)
        if after == 0 and request.query_params.get("from") != "start":
            feed = await client.feed(0, limit=5000)  # from now on, unless asked for history (seq only)
            while len(feed) == 5000:
                feed = await client.feed(feed[-1].seq, limit=5000)
            after = feed[-1].seq if feed else 0

        async def poll(seen: int) -> list[dict[str, Any]]:
            # the stream resumes after the last event *read*, seen or not, so hidden runs cost no re-reads
            raw = await client.feed(seen)
            shown = await me.filter_feed(raw)
            out = [{"id": e.seq, **{k: v for k, v in asdict(e).items() if k != "seq"}} for e in shown]
            if raw and (not out or out[-1]["id"] != raw[-1].seq):
                out.append({"id": raw[-1].seq, "kind": "skip"})  # advances Last-Event-ID, shows nothing
            return out

        return _stream(request, poll, after)

    # -- inbox, flows, models, costs --------------------------------------------------------------
    @api.get(
        "/approvals", summary="Approvals waiting for a decision (the inbox)", openapi_extra=needs("view")
    )
    async def approvals(me: Caller, run_id: str | None = None) -> dict[str, Any]:
        return {"approvals": [asdict(a) for a in await me.pending_approvals(run_id)]}

    @api.get("/flows", summary="Flows this server knows", openapi_extra=needs("view"))
    async def flows(me: Caller) -> dict[str, Any]:
        out = []
        for name, fl in sorted(registered().items()):
            if not me.can("view", flow=name):
                continue
            try:
                schema = fl.input_adapter.json_schema() if fl.input_adapter is not None else None
            except Exception:
                schema = None
            out.append({"name": name, "doc": (fl.__doc__ or "").strip() or None, "input_schema": schema})
        return {"flows": out}

    @api.get("/models", summary="Configured models", openapi_extra=needs("view"))
    async def models(me: Caller) -> dict[str, Any]:
        raw = client.settings.config.get("models", {})
        return {
            "models": [
                {
                    "name": n,
                    **{
                        k: v
                        for k, v in spec.items()
                        if k in ("provider", "model", "kind", "price", "capabilities")
                    },
                }
                for n, spec in sorted(raw.items())
                if isinstance(spec, dict)
            ]
        }

    @api.get("/usage", summary="Model usage and cost per flow (newest runs)", openapi_extra=needs("view"))
    async def usage(
        me: Caller, flow: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 500
    ) -> dict[str, Any]:
        totals = await me.usage_by_flow(flow=flow, limit=limit)
        return {"flows": {name: asdict(u) for name, u in sorted(totals.items())}}

    @api.get(
        "/stats",
        summary="Cost and latency per flow and per model over time (hour or day buckets)",
        openapi_extra=needs("view"),
    )
    async def stats(
        me: Caller,
        bucket: str = "hour",
        since: Annotated[
            str | None, Query(description="Epoch seconds, an ISO 8601 time or a duration ago ('24h')")
        ] = None,
        flow: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10000, description="Newest runs read at most")] = 2000,
    ) -> dict[str, Any]:
        return await compute_stats(me, bucket=bucket, since=since, flow=flow, limit=limit)

    @api.get(
        "/metrics",
        summary="Prometheus metrics of this server's worker (PODIUM_METRICS=1; platform keys)",
        openapi_extra=needs("view"),
    )
    async def metrics(request: Request, me: Caller) -> Response:
        from ..observability.metrics import find_metrics, render_metrics

        me.require_platform("read the metrics of every tenant")
        found = find_metrics(client.observers)
        if found is None:
            raise ApiError(
                404,
                "metrics are off here: start podium serve --worker with PODIUM_METRICS=1 (or scrape "
                "podium worker --metrics-port)",
            )
        body, content_type = await asyncio.to_thread(
            render_metrics, found.registry, request.headers.get("accept")
        )
        return Response(body, media_type=content_type)

    add_prompt_routes(api, client)

    # -- keys -------------------------------------------------------------------------------------
    @api.get("/keys", summary="API keys of the caller's tenant (admin)", openapi_extra=needs("admin"))
    async def list_keys(me: Caller) -> dict[str, Any]:
        return {"keys": [asdict(k) for k in await me.keys()]}

    @api.post(
        "/keys",
        status_code=201,
        summary="Create an API key (admin); its secret is shown once",
        openapi_extra=needs("admin"),
    )
    async def create_key(body: NewKey, me: Caller) -> dict[str, Any]:
        new, secret = await me.create_key(body.name, body.role, tenant=body.tenant, expires=body.expires)
        return {"key": asdict(new), "secret": secret}

    @api.delete("/keys/{key_id}", summary="Revoke an API key (admin)", openapi_extra=needs("admin"))
    async def revoke_key(key_id: str, me: Caller) -> dict[str, Any]:
        await me.revoke_key(key_id)
        return {"revoked": key_id}

    # -- audit ------------------------------------------------------------------------------------
    @api.get(
        "/audit",
        summary="Audit trail entries of the caller's tenant, in order (admin; platform keys: all)",
        openapi_extra=needs("admin"),
    )
    async def audit(
        me: Caller,
        after: Annotated[int, Query(ge=0, description="Entries after this seq (a page's next)")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        action: Annotated[str | None, Query(description="Only entries of this action")] = None,
        tenant: Annotated[str | None, Query(description="One tenant's entries (platform keys)")] = None,
    ) -> dict[str, Any]:
        page = await me.audit(after=after, limit=limit, action=action, tenant=tenant)
        return {"entries": page.entries, "next": page.next}

    add_management_routes(api, client)
    check_routes(api)
    return api


def _last_event_id(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"Last-Event-ID must be an integer, not {raw!r}") from None
    if value < 0:
        raise ApiError(400, "Last-Event-ID must not be negative")
    return value


def _stream(
    request: Request, poll: Callable[[int], Awaitable[list[dict[str, Any]]]], after: int
) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        seen = after
        yield ": podium event stream\n\n"
        while not await request.is_disconnected():
            try:
                batch = await poll(seen)
            except StoreError:
                yield "event: unavailable\ndata: {}\n\n"
                await asyncio.sleep(1)
                continue
            for item in batch:
                seen = max(seen, int(item["id"]))
                yield f"id: {item['id']}\nevent: {item['kind']}\ndata: {json.dumps(item, default=str)}\n\n"
            if not batch:
                yield ": keep-alive\n\n"
            await asyncio.sleep(STREAM_POLL)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _token_stream(client: ActingClient, run_id: str, request: Request, after: int) -> StreamingResponse:
    """``token`` events (``step``, ``epoch``, ``offset``, ``text``), ``reset`` when a step streams again from
    the start, and ``end`` once the run finished and every chunk was sent. Each event's id is its chunk's:
    a client that reconnects with ``Last-Event-ID`` continues after it."""

    async def events() -> AsyncIterator[str]:
        seen = after
        yield ": podium token stream\n\n"
        while not await request.is_disconnected():
            status = None
            try:
                batch = await client.tokens(run_id, after=seen)
                if not batch:  # idle: has the run ended? (read before the chunks: none comes after an end)
                    status = (await client.get(run_id)).status
                    batch = await client.tokens(run_id, after=seen)
            except StoreError:
                yield "event: unavailable\ndata: {}\n\n"
                await asyncio.sleep(1)
                continue
            for c in batch:
                seen = c.id
                kind = "reset" if c.text is None else "token"
                data = {"id": c.id, "step": c.step, "epoch": c.epoch, "offset": c.offset, "text": c.text}
                yield f"id: {c.id}\nevent: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
            if not batch:
                if status is not None and status.terminal:
                    yield f"event: end\ndata: {json.dumps({'status': status.value})}\n\n"
                    return
                yield ": keep-alive\n\n"
            await asyncio.sleep(STREAM_POLL)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def install_errors(app: FastAPI) -> None:
    """Map Podium's error tree to HTTP: a caller's mistake is 4xx with a message, never a 500."""

    def reply(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return reply(exc.status, exc.message, exc.headers)

    @app.exception_handler(PodiumError)
    async def podium_error(request: Request, exc: PodiumError) -> JSONResponse:
        if isinstance(exc, PermissionDeniedError):
            return reply(403, str(exc))
        if isinstance(exc, RunNotFoundError | UnknownFlowError | NotFoundError | PromptNotFoundError):
            return reply(404, str(exc))
        if isinstance(exc, PolicyViolationError):  # podium.policies refused the start or the decision
            return reply(403, str(exc))
        if isinstance(exc, InvalidStateError):
            return reply(409, str(exc))
        if isinstance(exc, InvalidInputError):
            return reply(422, str(exc))
        if isinstance(exc, UsageError):
            return reply(400, str(exc))
        if isinstance(exc, StoreError):
            return reply(503, "the store is unavailable; retry later", {"Retry-After": "1"})
        return reply(500, f"{type(exc).__name__}: {exc}")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:3]:
            loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
            parts.append(f"{loc}: {err.get('msg')}")
        return reply(422, "invalid request: " + "; ".join(parts))
