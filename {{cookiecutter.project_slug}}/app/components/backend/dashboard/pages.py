"""The dashboard's pages: overview, jobs, a job, runs, a run and the audit log.

Each page reads through `Management`, the layer the API and the CLI use. Filters come from
the query string; a value that does not parse is named on the page, never ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from app.components.backend.dashboard.rendering import (
    ManagementDep,
    SessionDep,
    render,
)
from app.components.backend.dashboard.sessions import DashboardSession
from app.components.backend.deps import SettingsDep
from app.components.management.errors import InvalidInput
from app.components.management.schemas import ExecutionInfo
from app.components.management.service import Management
from app.core.enums import AuditAction, ExecutionStatus, JobState, Queue
from app.core.settings import Settings

router = APIRouter()

JOBS_PER_PAGE = 50
RUNS_PER_PAGE = 50
AUDIT_PER_PAGE = 50
RECENT = 10
# A run that did not run or did not end on its own: a job page's "why it did not run".
NOT_RUN = (
    ExecutionStatus.MISSED,
    ExecutionStatus.SKIPPED,
    ExecutionStatus.INTERRUPTED,
    ExecutionStatus.CANCELLED,
)
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
        if not value.isdigit() or not 1 <= int(value) <= 100_000:
            self.errors["page"] = "is not a page number"
            return 1
        return int(value)

    def time(self, name: str) -> datetime | None:
        """A time as the browser's datetime-local field sends it, taken as UTC."""
        value = self.query.get(name, "")
        if not value:
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.errors[name] = f"{value[:40]!r} is not a date and time (YYYY-MM-DDTHH:MM)"
            return None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def _read(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # Management works on the database synchronously: off the event loop.
    return await run_in_threadpool(call, *args, **kwargs)


def _page(
    request: Request,
    template: str,
    context: dict[str, Any],
    session: DashboardSession,
    settings: Settings,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request, template, context, session=session, settings=settings, status_code=status_code
    )


@router.get("", response_class=HTMLResponse)
async def overview(
    request: Request, session: SessionDep, settings: SettingsDep, manage: ManagementDep
) -> HTMLResponse:
    """Who leads, the instances' heartbeats, a day's runs per queue, failures, the next fires."""
    status = await _read(manage.status)
    failures = await _read(_recent_failures, manage)
    coming = await _read(manage.list_jobs, JobState.SCHEDULED, None, RECENT, 0)
    context = {"status": status, "failures": failures, "coming": coming.items}
    return _page(request, "overview.html", context, session, settings)


def _recent_failures(manage: Management) -> list[ExecutionInfo]:
    runs = [
        run
        for status in (ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT)
        for run in manage.execution_feed(status=status, limit=RECENT).items
    ]
    return sorted(runs, key=lambda run: (run.scheduled_at, run.id), reverse=True)[:RECENT]


@router.get("/jobs", response_class=HTMLResponse)
async def jobs(
    request: Request, session: SessionDep, settings: SettingsDep, manage: ManagementDep
) -> HTMLResponse:
    """Every job, with its schedule, next run, last status and success rate."""
    filters = Filters(request)
    search = filters.text("q")
    state = filters.choice("state", JobState)
    queue = filters.choice("queue", Queue)
    page = filters.page()
    listing = await _read(
        manage.list_jobs, state, queue, JOBS_PER_PAGE, (page - 1) * JOBS_PER_PAGE, search
    )
    pages = max(1, -(-listing.total // JOBS_PER_PAGE))
    context = {
        "jobs": listing,
        "page": page,
        "pages": pages,
        "filters": {"q": search, "state": state, "queue": queue},
        "errors": filters.errors,
        "states": list(JobState),
        "queues": list(Queue),
    }
    code = 400 if filters.errors else 200
    return _page(request, "jobs.html", context, session, settings, code)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job(
    job_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    manage: ManagementDep,
) -> HTMLResponse:
    """A job's definition, next fires, recent runs, why it did not run, and its actions."""
    return await job_page(request, job_id, session, settings, manage)


async def job_page(
    request: Request,
    job_id: str,
    session: DashboardSession,
    settings: Settings,
    manage: Management,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The job page; an action's form comes back with its values and errors inline."""
    detail = await _read(manage.job, job_id)
    recent = await _read(manage.execution_feed, job_id=job_id, limit=RECENT * 2)
    timeline = await _read(_why_not_run, manage, job_id)
    context = {
        "job": detail,
        "recent": recent.items,
        "timeline": timeline,
        "form": form or {},
        "errors": errors or {},
        "input_example": json.dumps({name: f"<{kind}>" for name, kind in detail.inputs.items()}),
        "default_zone": settings.timezone,
    }
    return _page(request, "job.html", context, session, settings, status_code)


def _why_not_run(manage: Management, job_id: str) -> list[dict[str, Any]]:
    """Runs that did not happen or did not end on their own, and pauses, newest first."""
    events: list[dict[str, Any]] = []
    for status in NOT_RUN:
        for run in manage.execution_feed(job_id=job_id, status=status, limit=RECENT).items:
            events.append(
                {
                    "at": run.scheduled_at,
                    "what": run.status.value,
                    "reason": run.error_message or "",
                    "execution_id": run.id,
                }
            )
    for action in (AuditAction.PAUSE, AuditAction.RESUME):
        for entry in manage.audit(job_id=job_id, action=action, limit=RECENT).items:
            events.append(
                {
                    "at": entry.at,
                    "what": f"{action.value}d",
                    "reason": f"by {entry.actor_kind.value} {entry.actor} ({entry.outcome.value})",
                    "execution_id": None,
                }
            )
    return sorted(events, key=lambda event: event["at"], reverse=True)[: RECENT * 2]


@router.get("/executions", response_class=HTMLResponse)
async def executions(
    request: Request, session: SessionDep, settings: SettingsDep, manage: ManagementDep
) -> HTMLResponse:
    """Runs, newest first, by job, status and time, a page at a time."""
    filters = Filters(request)
    job_id = filters.text("job", 191)
    status = filters.choice("status", ExecutionStatus)
    since = filters.time("since")
    until = filters.time("until")
    before = filters.text("before", 200)
    try:
        feed = await _read(
            manage.execution_feed, job_id, status, since, until, RUNS_PER_PAGE, before
        )
    except InvalidInput as error:
        filters.errors.update(error.problems)
        feed = await _read(manage.execution_feed, job_id, status, since, until, RUNS_PER_PAGE)
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
    code = 400 if filters.errors else 200
    return _page(request, "executions.html", context, session, settings, code)


@router.get("/executions/{execution_id}", response_class=HTMLResponse)
async def execution(
    execution_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    manage: ManagementDep,
) -> HTMLResponse:
    """One run: timings, attempt, instance, error and traceback; retry and cancel."""
    run = await _read(manage.execution, execution_id)
    context = {"run": run}
    return _page(request, "execution.html", context, session, settings)


@router.get("/audit", response_class=HTMLResponse)
async def audit_log(
    request: Request, session: SessionDep, settings: SettingsDep, manage: ManagementDep
) -> HTMLResponse:
    """Every change, who made it, and what became of it."""
    filters = Filters(request)
    job_id = filters.text("job", 191)
    action = filters.choice("action", AuditAction)
    page = filters.page()
    entries = await _read(
        manage.audit, job_id, action, None, AUDIT_PER_PAGE, (page - 1) * AUDIT_PER_PAGE
    )
    context = {
        "entries": entries,
        "page": page,
        "pages": max(1, -(-entries.total // AUDIT_PER_PAGE)),
        "filters": {"job": job_id, "action": action},
        "errors": filters.errors,
        "actions": list(AuditAction),
    }
    code = 400 if filters.errors else 200
    return _page(request, "audit.html", context, session, settings, code)
