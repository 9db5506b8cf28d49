"""The API's Prometheus metrics: requests by route template and status, with latency.

Routes are labelled by their template (`/api/jobs/{job_id}`), never by the path asked for,
and methods outside the usual few count as `other`, so a scan of random URLs adds no
series. The scheduler serves its own metrics on a port of its own.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.metrics import new_registry

REGISTRY = new_registry()

REQUESTS = Counter(
    "api_requests",
    "Requests answered, by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "api_request_duration_seconds",
    "Time from a request's arrival to its answer's end, by method and route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The route of a request no route matches: any path it asked for would be a new series.
UNMATCHED = "unmatched"


class RequestMetrics:
    """Counts and times every HTTP request, whatever answers it (a 413 of the body limit too)."""

    def __init__(self, app: ASGIApp, templates: Callable[[], Iterable[str]]) -> None:
        self.app = app
        self._templates = templates
        self._patterns: list[tuple[re.Pattern[str], str]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "other"
            route = self._template(scope)
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(time.perf_counter() - began)

    def _template(self, scope: Scope) -> str:
        # The router notes the route it chose. A request answered before routing (the body
        # limit's 413) is matched here against the app's templates.
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str):
            return path
        if self._patterns is None:
            self._patterns = [(compile_path(each)[0], each) for each in self._templates()]
        asked = scope["path"]
        return next((each for regex, each in self._patterns if regex.match(asked)), UNMATCHED)


async def metrics_page(request: Request) -> Response:
    """The API's metrics in Prometheus's text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
