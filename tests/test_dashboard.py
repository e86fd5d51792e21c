"""The web dashboard in a real headless Chromium (Playwright, Debian's chromium) against a real uvicorn server
on 127.0.0.1 whose client embeds a worker: log in with a key, the live runs list, a run's timeline and graph,
approving from the inbox with an edited payload and seeing the run complete live; a viewer sees the inbox
but cannot decide; the charts and the ``/api/stats`` route behind them.

Without Playwright or Chromium these tests skip, except under CI (or PODIUM_REQUIRE_BROWSER=1), where they
fail: ``./dev test`` installs Chromium when it is missing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from conftest import WAIT_SECONDS, eventually, wait_status
from dashboard_app import Order, browser_missing, chromium, echo, order_flow, server

import podium
from podium.policies.access import ROLES

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

LIVE_MS = 5000
"""How soon a status change must show on a page that is already open (Playwright's auto-waiting bound)."""


@dataclass
class Dash:
    url: str
    client: podium.Client
    browser: Browser
    keys: dict[str, str]
    errors: list[str] = field(default_factory=list)

    async def login(self, role: str, route: str = "") -> Page:
        """A fresh browser context (its own localStorage and connections) signed in with ``role``'s key."""
        from playwright.async_api import expect

        context = await self.browser.new_context(viewport={"width": 1400, "height": 1000})
        page = await context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{role}: {exc}"))
        await page.goto(self.url + "/" + route)
        await page.fill("#login-key", self.keys[role])
        await page.click("#login-submit")
        await expect(page.locator("#who")).to_have_text(f"{role}-ann ({role})")
        return page


@pytest.fixture
async def dash(tmp_path: Path) -> AsyncIterator[Dash]:
    reason = browser_missing()
    if reason is not None:
        if os.environ.get("CI") or os.environ.get("PODIUM_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.async_api import expect

    expect.set_options(timeout=WAIT_SECONDS * 1000)
    async with server(f"sqlite:///{tmp_path}/podium.db") as (url, client):
        keys = {role: (await client.create_key(f"{role}-ann", role))[1] for role in ROLES}
        async with chromium() as browser:
            d = Dash(url, client, browser, keys)
            yield d
            assert d.errors == [], "uncaught errors in the page's scripts"


async def test_open_a_run_approve_it_from_the_inbox_with_an_edited_payload_and_see_it_complete(
    dash: Dash,
) -> None:
    from playwright.async_api import expect

    h = await dash.client.start(order_flow, Order(id="A-7", amount=100.0))
    page = await dash.login("approver")

    # The runs list (after signing in), the run waiting for its approval.
    row = page.locator(f'tr[data-run="{h.id}"]')
    await expect(row.locator(".badge")).to_have_text("waiting")
    await row.locator("a.run-link").click()
    await expect(page.locator("#run-status")).to_have_text("waiting")
    await expect(page.locator("#run-input")).to_contain_text('"A-7"')
    await expect(page.locator("#run-cost")).to_contain_text("1 model call(s)")

    # The timeline: a bar per position, the retried step marked, the approval an open bar.
    gantt = page.locator("#gantt")
    await expect(gantt.locator(".g-row[data-position]")).to_have_count(6)
    fetch = gantt.locator('.g-row[data-position="0"]')
    await expect(fetch).to_contain_text("dash.fetch_order")
    await expect(fetch.locator(".retries")).to_have_text("2×")
    await expect(fetch.locator("rect.retry-tick")).to_have_count(1)
    waiting = gantt.locator('.g-row[data-kind="approval"]')
    await expect(waiting).to_have_attribute("data-status", "waiting")
    await expect(waiting.locator("rect.bar.open")).to_have_count(1)

    # The graph: the fan's two branches side by side, a branch's steps one under the other.
    graph = page.locator("#graph-svg")
    for pos in ("0", "1.0.0", "1.0.1", "1.1.0", "2", "3"):
        await expect(graph.locator(f'g.node[data-position="{pos}"]')).to_have_count(1)
    for _ in range(100):  # the page may re-render (a live update) between finding a node and measuring it
        box = {
            pos: await graph.locator(f'g.node[data-position="{pos}"]').bounding_box()
            for pos in ("0", "1.0.0", "1.0.1", "1.1.0", "2")
        }
        if all(b is not None for b in box.values()):
            break
        await asyncio.sleep(0.05)
    assert all(b is not None for b in box.values())
    b = {k: v for k, v in box.items() if v is not None}
    assert b["1.0.0"]["x"] < b["1.1.0"]["x"] and b["1.0.0"]["y"] == b["1.1.0"]["y"]  # side by side
    assert b["1.0.1"]["y"] > b["1.0.0"]["y"] and b["1.0.1"]["x"] == b["1.0.0"]["x"]  # in sequence
    assert b["0"]["y"] < b["1.0.0"]["y"] and b["2"]["y"] > b["1.0.1"]["y"]

    # A step's output and errors on click (in the graph or the timeline).
    await graph.locator('g.node[data-position="1.1.0"]').click()
    await expect(page.locator('#step-detail pre[data-part="output"]')).to_have_text("120")
    await fetch.click()
    await expect(page.locator("#step-detail .attempts")).to_contain_text("ConnectionError")
    await expect(graph.locator('g.node[data-position="0"]')).to_have_class("node status-ok selected")

    # Two other people watch the run page and the runs list while the approver decides.
    run_watcher = await dash.login("viewer", f"#/runs/{h.id}")
    await expect(run_watcher.locator("#run-status")).to_have_text("waiting")
    list_watcher = await dash.login("viewer", "#/runs")
    await expect(list_watcher.locator(f'tr[data-run="{h.id}"] .badge')).to_have_text("waiting")

    # The inbox: invalid JSON is refused before anything is sent; an edited payload is approved.
    await page.click('#nav a[data-nav="inbox"]')
    card = page.locator(f'article.approval[data-run="{h.id}"]')
    await expect(card.locator("textarea")).to_have_value('{\n  "title": "order A-7",\n  "price": 120\n}')
    await card.locator("textarea").fill('{"title": "order A-7", "price": 99.5,')
    await card.locator("button.approve").click()
    await expect(card.locator(".message")).to_contain_text("not valid JSON")
    assert [a.run_id for a in await dash.client.pending_approvals(h.id)] == [h.id]  # nothing was sent
    await card.locator("textarea").fill('{"title": "order A-7, gift wrapped", "price": 99.5}')
    await card.locator("input.comment").fill("discount agreed by phone")
    await card.locator("button.approve").click()
    await expect(card.locator(".message")).to_contain_text("Approved with an edited payload")

    # Both open pages change live, without a reload.
    await expect(run_watcher.locator("#run-status")).to_have_text("completed", timeout=LIVE_MS)
    await expect(list_watcher.locator(f'tr[data-run="{h.id}"] .badge')).to_have_text(
        "completed", timeout=LIVE_MS
    )
    await expect(run_watcher.locator("#run-output")).to_contain_text("gift wrapped")
    await expect(run_watcher.locator('#gantt .g-row[data-kind="approval"]')).to_have_attribute(
        "data-status", "approved"
    )
    await expect(run_watcher.locator("#graph-svg circle.terminal.end")).to_have_class(
        "terminal end status-completed"
    )
    result = await dash.client.result(h.id, timeout=WAIT_SECONDS)
    assert result["price"] == 99.5 and result["result"] == "shipped order A-7, gift wrapped"
    decision = next(e for e in await dash.client.journal(h.id) if e.kind == "decision")
    assert isinstance(decision.data, dict)
    assert decision.data["by"] == "approver-ann (approver)"
    assert decision.data["comment"] == "discount agreed by phone" and decision.data["edited"]


async def test_a_viewer_sees_the_inbox_but_cannot_decide(dash: Dash) -> None:
    from playwright.async_api import expect

    h = await dash.client.start(order_flow, Order(id="B-2", amount=10.0))
    await wait_status(dash.client, h.id, podium.RunStatus.WAITING)
    page = await dash.login("viewer", "#/inbox")
    card = page.locator(f'article.approval[data-run="{h.id}"]')
    await expect(card.locator("textarea")).to_have_value('{\n  "title": "order B-2",\n  "price": 12\n}')
    await expect(page.locator("#inbox-readonly")).to_contain_text("viewer role")
    await expect(page.locator("#inbox-readonly")).to_contain_text("approver or admin")
    await expect(card.locator("button.approve")).to_be_disabled()
    await expect(card.locator("button.reject")).to_be_disabled()
    await expect(card.locator("textarea")).not_to_be_editable()
    await expect(page.locator("#inbox-count")).to_have_text("1")
    # An operator may start runs but not decide either; an admin may.
    operator = await dash.login("operator", "#/inbox")
    await expect(operator.locator(f'article.approval[data-run="{h.id}"] button.approve')).to_be_disabled()
    admin = await dash.login("admin", "#/inbox")
    await expect(admin.locator(f'article.approval[data-run="{h.id}"] button.approve')).to_be_enabled()
    assert [a.run_id for a in await dash.client.pending_approvals()] == [h.id]


async def test_sign_in_refuses_a_bad_key_and_sign_out_forgets_the_key(dash: Dash) -> None:
    from playwright.async_api import expect

    context = await dash.browser.new_context()
    page = await context.new_page()
    await page.goto(dash.url + "/#/inbox")
    await page.fill("#login-key", "pdm_not-a-key")
    await page.click("#login-submit")
    await expect(page.locator("#login-error")).to_contain_text("unknown or revoked")
    assert await page.evaluate("localStorage.getItem('podium.apiKey')") is None
    await page.fill("#login-key", dash.keys["viewer"])
    await page.click("#login-submit")
    await expect(page.locator("h1")).to_have_text("Approval inbox")  # where it was going
    assert await page.evaluate("localStorage.getItem('podium.apiKey')") == dash.keys["viewer"]
    await page.click("#logout")
    await expect(page.locator("#login-key")).to_be_visible()
    assert await page.evaluate("localStorage.getItem('podium.apiKey')") is None


async def test_the_runs_list_filters_by_flow_and_status_and_pages(dash: Dash) -> None:
    from playwright.async_api import expect

    ids = [(await dash.client.start(echo, f"e{i}")).id for i in range(28)]
    waiting = await dash.client.start(order_flow, Order(id="C-3", amount=1.0))
    for run_id in ids:
        await dash.client.result(run_id, timeout=WAIT_SECONDS)
    page = await dash.login("viewer")
    rows = page.locator("#runs-body tr")
    await expect(rows).to_have_count(25)
    await page.select_option("#filter-flow", "dash.echo")
    await expect(rows).to_have_count(25)
    await page.click("#page-older")
    await expect(rows).to_have_count(3)
    await expect(page.locator("#page-older")).to_be_disabled()
    await page.click("#page-newer")
    await expect(rows).to_have_count(25)
    await expect(page.locator("#page-newer")).to_be_disabled()
    await page.select_option("#filter-flow", "")
    await page.select_option("#filter-status", "waiting")
    await expect(rows).to_have_count(1)
    await expect(page.locator(f'#runs-body tr[data-run="{waiting.id}"] .badge')).to_have_text("waiting")
    # A run started while the newest page is open appears on it.
    await page.select_option("#filter-status", "")
    await expect(rows).to_have_count(25)
    await expect(page.locator("#live")).to_have_class("live on")  # the page's event stream is open
    late = await dash.client.start(echo, "late")
    await expect(page.locator(f'#runs-body tr[data-run="{late.id}"] .badge')).to_have_text(
        "completed", timeout=LIVE_MS
    )


async def test_the_charts_show_cost_and_latency_per_flow_and_model(dash: Dash) -> None:
    from playwright.async_api import expect

    h = await dash.client.start(order_flow, Order(id="D-4", amount=5.0))
    await wait_status(dash.client, h.id, podium.RunStatus.WAITING)
    await dash.client.approve(h.id)
    await dash.client.result(h.id, timeout=WAIT_SECONDS)
    page = await dash.login("viewer", "#/charts")
    for chart in ("chart-flow-cost", "chart-flow-latency"):
        await expect(page.locator(f'#{chart} li[data-series="dash.order"]')).to_be_visible()
    for chart in ("chart-model-cost", "chart-model-latency"):
        await expect(page.locator(f'#{chart} li[data-series="writer"]')).to_be_visible()
        await expect(page.locator(f"#{chart} svg circle")).to_have_count(1)
    await page.select_option("#chart-bucket", "day")
    await expect(page.locator('#chart-flow-cost li[data-series="dash.order"]')).to_be_visible()
    assert "bucket=day" in page.url


# -- GET /api/stats (no browser) --------------------------------------------------------------------------
@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[str, podium.Client, dict[str, str]]]:
    async with server(f"sqlite:///{tmp_path}/podium.db") as (url, client):
        _, key = await client.create_key("viewer-bo", "viewer")
        yield url, client, {"Authorization": f"Bearer {key}"}


async def test_stats_sum_cost_and_latency_per_flow_and_model(
    api: tuple[str, podium.Client, dict[str, str]],
) -> None:
    url, client, auth = api
    done = [await client.start(order_flow, Order(id=f"S-{i}", amount=float(i))) for i in range(2)]
    for h in done:
        await wait_status(client, h.id, podium.RunStatus.WAITING)
        await client.approve(h.id)
        await client.result(h.id, timeout=WAIT_SECONDS)
    await client.start(echo, "no model")
    async with httpx.AsyncClient(timeout=WAIT_SECONDS) as http:
        r = await eventually(
            lambda: http.get(url + "/api/stats", params={"bucket": "hour", "since": "2h"}, headers=auth),
            lambda r: r.json().get("runs") == 3,
            what="three runs in the stats",
        )
    st: dict[str, Any] = r.json()
    assert st["bucket"] == "hour" and st["size"] == 3600 and not st["truncated"]
    assert len(st["buckets"]) in (3, 4)  # 2 hours back, from the start of an hour, to this hour
    flows = st["totals"]["flows"]
    assert flows["dash.order"]["runs"] == 2 and flows["dash.order"]["completed"] == 2
    assert flows["dash.order"]["cost"] > 0 and flows["dash.order"]["latency_avg"] > 0
    assert flows["dash.echo"]["cost"] == 0
    writer = st["totals"]["models"]["writer"]
    assert writer["calls"] == 2 and writer["input_tokens"] > 0
    assert writer["cost"] == pytest.approx(flows["dash.order"]["cost"])
    usage = sum([(await client.usage(h.id)).cost for h in done])
    assert writer["cost"] == pytest.approx(usage)  # the same dollars the run pages show
    points = st["flows"]["dash.order"]
    assert sum(p["runs"] for p in points) == 2 and all(p["t"] in st["buckets"] for p in points)


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"bucket": "week"}, 400, "bucket must be 'hour' or 'day'"),
        ({"since": "yesterday"}, 400, "since must be epoch seconds"),
        ({"since": "4000000000"}, 400, "since must be in the past"),
        ({"since": "3000h"}, 400, "at most 1000 buckets"),
        ({"limit": 0}, 422, "limit"),
    ],
)
async def test_stats_refuse_bad_parameters_with_a_clear_4xx(
    api: tuple[str, podium.Client, dict[str, str]], params: dict[str, Any], status: int, message: str
) -> None:
    url, _, auth = api
    async with httpx.AsyncClient(timeout=WAIT_SECONDS) as http:
        r = await http.get(url + "/api/stats", params=params, headers=auth)
        assert r.status_code == status, r.text
        assert message in r.json()["error"]
        assert (await http.get(url + "/api/stats")).status_code == 401


async def test_the_dashboard_is_served_with_a_strict_content_security_policy(
    api: tuple[str, podium.Client, dict[str, str]],
) -> None:
    url, _, _ = api
    async with httpx.AsyncClient(timeout=WAIT_SECONDS) as http:
        page = await http.get(url + "/")
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        scripts = ("app.js", "util.js", "runs.js", "run.js", "gantt.js", "graph.js", "inbox.js", "charts.js")
        for name in scripts:
            r = await http.get(f"{url}/static/{name}")
            assert r.status_code == 200 and "javascript" in r.headers["content-type"], name
            assert "http://" not in r.text.replace("http://www.w3.org/2000/svg", "")  # nothing from elsewhere
            assert "https://" not in r.text
        assert (await http.get(url + "/static/app.css")).status_code == 200
        assert (await http.get(url + "/static/nope.js")).status_code == 404
        assert "/" not in (await http.get(url + "/openapi.json")).json()["paths"]


@podium.flow(name="dash.rated")
async def rated(ctx: podium.Context, text: str) -> str:
    """A model step whose completion carries prompt provenance, as a registry prompt's does."""

    async def call() -> dict[str, Any]:
        return {"model": "scripted", "served_by": "fast", "text": text.upper(),
                "prompt": {"name": "shout", "version": 2, "label": "production"}}  # fmt: skip

    return str((await ctx.step("model:fast", call))["text"])


async def test_thumbs_down_with_a_comment_on_a_step_is_stored_with_its_model_and_prompt(dash: Dash) -> None:
    from playwright.async_api import expect

    h = await dash.client.start(rated, "hello")
    await h.result()
    page = await dash.login("operator", f"#/runs/{h.id}")
    await expect(page.locator("#run-status")).to_have_text("completed")
    await page.locator('#gantt .g-row[data-position="0"]').click()
    box = page.locator('#step-detail .feedback[data-position="0"]')
    await expect(box.locator(".fb-send")).to_be_disabled()
    await box.locator(".fb-down").click()
    await expect(box.locator(".fb-down")).to_have_attribute("aria-pressed", "true")
    await box.locator(".fb-comment").fill("too loud")
    await box.locator(".fb-send").click()
    await expect(box.locator(".fb-status")).to_have_text("Thanks: feedback recorded.")
    await expect(box.locator(".fb-list li")).to_have_count(1)
    await expect(box.locator(".fb-list li")).to_contain_text("▼ bad “too loud”")
    await expect(box.locator(".fb-list li")).to_contain_text("prompt shout@2")
    (fb,) = await dash.client.feedback_list(h.id)
    assert (fb.step, fb.score, fb.comment, fb.served_by) == ("0", -1, "too loud", "fast")
    assert (
        fb.prompt == {"name": "shout", "version": 2, "label": "production"}
        and fb.author == "operator-ann (operator)"
    )

    viewer = await dash.login("viewer", f"#/runs/{h.id}")  # a viewer sees the feedback but may not give any
    await viewer.locator('#gantt .g-row[data-position="0"]').click()
    vbox = viewer.locator('#step-detail .feedback[data-position="0"]')
    await expect(vbox.locator(".fb-list li")).to_have_count(1)
    await vbox.locator(".fb-up").click()
    await vbox.locator(".fb-send").click()
    await expect(vbox.locator(".fb-status")).to_contain_text("may not do this")
    assert len(await dash.client.feedback_list(h.id)) == 1


async def test_the_evals_page_lists_evaluations_and_links_items_to_their_runs(dash: Dash) -> None:
    from playwright.async_api import expect

    await dash.client.datasets.create("greetings", description="what to shout")
    await dash.client.datasets.add("greetings", "hi", "HI", id="g1")
    await dash.client.datasets.add("greetings", "yo", "yo", id="g2")
    report = await dash.client.evaluate("greetings", rated, variants={"loud": {"arm": "A"}})
    page = await dash.login("viewer", "#/evals")
    row = page.locator(f'#evals tr[data-eval="{report.id}"]')
    await expect(row).to_contain_text("greetings v2")
    await expect(row.locator(".variant-scores")).to_have_text("loud 0.500")
    await expect(page.locator('#datasets tr[data-dataset="greetings"]')).to_contain_text("what to shout")
    await row.locator("a.eval-link").click()
    variant = page.locator('#eval-variants tr[data-variant="loud"]')
    await expect(variant).to_contain_text("arm=A")
    await expect(variant.locator(".score")).to_have_text("0.500")
    item = page.locator('#eval-items tr[data-item="loud/g2"]')
    await expect(item).to_contain_text("YO")
    await item.locator("a.run-link").click()
    await expect(page.locator("#run-status")).to_have_text("completed")
    await expect(page.locator("#run-output")).to_contain_text('"YO"')
