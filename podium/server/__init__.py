"""``podium serve``: an HTTP server for webhooks (``POST /hooks/NAME``) and health checks (``GET /healthz``).

Needs the ``server`` extra (``pip install podium[server]``: FastAPI and uvicorn). It steers runs only through
the public ``podium.Client``.
"""

from __future__ import annotations

from .app import create_app, serve

__all__ = ["create_app", "serve"]
