"""The audit log: every change to a job or a run, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.components.backend.auth import Authorized
from app.components.backend.deps import ManagementDep
from app.components.backend.responses import MANAGEMENT_RESPONSES
from app.components.management.schemas import AuditPage
from app.core.enums import AuditAction
from app.core.times import IsoTime

router = APIRouter(
    prefix="/api", tags=["audit"], dependencies=[Authorized], responses=MANAGEMENT_RESPONSES
)


@router.get("/audit", response_model=AuditPage)
def audit_log(
    manage: ManagementDep,
    job_id: Annotated[str | None, Query(max_length=191, description="Only this job.")] = None,
    action: AuditAction | None = None,
    since: Annotated[IsoTime | None, Query(description="Entries at or after.")] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Items to skip.")] = 0,
) -> AuditPage:
    """Who paused, resumed, rescheduled, added, deleted, ran, retried or cancelled what, when,
    with the state before and after, and what became of it."""
    return manage.audit(job_id, action, since, limit, offset)
