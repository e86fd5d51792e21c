"""Make docs/img/dashboard-run.png: the dashboard's run page of a finished run (the flow of the dashboard
tests: a retried step, a fan of two branches, a model call, an approval given with an edited payload).

    .venv/bin/python tests/dashboard_screenshot.py [OUTPUT.png]

Needs Playwright and Debian's chromium, like tests/test_dashboard.py.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from conftest import wait_status
from dashboard_app import Order, browser_missing, chromium, order_flow, server

import podium

OUT = Path(__file__).resolve().parent.parent / "docs" / "img" / "dashboard-run.png"


async def main(out: Path) -> None:
    reason = browser_missing()
    if reason is not None:
        raise SystemExit(reason)
    with tempfile.TemporaryDirectory() as tmp:
        async with server(f"sqlite:///{tmp}/podium.db") as (url, client):
            _, key = await client.create_key("ann", "approver")
            h = await client.start(order_flow, Order(id="A-7", amount=100.0))
            await wait_status(client, h.id, podium.RunStatus.WAITING)
            await asyncio.sleep(0.4)  # the approval's wait is visible as a bar of its own
            edited = {"title": "order A-7, gift wrapped", "price": 99.5}
            await client.approve(h.id, payload=edited, by="ann (approver)", comment="discount agreed")
            await client.result(h.id, timeout=20)
            async with chromium() as browser:
                page = await browser.new_page(viewport={"width": 1400, "height": 900})
                await page.goto(url + "/")
                await page.fill("#login-key", key)
                await page.click("#login-submit")
                await page.wait_for_selector("#runs-body tr")
                await page.goto(f"{url}/#/runs/{h.id}")
                await page.wait_for_selector("#graph-svg circle.terminal.end.status-completed")
                await page.click('#gantt .g-row[data-position="0"]')
                await page.wait_for_selector("#step-detail .attempts")
                out.parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(out), full_page=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
