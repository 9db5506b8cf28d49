"""The dashboard wired into the API: its pages, its static files and its error pages."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from app.components.backend.dashboard import actions, pages
from app.components.backend.dashboard.actions import FormError
from app.components.backend.dashboard.rendering import (
    HERE,
    SessionDep,
    SignInRequired,
    prefix,
    render,
)
from app.components.backend.dashboard.sessions import COOKIE_PATH, SESSION_COOKIE, read_session
from app.core.settings import Settings


def install(app: FastAPI) -> None:
    """Serve the dashboard at /dashboard, and send `/` there."""
    # Before the pages: the catch-all page route below would take these paths otherwise.
    app.mount(
        f"{COOKIE_PATH}/static",
        StaticFiles(directory=HERE / "static"),
        name="dashboard-static",
    )
    unknown = APIRouter()
    unknown.add_api_route("/{path:path}", _unknown_page, methods=["GET", "POST"])
    # The catch-all last, so that every other page is matched first.
    for router in (pages.router, actions.router, unknown):
        app.include_router(router, prefix=COOKIE_PATH, include_in_schema=False)
    app.add_api_route("/", _home, methods=["GET"], include_in_schema=False)
    app.add_exception_handler(SignInRequired, _to_sign_in)
    app.add_exception_handler(FormError, _form_refused)


async def _home(request: Request) -> Response:
    return RedirectResponse(prefix(request), status_code=307)


async def _unknown_page(path: str, request: Request, session: SessionDep) -> Response:
    return error_page(request, 404, f"there is no dashboard page {request.url.path!r}")


async def _to_sign_in(request: Request, error: Exception) -> Response:
    assert isinstance(error, SignInRequired)
    query = f"?next={_quoted(error.next_path)}" if error.next_path != prefix(request) else ""
    return RedirectResponse(f"{prefix(request)}/sign-in{query}", status_code=303)


def _quoted(path: str) -> str:
    return quote(path, safe="")


async def _form_refused(request: Request, error: Exception) -> Response:
    assert isinstance(error, FormError)
    return error_page(request, error.status_code, error.detail)


def is_dashboard(request: Request) -> bool:
    """Whether a request is for a dashboard page, which answers errors as a page too."""
    return request.url.path.startswith(prefix(request))


def error_page(request: Request, status_code: int, detail: str) -> HTMLResponse:
    """An error as a dashboard page, with the navigation if the browser is signed in."""
    settings: Settings = request.app.state.settings
    session = read_session(settings, request.cookies.get(SESSION_COOKIE))
    return render(
        request,
        "error.html",
        {"status_code": status_code, "detail": detail},
        session=session,
        settings=settings,
        status_code=status_code,
    )
