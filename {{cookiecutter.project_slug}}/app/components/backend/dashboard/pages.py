"""The dashboard's pages: overview, jobs, a job, runs, a run and the audit log.

Each page reads through `Management`, the layer the API and the CLI use; the handlers are
plain functions, which FastAPI runs off the event loop, since the database calls block.
Filters come from the query string; a value that does not parse is named on the page, never
ignored.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.components.backend.dashboard.rendering import View, ViewDep
from app.components.management.errors import InvalidInput
from app.core.enums import AuditAction, ExecutionStatus, JobState, Queue
from app.core.text import CONTROL_CHARACTERS
from app.core.times import as_utc

_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")

router = APIRouter()

JOBS_PER_PAGE = 50
RUNS_PER_PAGE = 50
AUDIT_PER_PAGE = 50
RECENT = 10
SEARCH_MAX = 100

Choice = TypeVar("Choice", bound=StrEnum)


class Filters:
    """Query-string values read one by one; what does not parse is kept with the reason."""

    def __init__(self, request: Request) -> None:
        self.query = request.query_params
        self.errors: dict[str, str] = {}

    def text(self, name: str, most: int = SEARCH_MAX) -> str | None:
        value = self.query.get(name, "").strip()
        if len(value) > most:
            self.errors[name] = f"is longer than {most} characters"
            return None
        if _CONTROL.search(value):
            self.errors[name] = "holds control characters: give printable text"
            return None
        return value or None

    def choice(self, name: str, kind: type[Choice]) -> Choice | None:
        value = self.query.get(name, "")
        if not value:
            return None
        try:
            return kind(value)
        except ValueError:
            choices = ", ".join(member.value for member in kind)
            self.errors[name] = f"{value[:40]!r} is not one of {choices}"
            return None

    def page(self) -> int:
        value = self.query.get("page", "1")
        if not re.fullmatch(r"[0-9]{1,6}", value) or not 1 <= int(value) <= 100_000:
            self.errors["page"] = "is not a page number"
            return 1
        return int(value)

    def time(self, name: str) -> datetime | None:
        """A time as the browser's datetime-local field sends it, taken as UTC."""
        value = self.query.get(name, "")
        if not value:
            return None
        try:
            return as_utc(datetime.fromisoformat(value))
        except (ValueError, OverflowError):
            self.errors[name] = f"{value[:40]!r} is not a date and time (YYYY-MM-DDTHH:MM)"
            return None

    @property
    def status_code(self) -> int:
        """400 when a value did not parse: the page is shown, with the reason beside it."""
        return 400 if self.errors else 200


@router.get("", response_class=HTMLResponse)
def overview(view: ViewDep) -> HTMLResponse:
    """Who leads, the instances' heartbeats, a day's runs per queue, failures, the next fires."""
    manage = view.manage
    with manage.one_read():
        context = {
            "status": manage.status(),
            "failures": manage.recent_failures(RECENT),
            "coming": manage.upcoming(RECENT),
        }
    return view.page("overview.html", context)


@router.get("/jobs", response_class=HTMLResponse)
def jobs(view: ViewDep) -> HTMLResponse:
    """Every job, with its schedule, next run, last status and success rate."""
    filters = Filters(view.request)
    search = filters.text("q")
    state = filters.choice("state", JobState)
    queue = filters.choice("queue", Queue)
    page = filters.page()
    offset = (page - 1) * JOBS_PER_PAGE
    listing = view.manage.list_jobs(state, queue, JOBS_PER_PAGE, offset, search)
    context = {
        "jobs": listing,
        "page": page,
        "pages": _pages(listing.total, JOBS_PER_PAGE),
        "filters": {"q": search, "state": state, "queue": queue},
        "errors": filters.errors,
        "states": list(JobState),
        "queues": list(Queue),
    }
    return view.page("jobs.html", context, filters.status_code)


def _pages(total: int, per_page: int) -> int:
    return max(1, -(-total // per_page))


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job(job_id: str, view: ViewDep) -> HTMLResponse:
    """A job's definition, next fires, recent runs, why it did not run, and its actions."""
    return job_page(view, job_id)


def job_page(
    view: View,
    job_id: str,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The job page; an action's form comes back with its values and errors inline."""
    manage = view.manage
    with manage.one_read():
        detail = manage.job(job_id)
        recent = manage.execution_feed(job_id=job_id, limit=RECENT * 2).items
        timeline = manage.why_not_run(job_id, RECENT)
    inputs = {name: f"<{kind}>" for name, kind in detail.inputs.items()}
    context = {
        "job": detail,
        "recent": recent,
        "timeline": timeline,
        "form": form or {},
        "errors": errors or {},
        "input_example": json.dumps(inputs),
        "live_url": view.link("jobs", job_id),
        "default_zone": view.settings.timezone,
    }
    return view.page("job.html", context, status_code)


@router.get("/executions", response_class=HTMLResponse)
def executions(view: ViewDep) -> HTMLResponse:
    """Runs, newest first, by job, status and time, a page at a time."""
    filters = Filters(view.request)
    job_id = filters.text("job", 191)
    status = filters.choice("status", ExecutionStatus)
    since = filters.time("since")
    until = filters.time("until")
    before = filters.text("before", 200)
    manage = view.manage
    try:
        feed = manage.execution_feed(job_id, status, since, until, RUNS_PER_PAGE, before)
    except InvalidInput as error:
        filters.errors.update(error.problems)
        feed = manage.execution_feed(job_id, status, since, until, RUNS_PER_PAGE)
    context = {
        "feed": feed,
        "filters": {
            "job": job_id,
            "status": status,
            "since": filters.query.get("since", ""),
            "until": filters.query.get("until", ""),
        },
        "first_page": before is None,
        "errors": filters.errors,
        "statuses": list(ExecutionStatus),
    }
    return view.page("executions.html", context, filters.status_code)


@router.get("/executions/{execution_id}", response_class=HTMLResponse)
def execution(execution_id: str, view: ViewDep) -> HTMLResponse:
    """One run: timings, attempt, instance, error and traceback; retry and cancel."""
    return view.page("execution.html", {"run": view.manage.execution(execution_id)})


@router.get("/audit", response_class=HTMLResponse)
def audit_log(view: ViewDep) -> HTMLResponse:
    """Every change, who made it, and what became of it."""
    filters = Filters(view.request)
    job_id = filters.text("job", 191)
    action = filters.choice("action", AuditAction)
    page = filters.page()
    offset = (page - 1) * AUDIT_PER_PAGE
    entries = view.manage.audit(job_id, action, None, AUDIT_PER_PAGE, offset)
    context = {
        "entries": entries,
        "page": page,
        "pages": _pages(entries.total, AUDIT_PER_PAGE),
        "filters": {"job": job_id, "action": action},
        "errors": filters.errors,
        "actions": list(AuditAction),
    }
    return view.page("audit.html", context, filters.status_code)
