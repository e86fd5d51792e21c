"""What the dashboard tests and ``tests/dashboard_screenshot.py`` share: a flow worth looking at (a retried
step, a fan of two branches, a priced model call, an approval), a real uvicorn server on 127.0.0.1 whose
client embeds a worker (as ``podium serve --worker`` does), and Debian's Chromium under Playwright."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import uvicorn
from conftest import close_within, eventually, settings_for
from pydantic import BaseModel

import podium
from podium.server import create_app

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHROMIUM = os.environ.get("PODIUM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

MODELS: dict[str, Any] = {
    "models": {
        "writer": {
            "provider": "function",
            "model": "podium.testing:echo_model",
            "price": {"input": 3.0, "output": 15.0},
        }
    }
}


class Order(BaseModel):
    id: str
    amount: float


@podium.step(name="dash.fetch_order", retries=podium.RetryPolicy(max_attempts=3, initial=0.05, jitter=0))
async def fetch_order(order_id: str) -> dict[str, Any]:
    info = podium.current_step()
    if info is not None and info.attempt == 1:
        raise ConnectionError("the shop did not answer in time")
    return {"order": order_id, "items": 3}


@podium.step(name="dash.check_stock")
async def check_stock(order_id: str) -> bool:
    await asyncio.sleep(0.05)
    return True


@podium.step(name="dash.reserve")
async def reserve(order_id: str) -> str:
    await asyncio.sleep(0.03)
    return f"R-{order_id}"


@podium.step(name="dash.quote")
async def quote(amount: float) -> float:
    await asyncio.sleep(0.08)
    return round(amount * 1.2, 2)


@podium.step(name="dash.ship")
async def ship(payload: dict[str, Any]) -> str:
    return f"shipped {payload.get('title')}"


@podium.flow(name="dash.order")
async def order_flow(ctx: podium.Context, order: Order) -> dict[str, Any]:
    """Fetch an order, check stock and price it side by side, draft a note, ship after a human approves."""

    async def stock_then_reserve() -> str:
        await check_stock(order.id)
        return await reserve(order.id)

    await fetch_order(order.id)
    reservation, price = await ctx.gather(stock_then_reserve(), quote(order.amount))
    note = await ctx.model("writer").generate(f"Order {order.id}: {order.amount} EUR")
    decision = await ctx.approval("ship", payload={"title": f"order {order.id}", "price": price})
    if not decision:
        return {"shipped": False}
    shipped = await ship(decision.payload)
    return {
        "shipped": True,
        "result": shipped,
        "price": decision.payload["price"],
        "reservation": reservation,
        "note": note,
    }


@asynccontextmanager
async def server(url: str) -> AsyncIterator[tuple[str, podium.Client]]:
    """A real uvicorn server on 127.0.0.1 (a free port) and its client, which runs flows in-process."""
    client = podium.Client(settings_for(url).with_(config=MODELS))
    await client.open()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(client, {}), ws="none", log_level="warning"))
    task = asyncio.create_task(srv.serve(sockets=[sock]))
    try:
        await eventually(lambda: asyncio.sleep(0.01, srv.started), bool, what="the server to start")
        yield f"http://127.0.0.1:{port}", client
    finally:
        srv.should_exit = True
        await task
        sock.close()
        await close_within(client)


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; ./dev test installs it)"
    return None


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's headless Chromium (Playwright's own browser download is not available here)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless"])
        try:
            yield browser
        finally:
            await browser.close()


@podium.flow(name="dash.echo")
async def echo(ctx: podium.Context, text: str) -> str:
    return text
