"""The REST API under ``/api``: runs, signals, approvals, journals, live event streams, flows, models, keys.

Every route needs an API key (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``; event streams also take
``?key=KEY`` because browsers' EventSource cannot set headers) whose role allows it:

| role | may |
|---|---|
| viewer | read runs, journals, timelines, the inbox, flows, models, costs, streams |
| operator | viewer + start, cancel and signal runs |
| approver | viewer + approve and reject |
| admin | everything, API keys included |

Mutating calls are journaled with who made them (the key's name). User mistakes are 4xx with a JSON body
``{"error": "..."}``; a store that is down is 503; never a 500 for a caller's mistake.
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

from ..client import ROLES, ApiKey, Client, Run, RunHandle
from ..errors import (
    InvalidInputError,
    InvalidStateError,
    PodiumError,
    RunNotFoundError,
    StoreError,
    UnknownFlowError,
    UsageError,
)
from ..workflow.flow import registered
from .stats import compute_stats

PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "operator": frozenset({"read", "run"}),
    "approver": frozenset({"read", "decide"}),
    "admin": frozenset({"read", "run", "decide", "admin"}),
}
assert set(PERMISSIONS) == set(ROLES)

STREAM_POLL = 0.2
"""How often an event stream looks for new journal events (seconds)."""


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


# -- request bodies ---------------------------------------------------------------------------------
class StartRun(BaseModel):
    flow: str = Field(description="The registered flow's name")
    input: Any = None
    key: str | None = Field(None, description="Idempotency key: starting again returns the same run")
    timeout: float | None = Field(None, gt=0, description="Seconds the whole run may take")


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


def _run(r: Run) -> dict[str, Any]:
    d = asdict(r)
    d["status"] = r.status.value
    return d


def create_api(client: Client) -> APIRouter:
    """The ``/api`` routes, all going through ``client``."""

    async def caller(request: Request) -> ApiKey:
        secret = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if not secret and auth.lower().startswith("bearer "):
            secret = auth[7:].strip()
        if not secret and request.url.path.endswith("/events"):
            secret = request.query_params.get("key")
        if not secret:
            raise ApiError(
                401, "an API key is required (Authorization: Bearer KEY)", {"WWW-Authenticate": "Bearer"}
            )
        key = await client.authenticate(secret)
        if key is None:
            raise ApiError(401, "unknown or revoked API key", {"WWW-Authenticate": "Bearer"})
        return key

    def allowed(permission: str) -> Callable[[ApiKey], Awaitable[ApiKey]]:
        async def check(key: Annotated[ApiKey, Depends(caller)]) -> ApiKey:
            if permission not in PERMISSIONS.get(key.role, frozenset()):
                raise ApiError(403, f"role {key.role!r} may not do this (needs {permission!r} permission)")
            return key

        return check

    Reader = Annotated[ApiKey, Depends(allowed("read"))]
    Operator = Annotated[ApiKey, Depends(allowed("run"))]
    Approver = Annotated[ApiKey, Depends(allowed("decide"))]
    Admin = Annotated[ApiKey, Depends(allowed("admin"))]

    def who(key: ApiKey) -> str:
        return f"{key.name} ({key.role})"

    api = APIRouter(prefix="/api")

    @api.get("/whoami", summary="The calling key")
    async def whoami(key: Reader) -> dict[str, Any]:
        return asdict(key)

    # -- runs -------------------------------------------------------------------------------------
    @api.get("/runs", summary="List runs, newest first")
    async def list_runs(
        key: Reader,
        status: Annotated[list[str] | None, Query()] = None,
        flow: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        before: Annotated[str | None, Query(description="The last id of the previous page")] = None,
    ) -> dict[str, Any]:
        runs = await client.list(status=status, flow=flow, limit=limit, before=before)
        nxt = runs[-1].id if len(runs) == limit else None
        return {"runs": [_run(r) for r in runs], "next": nxt}

    @api.post("/runs", status_code=201, summary="Start a run (idempotent with a key)")
    async def start_run(body: StartRun, key: Operator) -> JSONResponse:
        h: RunHandle[Any] = await client.start(
            body.flow, body.input, key=body.key, timeout=body.timeout, by=who(key)
        )
        run = await client.get(h.id)
        return JSONResponse({"run": _run(run), "created": h.created}, status_code=201 if h.created else 200)

    @api.get("/runs/{run_id}", summary="One run")
    async def get_run(run_id: str, key: Reader) -> dict[str, Any]:
        return _run(await client.get(run_id))

    @api.post("/runs/{run_id}/cancel", summary="Cancel a run (idempotent)")
    async def cancel_run(run_id: str, key: Operator) -> dict[str, Any]:
        return _run(await client.cancel(run_id, by=who(key)))

    @api.post("/runs/{run_id}/signals", summary="Send a signal")
    async def signal_run(run_id: str, body: SendSignal, key: Operator) -> dict[str, Any]:
        delivered = await client.signal(
            run_id,
            body.name,
            body.payload,
            key=body.key,
            transient=body.transient,
            milestone=body.milestone,
            by=who(key),
        )
        return {"delivered": delivered}

    @api.post(
        "/runs/{run_id}/approve", summary="Approve a pending approval, optionally with an edited payload"
    )
    async def approve(run_id: str, body: Decide, request: Request, key: Approver) -> dict[str, Any]:
        raw = await request.json() if await request.body() else {}
        kwargs: dict[str, Any] = {"by": who(key), "comment": body.comment}
        if isinstance(raw, dict) and "payload" in raw:
            kwargs["payload"] = body.payload
        decided = await client.approve(run_id, body.name, **kwargs)
        return {"approved": True, **asdict(decided)}

    @api.post("/runs/{run_id}/reject", summary="Reject a pending approval")
    async def reject(run_id: str, body: Decide, key: Approver) -> dict[str, Any]:
        decided = await client.reject(run_id, body.name, by=who(key), comment=body.comment)
        return {"approved": False, **asdict(decided)}

    @api.get("/runs/{run_id}/journal", summary="The run's journal")
    async def journal(run_id: str, key: Reader) -> dict[str, Any]:
        return {"events": [asdict(e) for e in await client.journal(run_id)]}

    @api.get("/runs/{run_id}/timeline", summary="The run's positions with outcomes and durations")
    async def timeline(run_id: str, key: Reader) -> dict[str, Any]:
        rows = await client.timeline(run_id)
        return {
            "rows": [{**asdict(r), "duration": r.duration} for r in rows],
            "usage": asdict(await client.usage(run_id)),
        }

    @api.get("/runs/{run_id}/events", summary="Live journal of one run (server-sent events)")
    async def run_events(run_id: str, request: Request, key: Reader) -> StreamingResponse:
        await client.get(run_id)  # 404 before the stream starts
        after = _last_event_id(request)

        async def poll(seen: int) -> list[dict[str, Any]]:
            return [
                {"id": e.seq, "run_id": run_id, **{k: v for k, v in asdict(e).items() if k != "seq"}}
                for e in await client.journal(run_id)
                if e.seq > seen
            ]

        return _stream(request, poll, after)

    @api.get("/runs/{run_id}/tokens", summary="The run's streamed model text, resumable (server-sent events)")
    async def run_tokens(run_id: str, request: Request, key: Reader) -> StreamingResponse:
        await client.get(run_id)  # 404 before the stream starts
        return _token_stream(client, run_id, request, _last_event_id(request))

    @api.get("/events", summary="Live journal of all runs (server-sent events)")
    async def all_events(request: Request, key: Reader) -> StreamingResponse:
        after = _last_event_id(request)
        if after == 0 and request.query_params.get("from") != "start":
            feed = await client.feed(0, limit=5000)  # from now on, unless asked for history
            while len(feed) == 5000:
                feed = await client.feed(feed[-1].seq, limit=5000)
            after = feed[-1].seq if feed else 0

        async def poll(seen: int) -> list[dict[str, Any]]:
            return [
                {"id": e.seq, **{k: v for k, v in asdict(e).items() if k != "seq"}}
                for e in await client.feed(seen)
            ]

        return _stream(request, poll, after)

    # -- inbox, flows, models, costs --------------------------------------------------------------
    @api.get("/approvals", summary="Approvals waiting for a decision (the inbox)")
    async def approvals(key: Reader, run_id: str | None = None) -> dict[str, Any]:
        return {"approvals": [asdict(a) for a in await client.pending_approvals(run_id)]}

    @api.get("/flows", summary="Flows this server knows")
    async def flows(key: Reader) -> dict[str, Any]:
        out = []
        for name, fl in sorted(registered().items()):
            try:
                schema = fl.input_adapter.json_schema() if fl.input_adapter is not None else None
            except Exception:
                schema = None
            out.append({"name": name, "doc": (fl.__doc__ or "").strip() or None, "input_schema": schema})
        return {"flows": out}

    @api.get("/models", summary="Configured models")
    async def models(key: Reader) -> dict[str, Any]:
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

    @api.get("/usage", summary="Model usage and cost per flow (newest runs)")
    async def usage(
        key: Reader, flow: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 500
    ) -> dict[str, Any]:
        totals = await client.usage_by_flow(flow=flow, limit=limit)
        return {"flows": {name: asdict(u) for name, u in sorted(totals.items())}}

    @api.get("/stats", summary="Cost and latency per flow and per model over time (hour or day buckets)")
    async def stats(
        key: Reader,
        bucket: str = "hour",
        since: Annotated[
            str | None, Query(description="Epoch seconds, an ISO 8601 time or a duration ago ('24h')")
        ] = None,
        flow: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10000, description="Newest runs read at most")] = 2000,
    ) -> dict[str, Any]:
        return await compute_stats(client, bucket=bucket, since=since, flow=flow, limit=limit)

    @api.get("/metrics", summary="Prometheus metrics of this server's worker (PODIUM_METRICS=1)")
    async def metrics(request: Request, key: Reader) -> Response:
        from ..observability.metrics import find_metrics, render_metrics

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

    # -- keys -------------------------------------------------------------------------------------
    @api.get("/keys", summary="API keys (admin)")
    async def list_keys(key: Admin) -> dict[str, Any]:
        return {"keys": [asdict(k) for k in await client.keys()]}

    @api.post("/keys", status_code=201, summary="Create an API key (admin); its secret is shown once")
    async def create_key(body: NewKey, key: Admin) -> dict[str, Any]:
        new, secret = await client.create_key(body.name, body.role)
        return {"key": asdict(new), "secret": secret}

    @api.delete("/keys/{key_id}", summary="Revoke an API key (admin)")
    async def revoke_key(key_id: str, key: Admin) -> dict[str, Any]:
        await client.revoke_key(key_id)
        return {"revoked": key_id}

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


def _token_stream(client: Client, run_id: str, request: Request, after: int) -> StreamingResponse:
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
        if isinstance(exc, RunNotFoundError | UnknownFlowError):
            return reply(404, str(exc))
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
