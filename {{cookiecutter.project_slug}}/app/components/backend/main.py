"""The FastAPI application factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from itertools import islice

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import SQLAlchemyError
from starlette.routing import Match, Route

from app import ENV_PREFIX, PROJECT_NAME, __version__
from app.components.backend.dashboard import routes as dashboard
from app.components.backend.metrics import RequestMetrics, metrics_page
from app.components.backend.middleware import BodySizeLimit, SecurityHeaders
from app.components.backend.routers import audit, executions, health, jobs
from app.components.management.errors import InvalidInput, ManagementError
from app.core.db import create_db_engine, redacted_url
from app.core.settings import Settings, get_settings
from app.core.text import first_line

logger = logging.getLogger("app.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API, with its own engine on the shared database."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The API only reads; the scheduler creates the database. Until it has, readiness says so.
        engine = create_db_engine(settings.database_url, create_file=False)
        logger.info("api started", extra={"database": redacted_url(engine.url)})
        if settings.api_token is None:
            logger.warning(
                "no API token configured: the management API (/api) answers 503",
                extra={"setting": f"{ENV_PREFIX}API_TOKEN"},
            )
        app.state.engine = engine
        app.state.settings = settings
        # Everything loaded so far lives as long as the process: moved out of the collector's
        # sight, a full collection scans what requests create only. Scanning the whole heap
        # (about 140,000 objects) stalls every request in flight for some 100 ms.
        gc.collect()
        gc.freeze()
        yield
        engine.dispose()

    # /docs and /redoc load their scripts and styles from the app itself (fastapi-offline
    # ships them), not from a CDN: the pages work offline and behind strict firewalls.
    app = FastAPIOffline(
        title=PROJECT_NAME,
        description="Health and readiness (open), and management of jobs and runs under "
        "/api (bearer token).",
        version=__version__,
        lifespan=lifespan,
        # No call to swagger.io's validator for the badge it would show.
        swagger_ui_parameters={"validatorUrl": None},
    )
    # Outermost last: every answer, the body limit's 413 included, gets the headers and is
    # counted.
    app.add_middleware(BodySizeLimit, limit=settings.api_max_body_bytes)
    app.add_middleware(SecurityHeaders)
    if settings.metrics_enabled:
        app.add_middleware(RequestMetrics, templates=lambda: _templates(app))
        app.add_route("/metrics", metrics_page, methods=["GET"], include_in_schema=False)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(executions.router)
    app.include_router(audit.router)
    if settings.dashboard_enabled:
        dashboard.install(app)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(405, _method_not_allowed)
    app.add_exception_handler(SQLAlchemyError, _database_unavailable)
    app.add_exception_handler(ManagementError, _management_error)
    return app


def _templates(app: FastAPI) -> list[str]:
    """Every route's path template: the documented ones, and the pages outside the schema."""
    pages = [route.path for route in app.router.routes if isinstance(route, Route)]
    return [*app.openapi()["paths"], *pages]


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


async def _method_not_allowed(request: Request, error: Exception) -> JSONResponse:
    """405 whose Allow header lists every method of the path.

    Starlette's own lists the methods of the first route that matched the path only, so
    `OPTIONS /api/jobs` would claim that GET alone is allowed, not POST.
    """
    allowed = {
        method
        for method in _METHODS
        for route in request.app.routes
        if route.matches({**request.scope, "method": method})[0] is Match.FULL
    }
    methods = ", ".join(sorted(allowed))
    return JSONResponse(
        status_code=405, content={"detail": "Method Not Allowed"}, headers={"Allow": methods}
    )


# A problem's message is cut to this many characters: it may quote what it refuses. An
# answer names this many problems at most.
_PROBLEM_MAX_CHARS = 300
_PROBLEMS_MAX = 20


def _unprocessable(problems: Iterable[tuple[Sequence[str | int], str, str]]) -> JSONResponse:
    """422 in FastAPI's shape (`loc`, `msg`, `type` per problem), cut short and capped."""
    detail = [
        {
            "loc": [part[:_PROBLEM_MAX_CHARS] if isinstance(part, str) else part for part in loc],
            "msg": message[:_PROBLEM_MAX_CHARS],
            "type": kind,
        }
        for loc, message, kind in islice(problems, _PROBLEMS_MAX)
    ]
    return JSONResponse(status_code=422, content={"detail": detail})


async def _invalid_request(request: Request, error: Exception) -> JSONResponse:
    """422 naming each field, but never echoing the input back.

    FastAPI's own answer repeats every refused value (`input`), which turns a large body into
    an equally large answer.
    """
    assert isinstance(error, RequestValidationError)
    return _unprocessable(
        (problem["loc"], str(problem["msg"]), problem["type"]) for problem in error.errors()
    )


async def _database_unavailable(request: Request, error: Exception) -> Response:
    """Any endpoint whose database call fails answers 503 with the reason, not a 500."""
    reason = first_line(error)
    logger.warning("database unavailable", extra={"path": request.url.path, "error": reason})
    detail = f"the database is unavailable: {reason}"
    if dashboard.is_dashboard(request):
        return dashboard.error_page(request, 503, detail)
    return JSONResponse(status_code=503, content={"detail": detail})


async def _management_error(request: Request, error: Exception) -> Response:
    """404, 409 and 503 with the reason; 422 in FastAPI's own shape, naming each field."""
    assert isinstance(error, ManagementError)
    if dashboard.is_dashboard(request):
        return dashboard.error_page(request, error.status_code, str(error))
    if isinstance(error, InvalidInput):
        # A field names the body's part and, after the first dot, the user's own key, which
        # may hold dots itself.
        return _unprocessable(
            (["body", *field.split(".", 1)], problem, "value_error")
            for field, problem in error.problems.items()
        )
    return JSONResponse(status_code=error.status_code, content={"detail": str(error)})
