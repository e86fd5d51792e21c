"""The FastAPI application behind ``podium serve``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from .. import __version__
from ..client import Client
from ..config import Settings
from ..errors import StoreError
from ..triggers.webhook import Hook, HookError, deliver

try:  # before anything else of this package imports FastAPI: a missing extra names the install command
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without the extra
    raise ImportError(f"podium serve needs FastAPI and uvicorn ({exc}): pip install podium[server]") from exc

from .api import create_api, install_errors
from .dashboard import install_dashboard

log = logging.getLogger("podium.server")

MAX_BODY = 1 << 20
"""Largest delivery accepted (bytes); larger ones are answered 413."""


def create_app(client: Client, hooks: Mapping[str, Hook], *, max_body: int = MAX_BODY) -> FastAPI:
    """The app: ``GET /healthz`` and ``POST /hooks/{name}`` for ``hooks``, steering runs through ``client``.

    The app opens ``client`` on start-up if it is not open yet; its maker closes it. Whether
    runs execute in this process depends on the client: ``Client(worker=True)`` embeds a worker, while a
    control-plane ``Client(worker=False)`` leaves them to a ``podium worker`` elsewhere.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await client.open()  # idempotent; whoever made the client closes it
        yield

    app = FastAPI(
        title="Podium",
        version=__version__,
        summary="Start, watch and steer durable AI workflows",
        lifespan=lifespan,
        docs_url=None,  # the interactive docs would load scripts from the internet
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install_errors(app)
    app.include_router(create_api(client))
    install_dashboard(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        return {"ok": True, "hooks": sorted(hooks)}

    @app.post("/hooks/{name}")
    async def hook(name: str, request: Request) -> JSONResponse:
        found = hooks.get(name)
        if found is None:
            return _error(404, f"no hook named {name!r}")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body:
            return _error(413, f"the body is larger than {max_body} bytes")
        body = await request.body()
        if len(body) > max_body:
            return _error(413, f"the body is larger than {max_body} bytes")
        try:
            result = await deliver(client, found, body, request.headers)
        except HookError as exc:
            return _error(exc.status, exc.message)
        except StoreError as exc:
            log.warning("hook %s: store error: %s", name, exc)
            return _error(503, "the store is unavailable; retry later")
        return JSONResponse(result, status_code=202)

    return app


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def serve(
    settings: Settings,
    hooks: Mapping[str, Hook],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    worker: bool = False,
) -> None:
    """Serve the app with uvicorn until interrupted. With ``worker``, runs also execute in this process
    (the flows of the hooks' modules); otherwise a separate ``podium worker`` must run them."""
    client = Client(settings, worker=worker)
    # PODIUM_LOG_FORMAT=json: uvicorn sets up no logging of its own, so its records become JSON lines too
    own_logs = None if settings.observability.log_format == "json" else uvicorn.config.LOGGING_CONFIG
    config = uvicorn.Config(
        create_app(client, hooks), host=host, port=port, log_level="info", ws="none", log_config=own_logs
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        await client.close()
