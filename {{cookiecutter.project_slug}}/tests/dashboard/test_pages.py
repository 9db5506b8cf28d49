"""Every dashboard page, read through an HTML parser: what it shows, and its filters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select

from app.components.backend.main import create_app
from app.components.management.schemas import AddJobRequest
from app.components.management.service import Management
from app.components.scheduler.catalog import next_revision
from app.core.db import session_scope, utcnow
from app.core.enums import ExecutionStatus
from app.core.models import Job
from app.core.schedule_specs import CronSpec, IntervalSpec
from app.core.settings import Settings
from tests.api.test_management import execution_row
from tests.dashboard.pages import facts, one, page, rows, sign_in, text

JOB = "cleanup_old_records"


def add_runtime_jobs(engine: Engine, settings: Settings, count: int, prefix: str = "extra") -> None:
    manage = Management(engine, settings)
    for number in range(count):
        manage.add(
            AddJobRequest(
                id=f"{prefix}_{number:03d}",
                name=f"Extra job {number}",
                function=JOB,
                schedule=IntervalSpec(hours=number + 1),
            )
        )


def test_the_overview_shows_the_scheduler_queues_failures_and_next_fires(
    signed_in: TestClient, engine: Engine, registered: list[str]
) -> None:
    now = utcnow()
    with session_scope(engine) as session:
        # Twelve failures, every third one a timeout: the ten newest are listed, both kinds
        # in one order.
        for number in range(12):
            status = ExecutionStatus.TIMED_OUT if number % 3 == 2 else ExecutionStatus.FAILED
            row = execution_row(f"failed{number:02d}", status, now - timedelta(minutes=number))
            row.error_type, row.error_message = "RuntimeError", f"broke {number}"
            session.add(row)
        session.add(execution_row("fine", ExecutionStatus.SUCCEEDED, now))
    checkouts: list[object] = []

    def checked_out(*_: object) -> None:
        checkouts.append(None)

    # The first request finds which tables exist, once each.
    signed_in.get("/dashboard")
    app_engine = signed_in.app.state.engine  # type: ignore[attr-defined]
    event.listen(app_engine, "checkout", checked_out)
    try:
        soup = page(signed_in.get("/dashboard"))
    finally:
        event.remove(app_engine, "checkout", checked_out)
    # Then everything the page shows is read in one transaction, on one connection.
    assert len(checkouts) == 1
    assert text(one(soup, "p.verdict")).startswith("Unhealthy:")
    assert rows(soup, "#scheduler-title ~ .scroll table")[0][0].startswith("No scheduler")
    queues = {row[0]: row[1:] for row in rows(soup, "#queues-title ~ .scroll table")}
    assert queues["low"] == ["0", "0", "1", "12"]
    failures = rows(soup, "#failures-title ~ .scroll table")
    assert [row[0] for row in failures] == [f"failed{number:02d}" for number in range(10)]
    assert [row[2] for row in failures[:3]] == ["failed", "failed", "timed out"]
    assert "RuntimeError: broke 0" in failures[0][4]
    coming = [row[0] for row in rows(soup, "#coming-title ~ .scroll table")]
    assert sorted(coming) == registered
    assert one(soup, "#overview").has_attr("data-live")


def test_the_jobs_page_lists_last_status_and_success_rate_and_filters(
    signed_in: TestClient, engine: Engine, settings: Settings, registered: list[str]
) -> None:
    add_runtime_jobs(engine, settings, 60)
    Management(engine, settings).pause("extra_007")
    now = utcnow()
    with session_scope(engine) as session:
        for number, status in enumerate(["succeeded", "succeeded", "succeeded", "failed"]):
            session.add(
                execution_row(
                    f"r{number}", ExecutionStatus(status), now + timedelta(seconds=number)
                )
            )
    soup = page(signed_in.get("/dashboard/jobs"))
    caption = text(one(soup, "#jobs table caption"))
    assert caption == f"{60 + len(registered)} job(s), page 1 of 2"
    listed = {row[0]: row for row in rows(soup, "#jobs table")}
    assert len(listed) == 50
    assert listed[JOB][4] == "failed"
    assert listed[JOB][5] == "75% of 4"
    second = page(signed_in.get(str(one(soup, "a[rel=next]")["href"])))
    assert len(rows(second, "#jobs table")) == 60 + len(registered) - 50

    found = rows(page(signed_in.get("/dashboard/jobs", params={"q": "JOB 1"})), "#jobs table")
    assert [row[0] for row in found] == [f"extra_{n:03d}" for n in [1, *range(10, 20)]]
    # A search counts its matches with its page; past its last page, it counts them apart.
    for number, shown in ((2, 10), (3, 0)):
        searched = page(signed_in.get("/dashboard/jobs", params={"q": "extra", "page": number}))
        caption = text(one(searched, "#jobs table caption"))
        assert caption == f"60 job(s), page {number} of 2"
        listed_ids = [row[0] for row in rows(searched, "#jobs table")]
        assert len([job_id for job_id in listed_ids if job_id.startswith("extra_")]) == shown
    paused = rows(page(signed_in.get("/dashboard/jobs", params={"state": "paused"})), "#jobs table")
    assert [(row[0], row[6]) for row in paused] == [("extra_007", "paused")]
    low = rows(
        page(signed_in.get("/dashboard/jobs", params={"queue": "critical", "q": "extra"})),
        "#jobs table",
    )
    assert low == [["No job matches."]]


def test_a_filter_that_does_not_parse_is_named_beside_its_field(signed_in: TestClient) -> None:
    response = signed_in.get("/dashboard/jobs", params={"state": "sleeping", "page": "x"})
    assert response.status_code == 400
    soup = page(response)
    assert "'sleeping' is not one of scheduled, paused" in text(one(soup, "#state-error"))
    assert text(one(soup, "#page-error")) == "is not a page number"
    response = signed_in.get(
        "/dashboard/executions", params={"since": "yesterday", "before": "nope"}
    )
    assert response.status_code == 400
    soup = page(response)
    assert "not a date and time" in text(one(soup, "#since-error"))
    assert "not a page cursor" in text(one(soup, "#before-error"))


def test_a_job_page_shows_its_definition_fires_runs_and_why_it_did_not_run(
    signed_in: TestClient, engine: Engine, settings: Settings, registered: list[str]
) -> None:
    now = utcnow()
    with session_scope(engine) as session:
        missed = execution_row("missed1", ExecutionStatus.MISSED, now - timedelta(hours=1))
        missed.error_message = "later than the misfire grace time (60 s)"
        session.add(missed)
        session.add(execution_row("ok1", ExecutionStatus.SUCCEEDED, now))
    Management(engine, settings).pause(JOB)
    soup = page(signed_in.get(f"/dashboard/jobs/{JOB}"))
    assert text(one(soup, "h1")) == f"Job {JOB}"
    shown = facts(soup)
    assert shown["State"] == "paused"
    assert shown["Function"] == JOB
    assert shown["Queue"] == "low"
    assert shown["Attempts"] == "3"
    assert [row[0] for row in rows(soup, "#recent-title ~ .scroll table")] == ["ok1", "missed1"]
    timeline = [text(item) for item in soup.select("ol.timeline li")]
    assert timeline[0].endswith(
        "paused by cli " + Management(engine, settings).actor.name + " (pending)"
    )
    assert "missed later than the misfire grace time (60 s)" in timeline[1]
    assert "No coming runs: the job is paused." in text(one(soup, "#job-runs"))
    # Paused, it offers resume and not pause.
    actions = [str(form["action"]) for form in soup.select("main form")]
    assert f"/dashboard/jobs/{JOB}/resume" in actions
    assert f"/dashboard/jobs/{JOB}/pause" not in actions


def test_the_next_fires_are_listed_in_the_jobs_zone_with_dst_changes_flagged(
    signed_in: TestClient, engine: Engine, settings: Settings, registered: list[str]
) -> None:
    # The Sundays of March at 02:30 in Paris: each year's last one is the day clocks skip
    # 02:00-03:00, and ten of them always reach one.
    Management(engine, settings).add(
        AddJobRequest(
            id="march_sundays",
            name="March Sundays",
            function=JOB,
            schedule=CronSpec(expression="30 2 * 3 0", timezone="Europe/Paris"),
        )
    )
    soup = page(signed_in.get("/dashboard/jobs/march_sundays"))
    fires = rows(soup, "#fires-title ~ .scroll table")
    assert len(fires) == 10
    assert text(one(soup, "#fires-title ~ .scroll table caption")) == "In Europe/Paris"
    flagged = [row for row in fires if row[2] != "-"]
    assert flagged, fires
    for local, _utc, note in flagged:
        assert local.endswith("03:30:00+02:00"), local
        assert "02:30 does not exist" in note
        assert "clocks go forward" in note
    for local, _utc, note in fires:
        if note == "-":
            assert "02:30:00+0" in local


def test_the_runs_page_pages_by_keyset_through_every_run_once(
    signed_in: TestClient, engine: Engine, registered: list[str]
) -> None:
    start = utcnow() - timedelta(days=1)
    with session_scope(engine) as session:
        for number in range(120):
            status = ExecutionStatus.FAILED if number % 10 == 0 else ExecutionStatus.SUCCEEDED
            # Pairs share a time: the id breaks the tie, so no run is shown twice or skipped.
            session.add(
                execution_row(f"run{number:03d}", status, start + timedelta(minutes=number // 2))
            )
    seen: list[str] = []
    url: str | None = "/dashboard/executions"
    while url:
        soup = page(signed_in.get(url))
        seen += [row[0] for row in rows(soup, "#runs table")]
        following = soup.select("a[rel=next]")
        url = str(following[0]["href"]) if following else None
    assert len(seen) == 120
    assert len(set(seen)) == 120
    times = [int(run[3:]) // 2 for run in seen]
    assert times == sorted(times, reverse=True)

    failed = rows(
        page(signed_in.get("/dashboard/executions", params={"status": "failed"})), "#runs table"
    )
    assert [row[0] for row in failed] == [f"run{n:03d}" for n in range(110, -1, -10)]
    since = (start + timedelta(minutes=55)).strftime("%Y-%m-%dT%H:%M:%S")
    recent = rows(
        page(signed_in.get("/dashboard/executions", params={"since": since, "job": JOB})),
        "#runs table",
    )
    assert len(recent) == 10


def test_a_run_page_shows_timings_error_and_traceback_and_offers_retry(
    signed_in: TestClient, engine: Engine, registered: list[str]
) -> None:
    with session_scope(engine) as session:
        row = execution_row("broken", ExecutionStatus.FAILED)
        row.error_type, row.error_message = "ValueError", "bad <input>"
        row.traceback = (
            'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad <input>'
        )
        row.duration_ms = 1534.0
        session.add(row)
    soup = page(signed_in.get("/dashboard/executions/broken"))
    shown = facts(soup)
    assert shown["Status"] == "failed"
    assert shown["Duration"] == "1.5 s"
    assert shown["Instance"] == "test"
    assert one(soup, "p.error-text").get_text() == "ValueError: bad <input>"
    assert one(soup, "details.traceback pre").get_text().endswith("ValueError: bad <input>")
    actions = [str(form["action"]) for form in soup.select("main form")]
    assert actions == ["/dashboard/executions/broken/retry"]


def test_unknown_jobs_and_runs_are_pages_that_say_so(
    signed_in: TestClient, registered: list[str]
) -> None:
    for path, message in [
        ("/dashboard/jobs/nope", "no job 'nope'"),
        ("/dashboard/executions/nope", "no execution 'nope'"),
        ("/dashboard/nothing/here", "there is no dashboard page"),
    ]:
        response = signed_in.get(path)
        assert response.status_code == 404
        assert message in text(one(page(response), "p.flash"))


def test_pages_allow_only_their_own_scripts_and_are_not_cached(signed_in: TestClient) -> None:
    response = signed_in.get("/dashboard")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["cache-control"] == "no-store"
    soup = page(response)
    scripts = [str(script["src"]) for script in soup.find_all("script")]
    assert scripts == ["/dashboard/static/live.js"]
    assert all(script.get_text() == "" for script in soup.find_all("script"))
    for asset in (scripts[0], str(one(soup, "link[rel=stylesheet]")["href"])):
        served = signed_in.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 1000, asset
    assert one(soup, "a.skip")["href"] == "#main"
    assert one(soup, "nav a[aria-current=page]").get_text() == "Overview"


def test_the_root_leads_to_the_dashboard(browser: TestClient) -> None:
    response = browser.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/dashboard"


@pytest.mark.parametrize(
    "path", ["/dashboard", "/dashboard/jobs", "/dashboard/executions", "/dashboard/audit"]
)
def test_before_the_database_exists_pages_say_so(settings: Settings, path: str) -> None:
    with TestClient(create_app(settings), follow_redirects=False) as client:
        sign_in(client)
        response = client.get(path)
    assert response.status_code == 503
    reason = text(one(page(response), "p.flash"))
    if settings.database_url.startswith("sqlite"):
        # The API never creates the file: the scheduler does, as it runs the migrations.
        assert "the database is unavailable: unable to open database file" in reason
    else:
        assert "no scheduler tables yet" in reason
        assert "start the scheduler once" in reason


def test_runtime_jobs_that_no_longer_load_are_listed_and_counted_as_invalid(
    signed_in: TestClient, engine: Engine, settings: Settings, registered: list[str]
) -> None:
    add_runtime_jobs(engine, settings, 3)
    # As a code change leaves them: arguments the function no longer takes, a schedule of a
    # kind that no longer exists, a function that is gone.
    with session_scope(engine) as session:
        stored = {
            job.id: job for job in session.scalars(select(Job).where(Job.origin == "runtime"))
        }
        stored["extra_000"].args = '{"nope": 1}'
        stored["extra_001"].schedule = '{"kind": "bogus"}'
        stored["extra_002"].function = "gone_function"
    # The listing reads what a change left, as of the revision the change raised.
    with session_scope(engine) as session:
        next_revision(session)
    invalid = rows_of(signed_in, {"state": "invalid"})
    assert [(row[0], row[6]) for row in invalid] == [
        ("extra_000", "invalid"),
        ("extra_001", "invalid"),
        ("extra_002", "invalid"),
    ]
    scheduled = [row[0] for row in rows_of(signed_in, {"state": "scheduled"})]
    assert sorted(scheduled) == registered
    status = Management(engine, settings).status()
    assert status.jobs.invalid == 3
    assert status.jobs.scheduled == len(registered)
    coming = rows(page(signed_in.get("/dashboard")), "#coming-title ~ .scroll table")
    assert {row[0] for row in coming} == set(registered)


def rows_of(client: TestClient, params: dict[str, str]) -> list[list[str]]:
    return rows(page(client.get("/dashboard/jobs", params=params)), "#jobs table")


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/dashboard/jobs", {"page": "\u00b2"}, "page"),
        ("/dashboard/jobs", {"page": "9" * 5000}, "page"),
        ("/dashboard/jobs", {"q": "a\x00b"}, "q"),
        ("/dashboard/executions", {"since": "0001-01-01T00:00+01:00"}, "since"),
        ("/dashboard/executions", {"until": "9999-12-31T23:59:59-01:00"}, "until"),
        ("/dashboard/executions", {"before": "0001-01-01T00:00:00+05:00~abc"}, "before"),
        ("/dashboard/executions", {"job": "x\x00"}, "job"),
    ],
)
def test_odd_query_values_are_named_beside_their_field(
    signed_in: TestClient, registered: list[str], path: str, params: dict[str, str], field: str
) -> None:
    response = signed_in.get(path, params=params)
    assert response.status_code == 400
    assert text(one(page(response), f"#{field}-error"))


def test_odd_ids_and_paths_are_pages_that_say_so(
    signed_in: TestClient, registered: list[str]
) -> None:
    for path in ("/dashboard/jobs/a%00b", "/dashboard/executions/a%00b"):
        response = signed_in.get(path)
        assert response.status_code == 404, path
        assert "no " in text(one(page(response), "p.flash"))
    response = signed_in.post("/dashboard/jobs/x/zap", data={"csrf": "x"})
    assert response.status_code == 404
    assert "there is no dashboard page" in text(one(page(response), "p.flash"))
