"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from app.components.backend.deps import EngineDep, SettingsDep
from app.core.health import HealthReport, check_health

router = APIRouter(prefix="/health", tags=["health"])


class Liveness(BaseModel):
    """The process serves requests."""

    status: str = "alive"


@router.get("", response_model=Liveness)
def liveness() -> Liveness:
    """200 while the process serves; checks nothing else, so it stays cheap."""
    return Liveness()


@router.get(
    "/ready",
    response_model=HealthReport,
    responses={503: {"model": HealthReport, "description": "A component is unhealthy."}},
)
def readiness(engine: EngineDep, settings: SettingsDep, response: Response) -> HealthReport:
    """200 when the database answers and the scheduler's heartbeat is fresh (and, with
    worker processes, every queue has a worker), else 503."""
    report = check_health(
        engine, settings.heartbeat_stale_after_seconds, workers=settings.runs_on_workers
    )
    if not report.healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return report
