"""Authorization of the HTTP API: each route declares the action it needs; one dependency checks it.

A route under ``/api`` declares its action (one of ``podium.policies.access.ACTIONS``) with
``openapi_extra=needs(ACTION)`` and takes the caller as ``me: Caller``, where
``Caller = Annotated[ActingClient, Depends(caller_dependency(client))]``:

```python
@api.get("/datasets", summary="...", openapi_extra=needs("view"))
async def datasets(me: Caller) -> dict[str, Any]:
    return {"runs": [r.id for r in await me.list()]}     # me: an ActingClient of the key's principal
```
The dependency answers 401 without a valid key (unknown, revoked or expired), 403 when the key's role
lacks the action; ``me`` (``podium.acting.ActingClient``) then checks tenant and ``[[permissions]]`` rules per
run. ``check_routes`` refuses a router with a route under ``/api`` that declares no action, and the test
matrix (tests/test_authz_matrix.py) runs every declared route for every role.
"""

# No ``from __future__ import annotations``: FastAPI reads the dependency annotations at definition time.

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request

from ..acting import ActingClient
from ..client import Client
from ..policies.access import ACTIONS, ROLE_ACTIONS


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


ACTION = "x-podium-action"
"""The route metadata (``openapi_extra``) naming the action a route needs (see ``needs``)."""


def needs(action: str) -> dict[str, Any]:
    """The ``openapi_extra`` of a route that needs ``action`` (one of ``podium.policies.access.ACTIONS``):
    ``@api.get("/x", openapi_extra=needs("view"))``. Its ``Caller`` dependency checks it."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    return {ACTION: action}


def route_action(route: object) -> str | None:
    """The action a route declares with ``needs``, or None."""
    extra = getattr(route, "openapi_extra", None) or {}
    action = extra.get(ACTION)
    return action if isinstance(action, str) else None


def check_routes(router: APIRouter) -> None:
    """Refuse (``RuntimeError``) a router with a route under ``/api`` that declares no action."""
    for route in router.routes:
        path = getattr(route, "path", "")
        if path.startswith("/api") and route_action(route) is None:
            raise RuntimeError(f"route {path} declares no action: add openapi_extra=needs(ACTION)")


def caller_dependency(client: Client) -> Callable[[Request], Awaitable[ActingClient]]:
    """The dependency giving the calling key's ``ActingClient``:
    ``Caller = Annotated[ActingClient, Depends(caller_dependency(client))]``."""

    async def caller(request: Request) -> ActingClient:
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
            raise ApiError(401, "unknown, revoked or expired API key", {"WWW-Authenticate": "Bearer"})
        action = route_action(request.scope.get("route"))
        if action is None:  # check_routes refuses such a route; never act without knowing the action
            raise ApiError(403, "this route declares no action")
        if action not in ROLE_ACTIONS[key.role]:
            raise ApiError(403, f"role {key.role!r} may not do this (needs the {action!r} action)")
        return client.acting_as(key)

    return caller
