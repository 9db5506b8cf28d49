"""The management API seen from another machine: the same calls as `Management`, over HTTP.

The CLI's `--url` mode uses it, so a command prints the same whether it read the database or
asked a running API. Error answers become the same exceptions `Management` raises.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from app.components.management.errors import (
    Conflict,
    InvalidInput,
    ManagementError,
    NotFound,
    NotReady,
)
from app.components.management.schemas import (
    AddJobRequest,
    AuditPage,
    CommandResult,
    ExecutionDetail,
    ExecutionPage,
    JobDetail,
    JobPage,
    SchedulerStatus,
)
from app.core.enums import AuditAction, ExecutionStatus, JobState, Queue
from app.core.errors import error_text
from app.core.schedule_specs import Spec

Model = TypeVar("Model", bound=BaseModel)


class Unauthorized(ManagementError):
    """The API refused the token (401 or 403)."""

    status_code = 401


class Unreachable(ManagementError):
    """The API did not answer, or not with what was expected."""

    status_code = 502


_BY_STATUS: dict[int, type[ManagementError]] = {
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    503: NotReady,
}


def _segment(value: str) -> str:
    """An id as one path segment: a `/`, `?` or `..` in it cannot reach another endpoint."""
    return quote(value, safe="")


class RemoteManagement:
    """`Management`'s calls against a running API at `url`, with a bearer token."""

    def __init__(self, url: str, token: str | None, timeout: float = 10.0) -> None:
        self.base = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=self.base, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def list_jobs(
        self,
        state: JobState | None = None,
        queue: Queue | None = None,
        limit: int = 50,
        offset: int = 0,
        search: str | None = None,
    ) -> JobPage:
        params = {
            "state": state,
            "queue": queue,
            "search": search,
            "limit": limit,
            "offset": offset,
        }
        return self._call(JobPage, "GET", "/api/jobs", params=params)

    def job(self, job_id: str) -> JobDetail:
        return self._call(JobDetail, "GET", f"/api/jobs/{_segment(job_id)}")

    def executions(
        self,
        job_id: str | None = None,
        status: ExecutionStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> ExecutionPage:
        params = {
            "status": status,
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
            "limit": limit,
            "offset": offset,
        }
        if job_id is None:
            raise InvalidInput({"job_id": "the API lists the runs of one job: give its id"})
        path = f"/api/jobs/{_segment(job_id)}/executions"
        return self._call(ExecutionPage, "GET", path, params=params)

    def execution(self, execution_id: str) -> ExecutionDetail:
        return self._call(ExecutionDetail, "GET", f"/api/executions/{_segment(execution_id)}")

    def audit(
        self,
        job_id: str | None = None,
        action: AuditAction | None = None,
        since: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> AuditPage:
        params = {
            "job_id": job_id,
            "action": action,
            "since": since.isoformat() if since else None,
            "limit": limit,
            "offset": offset,
        }
        return self._call(AuditPage, "GET", "/api/audit", params=params)

    def status(self) -> SchedulerStatus:
        return self._call(SchedulerStatus, "GET", "/api/scheduler/status")

    def pause(self, job_id: str) -> CommandResult:
        return self._call(CommandResult, "POST", f"/api/jobs/{_segment(job_id)}/pause")

    def resume(self, job_id: str) -> CommandResult:
        return self._call(CommandResult, "POST", f"/api/jobs/{_segment(job_id)}/resume")

    def reschedule(self, job_id: str, spec: Spec) -> CommandResult:
        body = {"schedule": spec.model_dump(mode="json", exclude_none=True)}
        return self._call(CommandResult, "PUT", f"/api/jobs/{_segment(job_id)}/schedule", json=body)

    def run(self, job_id: str, arguments: dict[str, Any]) -> CommandResult:
        return self._call(
            CommandResult, "POST", f"/api/jobs/{_segment(job_id)}/run", json={"input": arguments}
        )

    def add(self, request: AddJobRequest) -> CommandResult:
        return self._call(CommandResult, "POST", "/api/jobs", json=request.model_dump(mode="json"))

    def delete(self, job_id: str) -> CommandResult:
        return self._call(CommandResult, "DELETE", f"/api/jobs/{_segment(job_id)}")

    def retry(self, execution_id: str) -> CommandResult:
        return self._call(CommandResult, "POST", f"/api/executions/{_segment(execution_id)}/retry")

    def cancel(self, execution_id: str) -> CommandResult:
        return self._call(CommandResult, "POST", f"/api/executions/{_segment(execution_id)}/cancel")

    def _call(self, model: type[Model], method: str, path: str, **kwargs: Any) -> Model:
        if "params" in kwargs:
            kwargs["params"] = {k: v for k, v in kwargs["params"].items() if v is not None}
        try:
            response = self._client.request(method, path, **kwargs)
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise Unreachable(f"cannot reach the API at {self.base}: {error_text(error)}") from None
        body = _json(response)
        if response.status_code == 422:
            raise InvalidInput(_problems(body))
        # A rejected command is a 409 that carries the full result.
        if response.status_code == 409 and isinstance(body, dict) and "command_id" in body:
            return model.model_validate(body)
        if response.status_code >= 400:
            detail = body.get("detail") if isinstance(body, dict) else None
            error_type = _BY_STATUS.get(response.status_code, Unreachable)
            raise error_type(str(detail or f"{path} answered {response.status_code}"))
        try:
            return model.model_validate(body)
        except ValidationError:
            raise Unreachable(f"{self.base}{path} did not answer as expected") from None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _problems(body: Any) -> dict[str, str]:
    problems: dict[str, str] = {}
    for issue in body.get("detail", []) if isinstance(body, dict) else []:
        location = [str(part) for part in issue.get("loc", []) if part not in ("body", "query")]
        problems[".".join(location) or "(request)"] = str(issue.get("msg", "invalid"))
    return problems or {"(request)": "the API refused the input"}
