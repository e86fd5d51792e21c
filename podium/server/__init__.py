"""``podium serve``: an HTTP server for webhooks (``POST /hooks/NAME``) and health checks (``GET /healthz``).

Needs the ``server`` extra (``pip install podium[server]``: FastAPI and uvicorn). It steers runs only through
the public ``podium.Client``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app, serve

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    # FastAPI loads only for ``podium serve``: ``podium.server.mcp`` (podium mcp) needs only podium[mcp].
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
