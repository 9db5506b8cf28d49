"""Executions (runs of jobs): inspect, retry, cancel; and the scheduler's status."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.components.backend.auth import Authorized
from app.components.backend.deps import ManagementDep, command_response
from app.components.backend.responses import COMMAND_RESPONSES, MANAGEMENT_RESPONSES, NOT_FOUND
from app.components.management.schemas import CommandResult, ExecutionDetail, SchedulerStatus

router = APIRouter(prefix="/api", dependencies=[Authorized], responses=MANAGEMENT_RESPONSES)


@router.get(
    "/executions/{execution_id}",
    response_model=ExecutionDetail,
    responses=NOT_FOUND,
    tags=["executions"],
)
def get_execution(execution_id: str, manage: ManagementDep) -> ExecutionDetail:
    """One run, with its error and traceback."""
    return manage.execution(execution_id)


@router.post(
    "/executions/{execution_id}/retry",
    response_model=CommandResult,
    responses=COMMAND_RESPONSES,
    tags=["executions"],
)
def retry_execution(execution_id: str, manage: ManagementDep, response: Response) -> CommandResult:
    """Run a failed, timed-out, interrupted, missed, skipped or cancelled run again."""
    return command_response(manage.retry(execution_id), response)


@router.post(
    "/executions/{execution_id}/cancel",
    response_model=CommandResult,
    responses=COMMAND_RESPONSES,
    tags=["executions"],
)
def cancel_execution(execution_id: str, manage: ManagementDep, response: Response) -> CommandResult:
    """Stop a pending or running run; it is recorded as cancelled."""
    return command_response(manage.cancel(execution_id), response)


@router.get("/scheduler/status", response_model=SchedulerStatus, tags=["scheduler"])
def scheduler_status(manage: ManagementDep) -> SchedulerStatus:
    """Scheduler instances and heartbeats, job counts, executions per queue label."""
    return manage.status()
