"""Jobs: list, inspect, run now, pause, resume, reschedule, add and delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.components.backend.auth import Authorized
from app.components.backend.deps import ManagementDep, command_response
from app.components.backend.responses import (
    BODY_RESPONSES,
    COMMAND_RESPONSES,
    MANAGEMENT_RESPONSES,
    NOT_FOUND,
)
from app.components.management.schemas import (
    AddJobRequest,
    CommandResult,
    ExecutionPage,
    FunctionInfo,
    JobDetail,
    JobPage,
    RescheduleRequest,
    RunRequest,
)
from app.core.enums import ExecutionStatus, JobState, Queue
from app.core.times import IsoTime

router = APIRouter(
    prefix="/api", tags=["jobs"], dependencies=[Authorized], responses=MANAGEMENT_RESPONSES
)

Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Items to skip.")]


@router.get("/jobs", response_model=JobPage)
def list_jobs(
    manage: ManagementDep,
    state: JobState | None = None,
    queue: Queue | None = None,
    search: Annotated[
        str | None,
        Query(max_length=100, description="Only jobs whose id or name contains this, in any case."),
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> JobPage:
    """Jobs, soonest next run first; filter by state, queue label and a search of ids and names."""
    return manage.list_jobs(state, queue, limit, offset, search)


@router.post(
    "/jobs",
    response_model=CommandResult,
    status_code=status.HTTP_201_CREATED,
    responses=COMMAND_RESPONSES | BODY_RESPONSES,
)
def add_job(body: AddJobRequest, manage: ManagementDep, response: Response) -> CommandResult:
    """Add a job that calls a registered job function with JSON arguments."""
    return command_response(manage.add(body), response, applied=status.HTTP_201_CREATED)


@router.get("/functions", response_model=list[FunctionInfo])
def list_functions(manage: ManagementDep) -> list[FunctionInfo]:
    """The job functions a runtime job may call, with the arguments each accepts."""
    return manage.functions()


@router.get("/jobs/{job_id}", response_model=JobDetail, responses=NOT_FOUND)
def get_job(job_id: str, manage: ManagementDep) -> JobDetail:
    """A job's definition, state, next run, last run and success rate."""
    return manage.job(job_id)


@router.delete("/jobs/{job_id}", response_model=CommandResult, responses=COMMAND_RESPONSES)
def delete_job(job_id: str, manage: ManagementDep, response: Response) -> CommandResult:
    """Delete a runtime job; a job defined in code can only be paused."""
    return command_response(manage.delete(job_id), response)


@router.post(
    "/jobs/{job_id}/run", response_model=CommandResult, responses=COMMAND_RESPONSES | BODY_RESPONSES
)
def run_job(
    job_id: str, manage: ManagementDep, response: Response, body: RunRequest | None = None
) -> CommandResult:
    """Run the job now; its regular schedule stays as it is. Returns the execution id."""
    arguments = body.input if body else {}
    return command_response(manage.run(job_id, arguments), response)


@router.post("/jobs/{job_id}/pause", response_model=CommandResult, responses=COMMAND_RESPONSES)
def pause_job(job_id: str, manage: ManagementDep, response: Response) -> CommandResult:
    """Stop the job's schedule until it is resumed."""
    return command_response(manage.pause(job_id), response)


@router.post("/jobs/{job_id}/resume", response_model=CommandResult, responses=COMMAND_RESPONSES)
def resume_job(job_id: str, manage: ManagementDep, response: Response) -> CommandResult:
    """Start a paused job's schedule again."""
    return command_response(manage.resume(job_id), response)


@router.put(
    "/jobs/{job_id}/schedule",
    response_model=CommandResult,
    responses=COMMAND_RESPONSES | BODY_RESPONSES,
)
def reschedule_job(
    job_id: str, body: RescheduleRequest, manage: ManagementDep, response: Response
) -> CommandResult:
    """Give the job a cron or interval schedule, in a time zone."""
    return command_response(manage.reschedule(job_id, body.schedule), response)


@router.get("/jobs/{job_id}/executions", response_model=ExecutionPage, responses=NOT_FOUND)
def job_executions(
    job_id: str,
    manage: ManagementDep,
    status: ExecutionStatus | None = None,
    since: Annotated[
        IsoTime | None, Query(description="Scheduled at or after (with a zone).")
    ] = None,
    until: Annotated[IsoTime | None, Query(description="Scheduled before (with a zone).")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> ExecutionPage:
    """The job's runs, newest first."""
    return manage.executions(job_id, status, since, until, limit, offset)
