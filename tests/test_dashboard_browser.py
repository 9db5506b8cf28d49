"""The dashboard in a real browser, against the real API and scheduler processes.

A project is generated and started with `make run`; Playwright drives Debian's Chromium (by
its executable path: Playwright's own browser download is not used). The walk: sign in by
keyboard, see the jobs, pause one and see it stop firing, watch a change made elsewhere appear
without a reload, run a job now with JSON input and watch the run finish, open a failed run's
traceback, reschedule with an invalid cron and read the error, sign out. Every page is
photographed at 1280 and 375 px wide into build/dashboard-screenshots/ (the test's
artifacts); with UPDATE_SCREENSHOTS=1 the documented ones also replace the pictures in the
generated project's docs/images/.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import TEMPLATE, free_port, generate, record_figure, record_time, timed
from tests.test_generated_projects import (
    Generated,
    clean_environment,
    make_run,
    readiness,
    wait_for,
)

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# No sandbox (tests run as root), no GPU, and none of the browser's own traffic: it talks to
# 127.0.0.1 only.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = TEMPLATE / "build" / "dashboard-screenshots"
DOC_IMAGES = TEMPLATE / "{{cookiecutter.project_slug}}" / "docs" / "images"
TOKEN = "browser-test-token-" + "t" * 24
LIVE_WITHIN_SECONDS = 2.0
# The pages whose pictures the generated project's docs show.
DOCUMENTED = ("overview", "jobs", "job", "execution")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    with timed("dashboard: generate and uv sync --locked"):
        path = generate(tmp_path_factory.mktemp("dashboard"))
        generated = Generated("dashboard", {}, path, clean_environment())
        result = generated.run("uv", "sync", "--locked", env={"UV_COMPILE_BYTECODE": "1"})
    assert result.returncode == 0, result.stderr
    return generated


@pytest.fixture(scope="module")
def service(project: Generated, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make run` on free ports, where the daily report cannot be written (a failing job).

    Its folder is taken by a plain file, so writing the report raises an error no job code
    expects, and the run fails with a traceback.
    """
    (project.path / "data").mkdir(exist_ok=True)
    (project.path / "data" / "reports").write_text("not a folder\n")
    port = free_port()
    env = {
        f"{project.prefix}API_PORT": str(port),
        f"{project.prefix}API_TOKEN": TOKEN,
        f"{project.prefix}HEARTBEAT_INTERVAL_SECONDS": "1",
        f"{project.prefix}HEARTBEAT_STALE_AFTER_SECONDS": "4",
        f"{project.prefix}SCHEDULER_METRICS_PORT": "0",
    }
    log = tmp_path_factory.mktemp("dashboard-run") / "make-run.log"
    with make_run(project, env, log):
        seconds = wait_for(lambda: readiness(env, project.prefix) == 200, 90, "healthy")
        record_time("dashboard: make run, start to healthy", seconds)
        yield f"http://127.0.0.1:{port}"


def api(base: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"{base}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def shoot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"] if page.viewport_size else 0
    page.screenshot(path=SCREENSHOTS / f"{name}-{width}.png", full_page=True)
    if width == 1280 and name in DOCUMENTED and os.environ.get("UPDATE_SCREENSHOTS") == "1":
        # Every generated project carries these: JPEG keeps them a tenth of the PNG's size.
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=DOC_IMAGES / f"dashboard-{name}.jpg", type="jpeg", quality=80)


def fits_the_width(page: Page) -> bool:
    """Nothing but a table's own scroll box is wider than the window."""
    overflow: bool = page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"
    )
    return not overflow


def test_the_dashboard_walk_in_a_real_browser(service: str, browser: Browser) -> None:
    ticker = {
        "id": "browser_ticker",
        "name": "Ticks every second",
        "function": "cleanup_old_records",
        "schedule": {"kind": "interval", "seconds": 1},
    }
    assert api(service, "POST", "/api/jobs", ticker)["status"] == "applied"
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=service)
    page = context.new_page()

    # Signed out, the dashboard sends the browser to the sign-in page; sign in by keyboard.
    page.goto("/dashboard/jobs")
    expect(page).to_have_url(f"{service}/dashboard/sign-in?next=%2Fdashboard%2Fjobs")
    shoot(page, "sign-in")
    expect(page.locator("#token")).to_be_focused()
    page.keyboard.type(TOKEN)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{service}/dashboard/jobs")
    rows = page.locator("#jobs tbody tr")
    for job_id in ("browser_ticker", "daily_report", "sync_external_data", "system_maintenance"):
        expect(rows.filter(has=page.get_by_role("link", name=job_id, exact=True))).to_have_count(1)
    shoot(page, "jobs")

    page.goto("/dashboard")
    expect(page.locator("p.verdict")).to_contain_text("Healthy")
    expect(page.locator("#overview")).to_contain_text("leader")
    shoot(page, "overview")

    # A live refresh changes only what changed: the instance's id cell stays the same node
    # (a mark set on it survives), and a selection of it stays selected. (Not the heartbeat's
    # age: refreshed and written once a second each, it can read the same for a while.)
    selected = page.evaluate(
        """() => {
            const cell = document.querySelector("#overview tbody th");
            cell.liveMark = "kept";
            getSelection().selectAllChildren(cell);
            return getSelection().toString();
        }"""
    )
    assert selected.strip(), "the instance's id was not selected"

    def refreshes() -> int:
        return int(page.evaluate("() => document.body.dataset.liveUpdates || '0'"))

    # (Polled from here: the page's CSP forbids the eval a wait_for_function needs.)
    seen = refreshes()
    wait_for(lambda: refreshes() >= seen + 2, 10, "two live refreshes of the overview")
    assert page.evaluate('() => document.querySelector("#overview tbody th").liveMark') == "kept"
    assert page.evaluate("getSelection().toString()") == selected

    # Pause the ticker: the page says so, and no scheduled time after the pause runs.
    page.goto("/dashboard/jobs/browser_ticker")
    expect(page.locator("#recent-title ~ .scroll tbody tr").first).to_contain_text("succeeded")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("p.flash")).to_contain_text("applied")
    expect(page.locator("#job-state .state")).to_have_text("paused")
    # A time claimed ahead (up to 250 ms) before the pause was committed still runs.
    paused_at = datetime.now(UTC) + timedelta(milliseconds=300)
    runs_before = api(service, "GET", "/api/jobs/browser_ticker/executions?limit=200")["total"]
    # Three of its periods: a job that still fired would have a new row by then.
    time.sleep(3)
    after = api(service, "GET", "/api/jobs/browser_ticker/executions?limit=200")
    late = [
        run
        for run in after["items"]
        if datetime.fromisoformat(run["scheduled_at"].replace("Z", "+00:00")) > paused_at
    ]
    assert late == [], (paused_at.isoformat(), late)
    assert after["total"] == runs_before

    # A change made elsewhere (the API) shows on the open page without a reload.
    began = time.monotonic()
    api(service, "POST", "/api/jobs/browser_ticker/resume")
    expect(page.locator("#job-state .state")).to_have_text(
        "scheduled", timeout=LIVE_WITHIN_SECONDS * 1000
    )
    shown_after = time.monotonic() - began
    record_figure("dashboard: a change made through the API shown", f"{shown_after:.2f} s")
    api(service, "POST", "/api/jobs/browser_ticker/pause")

    # Run now, and watch the run appear and finish without a reload.
    page.goto("/dashboard/jobs/system_maintenance")
    page.get_by_role("button", name="Run now").click()
    expect(page.locator("p.flash")).to_contain_text("execution")
    manual = page.locator("#recent-title ~ .scroll tbody tr").filter(has_text="manual").first
    expect(manual).to_contain_text("succeeded", timeout=30_000)

    # Run now with JSON input: the report cannot be written, and the run shows why.
    page.goto("/dashboard/jobs/daily_report")
    page.locator("#input").fill('{"day": "2026-11-30"}')
    page.get_by_role("button", name="Run now").click()
    expect(page.locator("p.flash")).to_contain_text("execution")
    failed = page.locator("#recent-title ~ .scroll tbody tr").filter(has_text="manual").first
    expect(failed).to_contain_text("failed", timeout=30_000)
    shoot(page, "job")

    # Reschedule with a cron that does not parse: the error is shown beside the field.
    page.locator("input[name=kind][value=cron]").check()
    page.locator("#expression").fill("61 * * * *")
    page.get_by_role("button", name="Reschedule").click()
    expect(page.locator("#expression-error")).to_contain_text("61")
    expect(page.locator("#expression")).to_have_value("61 * * * *")
    shoot(page, "reschedule-error")

    # The failed run's traceback.
    failed = page.locator("#recent-title ~ .scroll tbody tr").filter(has_text="manual").first
    failed.get_by_role("link").first.click()
    expect(page.locator("details.traceback pre")).to_contain_text("Traceback")
    expect(page.locator("details.traceback pre")).to_contain_text("reports")
    shoot(page, "execution")

    page.goto("/dashboard/executions")
    expect(page.locator("#runs tbody tr").first).to_be_visible()
    shoot(page, "executions")
    page.goto("/dashboard/audit")
    by_dashboard = page.locator("#audit tbody tr").filter(has_text="dashboard: session")
    expect(by_dashboard).not_to_have_count(0)
    shoot(page, "audit")

    # Every page at 375 px: nothing wider than the window but a table's own scroll box.
    phone = context.new_page()
    phone.set_viewport_size({"width": 375, "height": 800})
    for name, path in [
        ("overview", "/dashboard"),
        ("jobs", "/dashboard/jobs"),
        ("job", "/dashboard/jobs/daily_report"),
        ("executions", "/dashboard/executions"),
        ("audit", "/dashboard/audit"),
    ]:
        phone.goto(path)
        assert fits_the_width(phone), name
        shoot(phone, name)

    # The skip link is the first stop of the keyboard.
    page.goto("/dashboard")
    page.keyboard.press("Tab")
    expect(page.locator("a.skip")).to_be_focused()

    # Sign out: the session ends.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{service}/dashboard/sign-in")
    page.goto("/dashboard/jobs/daily_report")
    expect(page).to_have_url(f"{service}/dashboard/sign-in?next=%2Fdashboard%2Fjobs%2Fdaily_report")
    context.close()
