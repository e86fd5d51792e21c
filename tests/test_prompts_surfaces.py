"""The prompt registry as users reach it: ``podium prompts`` in real subprocesses, ``/api/prompts`` over a
real uvicorn server with keys and roles, and the dashboard's prompt pages in headless Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import WAIT_SECONDS

import podium
from podium.policies.access import ROLES

ROOT = Path(__file__).resolve().parent.parent


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path}/podium.db", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "podium.cli", "prompts", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_push_show_diff_label_rollback_split(tmp_path: Path) -> None:
    (tmp_path / "v1.txt").write_text("Classify this ticket: {{ ticket }}\n")
    (tmp_path / "v2.toml").write_text(
        'template = "Triage:\\n{{ ticket }}\\nOne word."\nsystem = "Be {{ tone }}."\nmodel = "fast"\n'
        "[params]\ntemperature = 0\n"
    )
    r = cli(tmp_path, "push", str(tmp_path / "v1.txt"), "triage", "--label", "production")
    assert r.returncode == 0, r.stderr
    assert "triage@1  new version 1" in r.stdout and "label production" in r.stdout
    r = cli(tmp_path, "push", str(tmp_path / "v2.toml"), "triage", "--label", "staging")
    assert r.returncode == 0 and "triage@2  new version 2" in r.stdout, r.stderr
    r = cli(tmp_path, "push", str(tmp_path / "v1.txt"), "triage")
    assert "unchanged: same content as version 1" in r.stdout
    assert cli(tmp_path, "push", "--template", "Hi {{ name }}", "greet").returncode == 0

    r = cli(tmp_path, "list")
    assert "triage" in r.stdout and "production→1, staging→2" in r.stdout and "greet" in r.stdout
    r = cli(tmp_path, "show", "triage:staging")
    assert "triage@2" in r.stdout and "Be {{ tone }}." in r.stdout and "ticket, tone" in r.stdout
    r = cli(tmp_path, "show", "triage@1", "--json")
    assert '"template": "Classify this ticket: {{ ticket }}\\n"' in r.stdout

    r = cli(tmp_path, "diff", "triage", "production", "2")
    assert r.returncode == 0
    assert "-Classify this ticket: {{ ticket }}" in r.stdout and "+Triage:" in r.stdout

    assert "production of triage: 1 → 2" in cli(tmp_path, "label", "triage", "2", "production").stdout
    r = cli(tmp_path, "rollback", "triage")
    assert r.returncode == 0 and "rolled back: 2 → 1" in r.stdout
    r = cli(tmp_path, "split", "triage", "production=90", "staging=10")
    assert r.returncode == 0 and "production 90%, staging 10%" in r.stdout
    assert "production 90%, staging 10%" in cli(tmp_path, "list").stdout
    assert "no split" in cli(tmp_path, "split", "triage", "--off").stdout

    # Mistakes: one clear line on stderr, exit 1, no traceback, nothing changed.
    for args, message in [
        (("show", "nope"), "no prompt named 'nope'"),
        (("rollback", "triage"), "no earlier version to roll back to"),
        (("split", "triage", "production=80"), "must sum to 100, not 80"),
        (("split", "triage", "production"), "write each arm as LABEL=PERCENT"),
        (("push", "--template", "{{ oops", "triage"), "invalid template (line 1)"),
        (("label", "triage", "9", "production"), "has no version 9"),
        (("push", str(tmp_path / "missing.txt"), "x"), "missing.txt"),
    ]:
        r = cli(tmp_path, *args)
        assert r.returncode == 1 and message in r.stderr, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
    assert "production→1, staging→2" in cli(tmp_path, "list").stdout


def test_podium_show_prints_the_prompt_version_and_arm_a_run_used(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(
        "import podium\n\n"
        "@podium.flow(name='cli.triage')\n"
        "async def triage(ctx: podium.Context, ticket: str) -> str:\n"
        "    return (await ctx.prompt('triage')).render(ticket=ticket)\n"
    )
    env = {**os.environ, "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path}/podium.db", "COLUMNS": "200"}

    def podium_cmd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "podium.cli", *args], cwd=tmp_path, env=env, capture_output=True, text=True
        )

    assert (
        cli(tmp_path, "push", "--template", "A: {{ ticket }}", "triage", "--label", "production").returncode
        == 0
    )
    assert (
        cli(tmp_path, "push", "--template", "B: {{ ticket }}", "triage", "--label", "candidate").returncode
        == 0
    )
    assert cli(tmp_path, "split", "triage", "production=50", "candidate=50").returncode == 0
    r = podium_cmd("run", "flows.py:triage", "--input", '"printer"', "--key", "k1")
    assert r.returncode == 0, r.stderr
    arm = "production" if "A: printer" in r.stdout else "candidate"
    version = 1 if arm == "production" else 2
    runs = podium_cmd("runs").stdout
    [run_id] = [w for w in runs.split() if len(w) == 24 and all(c in "0123456789abcdef" for c in w)]
    r = podium_cmd("show", run_id)
    assert f"triage@{version} ({arm}, arm {arm})" in r.stdout, r.stdout
    # A pin beats the split.
    r = podium_cmd("run", "flows.py:triage", "--input", '"x"', "--pin", "prompt:triage=2")
    assert r.returncode == 0 and "B: x" in r.stdout, r.stderr


# -- the REST API ----------------------------------------------------------------------------------


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Any]:
    from conftest import close_within, settings_for
    from test_api import Api, serving

    client = podium.Client(settings_for(f"sqlite:///{tmp_path}/podium.db"))
    await client.open()
    keys = {role: (await client.create_key(f"{role}-bot", role))[1] for role in ROLES}
    try:
        async with serving(client) as (url, http):
            yield Api(url, client, http, keys)
    finally:
        await close_within(client)


async def test_api_reads_for_viewers_and_writes_for_operators_and_admins(api: Any) -> None:
    body = {"template": "Classify: {{ ticket }}", "label": "production", "params": {"temperature": 0}}
    r = await api.post("/api/prompts/triage/versions", body, role="operator")
    assert r.status_code == 201 and r.json()["created"] and r.json()["prompt"]["version"] == 1
    r = await api.post("/api/prompts/triage/versions", body, role="operator")
    assert r.status_code == 200 and not r.json()["created"]
    r = await api.post("/api/prompts/triage/versions", {"template": "Triage: {{ ticket }}"}, role="admin")
    assert r.status_code == 201 and r.json()["prompt"]["version"] == 2

    for role in ("viewer", "approver"):
        r = await api.post("/api/prompts/triage/versions", {"template": "x"}, role=role)
        assert r.status_code == 403, role
        r = await api.http.put(
            api.url + "/api/prompts/triage/labels/production", json={"version": 2}, headers=api.auth(role)
        )
        assert r.status_code == 403
    assert (
        await api.post("/api/prompts/triage/labels/production/rollback", role="viewer")
    ).status_code == 403
    r = await api.http.get(api.url + "/api/prompts")
    assert r.status_code == 401

    [info] = (await api.get("/api/prompts")).json()["prompts"]
    assert (info["name"], info["latest"], info["labels"]) == ("triage", 2, {"production": 1})
    r = await api.http.put(
        api.url + "/api/prompts/triage/labels/production", json={"version": 2}, headers=api.auth("operator")
    )
    assert r.json() == {"label": "production", "version": 2}
    assert (await api.get("/api/prompts/triage/versions/production")).json()["version"] == 2
    assert (await api.get("/api/prompts/triage/versions/1")).json()["template"] == "Classify: {{ ticket }}"
    diff = (await api.get("/api/prompts/triage/diff", params={"a": "1", "b": "production"})).json()["diff"]
    assert "-Classify: {{ ticket }}" in diff and "+Triage: {{ ticket }}" in diff
    r = await api.post("/api/prompts/triage/labels/production/rollback", role="operator")
    assert r.json() == {"label": "production", "version": 1}
    r = await api.http.put(
        api.url + "/api/prompts/triage/split",
        json={"arms": {"production": 90, "2": 10}},
        headers=api.auth("admin"),
    )
    assert r.json() == {"split": {"production": 90, "2": 10}}
    detail = (await api.get("/api/prompts/triage")).json()
    assert [v["version"] for v in detail["versions"]] == [1, 2] and detail["split"] == {
        "production": 90,
        "2": 10,
    }
    assert [(m["from_version"], m["to_version"], m["rollback"]) for m in detail["history"]["production"]] == [
        (None, 1, False),
        (1, 2, False),
        (2, 1, True),
    ]
    r = await api.http.delete(api.url + "/api/prompts/triage/split", headers=api.auth("operator"))
    assert r.json() == {"split": None}

    # Mistakes are clear 4xx answers.
    assert (await api.get("/api/prompts/nope")).status_code == 404
    assert (await api.get("/api/prompts/triage/versions/9")).status_code == 404
    r = await api.post("/api/prompts/triage/versions", {"template": "{{ x "}, role="operator")
    assert r.status_code == 400 and "invalid template" in r.json()["error"]
    r = await api.http.put(
        api.url + "/api/prompts/triage/split", json={"arms": {"production": 50}}, headers=api.auth("admin")
    )
    assert r.status_code == 400 and "sum to 100" in r.json()["error"]
    r = await api.post("/api/prompts/triage/versions", {"templat": "x"}, role="operator")
    assert r.status_code == 422


async def test_api_tenant_keys_work_in_their_tenants_prompts(api: Any) -> None:
    secrets = {}
    for name, role, tenant in [("acme-op", "operator", "acme"), ("acme-ro", "viewer", "acme")]:
        secrets[name] = (await api.client.create_key(name, role, tenant=tenant))[1]

    def auth(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secrets[name]}"} if name in secrets else api.auth(name)

    async def call(method: str, path: str, who: str, body: Any = None) -> Any:
        return await api.http.request(method, api.url + path, json=body, headers=auth(who))

    shared = {"template": "Shared: {{ ticket }}", "label": "production"}
    assert (await call("POST", "/api/prompts/triage/versions", "operator", shared)).status_code == 201
    # acme reads the shared prompt until it has its own; its label moves need one of its own.
    r = await call("GET", "/api/prompts/triage/versions/production", "acme-ro")
    assert r.json()["template"] == "Shared: {{ ticket }}"
    r = await call("PUT", "/api/prompts/triage/labels/staging", "acme-op", {"version": 1})
    assert r.status_code == 404 and "of its own" in r.json()["error"]
    own = {"template": "ACME: {{ ticket }}", "label": "production"}
    r = await call("POST", "/api/prompts/triage/versions", "acme-op", own)
    assert r.status_code == 201 and r.json()["created"] and r.json()["prompt"]["version"] == 1
    assert (await call("POST", "/api/prompts/triage/versions", "acme-ro", own)).status_code == 403
    r = await call("GET", "/api/prompts/triage/versions/production", "acme-ro")
    assert r.json()["template"] == "ACME: {{ ticket }}"
    r = await call("GET", "/api/prompts/triage/versions/production", "viewer")  # a platform key: shared
    assert r.json()["template"] == "Shared: {{ ticket }}"
    r = await call("GET", "/api/prompts/triage/versions/production?tenant=acme", "viewer")
    assert r.json()["template"] == "ACME: {{ ticket }}"
    assert (await call("GET", "/api/prompts?tenant=globex", "acme-ro")).status_code == 403
    [info] = (await call("GET", "/api/prompts", "acme-ro")).json()["prompts"]
    assert (info["name"], info["shared"]) == ("triage", False)
    assert (await api.client.prompts.get("triage")).template == "Shared: {{ ticket }}"


def test_cli_tenant_option(tmp_path: Path) -> None:
    assert (
        cli(tmp_path, "push", "--template", "Shared {{ t }}", "triage", "--label", "production").returncode
        == 0
    )
    r = cli(
        tmp_path, "push", "--template", "ACME {{ t }}", "triage", "--label", "production", "--tenant", "acme"
    )
    assert r.returncode == 0 and "triage@1  new version 1" in r.stdout, r.stderr
    assert "ACME {{ t }}" in cli(tmp_path, "show", "triage", "--tenant", "acme").stdout
    assert "Shared {{ t }}" in cli(tmp_path, "show", "triage", "--tenant", "globex").stdout  # falls back
    assert "Shared {{ t }}" in cli(tmp_path, "show", "triage").stdout


# -- the dashboard ---------------------------------------------------------------------------------


async def test_dashboard_lists_diffs_edits_and_moves_labels(tmp_path: Path) -> None:
    from dashboard_app import browser_missing, chromium, server

    reason = browser_missing()
    if reason is not None:
        if os.environ.get("CI") or os.environ.get("PODIUM_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.async_api import expect

    expect.set_options(timeout=WAIT_SECONDS * 1000)
    errors: list[str] = []
    async with server(f"sqlite:///{tmp_path}/podium.db") as (url, client):
        keys = {role: (await client.create_key(f"{role}-ann", role))[1] for role in ROLES}
        await client.prompts.push("triage", "Classify this ticket: {{ ticket }}", label="production")
        await client.prompts.push("triage", "Triage the ticket below.\n{{ ticket }}", label="staging")
        async with chromium() as browser:

            async def login(role: str) -> Any:
                context = await browser.new_context(viewport={"width": 1400, "height": 1000})
                page = await context.new_page()
                page.on("pageerror", lambda exc: errors.append(f"{role}: {exc}"))
                await page.goto(url + "/#/prompts")
                await page.fill("#login-key", keys[role])
                await page.click("#login-submit")
                await expect(page.locator("#who")).to_have_text(f"{role}-ann ({role})")
                return page

            page = await login("operator")
            row = page.locator('tr[data-prompt="triage"]')
            await expect(row).to_contain_text("production → 1")
            await row.locator("a.prompt-link").click()
            await expect(page.locator("#prompt-name")).to_have_text("triage")
            await expect(page.locator("#versions-body tr")).to_have_count(2)
            await expect(page.locator('#prompt-labels .plabel[data-label="production"]')).to_have_text(
                "production → 1"
            )
            # The diff of production (1) and the latest (2).
            await expect(page.locator("#diff .d-del")).to_have_text("-Classify this ticket: {{ ticket }}\n")
            await expect(page.locator("#diff .d-add").first).to_have_text("+Triage the ticket below.\n")
            # Clicking a version shows its template.
            await page.locator('#versions-body tr[data-version="2"] .version-link').click()
            await expect(page.locator("#prompt-view")).to_have_text("Triage the ticket below.\n{{ ticket }}")

            # Edit and push a new version with a label; then move production to it and roll it back.
            await page.fill("#editor", "Triage this, briefly:\n{{ ticket }}")
            await page.fill("#editor-label", "candidate")
            await page.click("#push")
            await expect(page.locator("#push-message")).to_have_text("Pushed version 3 (candidate).")
            await expect(page.locator("#versions-body tr")).to_have_count(3)
            assert (await client.prompts.get("triage", label="candidate")).template.startswith("Triage this")
            await page.select_option("#label-version", "3")
            await page.click("#label-move")
            await expect(page.locator("#label-message")).to_have_text("production → v3")
            await expect(page.locator('#prompt-labels .plabel[data-label="production"]')).to_have_text(
                "production → 3"
            )
            assert (await client.prompts.get("triage")).version == 3
            await page.click("#rollback")
            await expect(page.locator("#label-message")).to_have_text("production rolled back to v1")
            assert (await client.prompts.get("triage")).version == 1
            await page.fill("#editor", "Broken {{ ticket ")
            await page.click("#push")
            await expect(page.locator("#push-message")).to_contain_text("invalid template (line 1)")

            # A viewer reads but cannot change anything.
            viewer = await login("viewer")
            await viewer.goto(url + "/#/prompts/triage")
            await expect(viewer.locator("#prompt-readonly")).to_be_visible()
            await expect(viewer.locator("#versions-body tr")).to_have_count(3)
            await expect(viewer.locator("#push")).to_be_disabled()
            await expect(viewer.locator("#label-move")).to_be_disabled()
    assert errors == [], "uncaught errors in the page's scripts"
