"""The error answers the API's routes declare in its OpenAPI document, in one place."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from app import ENV_PREFIX
from app.components.management.schemas import CommandResult


class ErrorDetail(BaseModel):
    """An error: `detail` says what went wrong and, where it can, what to do."""

    detail: str


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorDetail, "description": description}


# Every route under /api: the token check (a dependency of each router), the body limit (a
# middleware in front of every route) and the database.
MANAGEMENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _error("No bearer token was sent."),
    403: _error("The bearer token is not valid."),
    413: _error(f"The request body is larger than {ENV_PREFIX}API_MAX_BODY_BYTES."),
    503: _error("No token is configured, or the database is unavailable."),
}
# A route that reads a path id.
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _error("No such job or execution.")}
# A route that reads a JSON body.
BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("The body is not JSON text (not UTF-8, or cut short).")
}
# A change or a command: applied (200, or 201 for a new job), stored (202), refused (409: by
# the running scheduler, as a CommandResult, or before, as an error), or invalid (422).
COMMAND_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": CommandResult, "description": "No scheduler confirmed it: stored for later."},
    **NOT_FOUND,
    409: {
        "model": CommandResult | ErrorDetail,
        "description": "The job's or the run's state does not allow it; it says why.",
    },
    422: {"description": "Invalid input; each problem names its field."},
}
