"""The dashboard's changes, made with its own forms: each goes through `Management`, shows its
answer, and lands in the audit log under the dashboard session.

No scheduler runs here, so every change is stored for it ("stored"); the browser test in the
template's slow tier makes the same changes against running processes.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from app.components.scheduler import jobs as job_list
from app.components.scheduler.definition import ScheduledJob
from app.core.db import session_scope
from app.core.enums import ActorKind, ExecutionStatus, TriggerKind
from app.core.models import AuditEntry, JobExecution
from app.core.schedules import Interval
from tests.api.test_management import execution_row
from tests.dashboard.pages import facts, flash, one, page, rows, submit, text

JOB = "cleanup_old_records"
JOB_PAGE = f"/dashboard/jobs/{JOB}"


def audit_entries(engine: Engine) -> list[AuditEntry]:
    with session_scope(engine) as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.at)))


def follow(client: TestClient, response: object) -> object:
    return client.get(response.headers["location"])  # type: ignore[attr-defined]


def test_pause_and_resume_show_their_answer_and_are_audited_as_the_session(
    signed_in: TestClient, engine: Engine, registered: list[str]
) -> None:
    response = submit(signed_in, JOB_PAGE, "/pause")
    assert response.status_code == 303
    assert response.headers["location"] == JOB_PAGE
    soup = page(signed_in.get(JOB_PAGE))
    kind, message = flash(soup)
    assert kind == "stored"
    assert "no scheduler is running: the change is stored" in message
    assert facts(soup)["State"] == "paused"
    # The message is shown once.
    assert page(signed_in.get(JOB_PAGE)).select("p.flash") == []

    submit(signed_in, JOB_PAGE, "/resume")
    entries = audit_entries(engine)
    assert [entry.action for entry in entries] == ["pause", "resume"]
    assert {entry.actor_kind for entry in entries} == {ActorKind.DASHBOARD}
    assert re.fullmatch(r"session [0-9a-f]{16}", entries[0].actor)
    audit = rows(page(signed_in.get("/dashboard/audit")), "#audit table")
    assert [row[2] for row in audit] == ["resume", "pause"]
    assert audit[0][1] == f"dashboard: {entries[0].actor}"


def test_a_refused_change_says_why(signed_in: TestClient, registered: list[str]) -> None:
    csrf = str(one(page(signed_in.get(JOB_PAGE)), "header input[name=csrf]")["value"])
    response = signed_in.post(f"{JOB_PAGE}/resume", data={"csrf": csrf})
    assert flash(page(follow(signed_in, response))) == (  # type: ignore[arg-type]
        "rejected",
        f"rejected: job '{JOB}' is not paused",
    )


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"kind": "cron", "expression": "61 * * * *"}, "expression", "61"),
        ({"kind": "cron", "expression": ""}, "expression", "give a cron expression"),
        ({"kind": "interval", "every": "soon", "unit": "minutes"}, "every", "give a number"),
        ({"kind": "interval", "every": "0", "unit": "hours"}, "every", "positive period"),
        ({"kind": "interval", "every": "0.1", "unit": "seconds"}, "schedule", "more often"),
        ({"kind": "cron", "expression": "0 6 * * *", "zone": "Mars/Olympus"}, "zone", "IANA"),
    ],
)
def test_reschedule_shows_what_is_wrong_beside_the_field_and_keeps_the_input(
    signed_in: TestClient,
    engine: Engine,
    registered: list[str],
    values: dict[str, str],
    field: str,
    message: str,
) -> None:
    response = submit(signed_in, JOB_PAGE, "/schedule", **values)
    assert response.status_code == 422
    soup = page(response)
    assert message in text(one(soup, f"#{field}-error")), text(one(soup, f"#{field}-error"))
    form = one(soup, f"form[action='{JOB_PAGE}/schedule']")
    for name in ("expression", "every", "zone"):
        if values.get(name):
            assert one(form, f"#{name}")["value"] == values[name]
    assert audit_entries(engine) == []


def test_reschedule_applies_a_valid_schedule(
    signed_in: TestClient, engine: Engine, registered: list[str]
) -> None:
    response = submit(
        signed_in, JOB_PAGE, "/schedule", kind="cron", expression="15 4 * * *", zone="Asia/Tokyo"
    )
    assert response.status_code == 303
    soup = page(follow(signed_in, response))  # type: ignore[arg-type]
    assert flash(soup)[0] == "stored"
    shown = facts(soup)
    assert shown["Schedule"].startswith('cron "15 4 * * *" (Asia/Tokyo)')
    assert text(one(soup, "#fires-title ~ .scroll table caption")) == "In Asia/Tokyo"


def test_run_now_with_input_that_does_not_parse_is_refused_beside_the_field(
    signed_in: TestClient, engine: Engine, registered: list[str]
) -> None:
    csrf = str(one(page(signed_in.get(JOB_PAGE)), "header input[name=csrf]")["value"])
    for raw, message in [
        ("{not json", "is not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"nope": 1}', "nope: cleanup_old_records() does not take it"),
    ]:
        response = signed_in.post(f"{JOB_PAGE}/run", data={"csrf": csrf, "input": raw})
        assert response.status_code == 422, raw
        assert message in text(one(page(response), "#input-error")), raw
    with session_scope(engine) as session:
        assert session.scalars(select(JobExecution)).all() == []


def test_run_now_records_the_run_and_shows_its_id(
    signed_in: TestClient, engine: Engine, registered: list[str]
) -> None:
    response = submit(signed_in, JOB_PAGE, "/run")
    soup = page(follow(signed_in, response))  # type: ignore[arg-type]
    kind, message = flash(soup)
    execution_id = re.search(r"execution ([0-9a-f]{32})", message)
    assert kind == "stored"
    assert execution_id, message
    recent = rows(soup, "#recent-title ~ .scroll table")
    assert recent[0][:3] == [execution_id[1][:12], "pending", "manual"]


def test_a_job_that_takes_inputs_offers_them_in_the_run_form(
    signed_in: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def greet(name: str = "world", times: int = 1) -> None:
        del name, times

    job = ScheduledJob(
        id="greeter",
        name="Greeter",
        func=greet,
        schedule=Interval(hours=1),
        inputs=("name", "times"),
    )
    monkeypatch.setattr(job_list, "JOBS", (*job_list.JOBS, job))
    soup = page(signed_in.get("/dashboard/jobs/greeter"))
    textarea = one(soup, "form[action='/dashboard/jobs/greeter/run'] textarea#input")
    assert textarea["placeholder"] == '{"name": "<str>", "times": "<int>"}'
    response = submit(signed_in, "/dashboard/jobs/greeter", "/run", input='{"name": "Ada"}')
    assert response.status_code == 303
    with session_scope(engine) as session:
        run = session.scalars(select(JobExecution)).one()
    assert (run.job_id, run.input, run.trigger_kind) == (
        "greeter",
        '{"name": "Ada"}',
        TriggerKind.MANUAL,
    )


def test_retry_goes_to_the_new_run_and_cancel_stops_a_pending_one(
    signed_in: TestClient, engine: Engine, registered: list[str]
) -> None:
    with session_scope(engine) as session:
        session.add(execution_row("broken", ExecutionStatus.FAILED))
    response = submit(signed_in, "/dashboard/executions/broken", "/retry")
    new_run = response.headers["location"]
    assert new_run.startswith("/dashboard/executions/")
    assert not new_run.endswith("broken")
    soup = page(signed_in.get(new_run))
    assert flash(soup)[0] == "stored"
    shown = facts(soup)
    assert shown["Trigger"] == "retry, a retry of broken"
    assert shown["Status"] == "pending"

    response = submit(signed_in, new_run, "/cancel")
    assert response.headers["location"] == new_run
    assert flash(page(signed_in.get(new_run)))[0] == "stored"
    assert [entry.action for entry in audit_entries(engine)] == ["retry", "cancel"]


def test_run_now_input_nested_too_deeply_is_refused_beside_the_field(
    signed_in: TestClient, registered: list[str]
) -> None:
    csrf = str(one(page(signed_in.get(JOB_PAGE)), "header input[name=csrf]")["value"])
    nested = "[" * 20_000 + "]" * 20_000
    response = signed_in.post(f"{JOB_PAGE}/run", data={"csrf": csrf, "input": nested})
    assert response.status_code == 422
    assert "nested too deeply" in text(one(page(response), "#input-error"))
    # The page a form came back on goes on following the job page.
    assert one(page(response), "body")["data-live-url"] == JOB_PAGE
