"""The web dashboard ``podium serve`` shows at ``/``: static files, no build step, nothing from the internet.

``index.html`` loads ES modules from ``/static/`` that talk to the REST API under ``/api`` with the API key
the user pasted (kept in the browser's localStorage). The page is sent with a Content-Security-Policy that
allows scripts, styles and connections to this origin only, and the scripts only ever insert text (never
HTML) built from API data.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard: ``GET /`` (the page) and ``/static/*`` (its scripts and styles)."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=HEADERS)
