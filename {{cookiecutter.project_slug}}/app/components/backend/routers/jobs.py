"""The scheduled jobs, read from the shared job store."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from app.components.backend.deps import EngineDep
from app.core.job_store import JobInfo, read_jobs

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


class JobList(BaseModel):
    """Every stored job."""

    items: list[JobInfo]
    total: int


@router.get("", response_model=JobList)
def list_jobs(engine: EngineDep) -> JobList:
    """Jobs with their trigger, next run time and paused state, soonest first."""
    jobs = read_jobs(engine)
    return JobList(items=jobs, total=len(jobs))
