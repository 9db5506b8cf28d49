"""What every dashboard page shares: the templates, the signed-in session, answers and links."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from app import PROJECT_NAME, __version__
from app.components.backend.dashboard.sessions import (
    COOKIE_PATH,
    FLASH_COOKIE,
    SESSION_COOKIE,
    DashboardSession,
    csrf_token,
    read_flash,
    read_session,
    sign_flash,
)
from app.components.backend.deps import EngineDep, SettingsDep
from app.components.management.service import Management
from app.core.audit import Actor
from app.core.enums import CommandStatus, ExecutionStatus
from app.core.settings import Settings

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
# Scripts and styles from the dashboard itself only; no inline script, no frames, forms post
# back here only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    # Pages show job arguments and errors: no cache may keep them.
    "cache-control": "no-store",
}


class SignInRequired(Exception):
    """No valid session: the request goes to the sign-in page, and back after it."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def prefix(request: Request) -> str:
    """Where the dashboard is mounted, behind a proxy's path prefix too."""
    return f"{request.scope.get('root_path', '')}{COOKIE_PATH}"


def link(request: Request, *parts: str, **query: Any) -> str:
    """A dashboard URL: path parts quoted one by one, empty query values left out."""
    path = "".join(f"/{quote(part, safe='')}" for part in parts)
    params = {name: value for name, value in query.items() if value not in (None, "")}
    return f"{prefix(request)}{path}" + (f"?{urlencode(params)}" if params else "")


def current_session(request: Request, settings: SettingsDep) -> DashboardSession:
    """The signed-in session; SignInRequired without one."""
    session = read_session(settings, request.cookies.get(SESSION_COOKIE))
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target if request.method == "GET" else prefix(request))
    return session


SessionDep = Annotated[DashboardSession, Depends(current_session)]


@dataclass(frozen=True)
class View:
    """What a signed-in dashboard request works with: the request, its session, the settings
    and the management layer that records changes under the session."""

    request: Request
    session: DashboardSession
    settings: Settings
    manage: Management

    def link(self, *parts: str, **query: Any) -> str:
        return link(self.request, *parts, **query)

    def page(self, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
        return render(
            self.request,
            template,
            context,
            session=self.session,
            settings=self.settings,
            status_code=status_code,
        )

    def back_to(self, to: str, kind: str, text: str) -> Response:
        """Back to a page (303, so a reload does not repeat the action), with a message."""
        response = RedirectResponse(to, status_code=303)
        flash = sign_flash(self.settings, self.session, kind, text)
        set_cookie(self.request, response, FLASH_COOKIE, flash, 60)
        return response


def current_view(
    request: Request, engine: EngineDep, settings: SettingsDep, session: SessionDep
) -> View:
    """The signed-in request's view.

    Before the first migration every page says how to make the tables, rather than showing
    empty lists.
    """
    manage = Management(engine, settings, actor=Actor.dashboard_session(session.id))
    manage.require_tables()
    return View(request, session, settings, manage)


ViewDep = Annotated[View, Depends(current_view)]


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    """A dashboard cookie: HttpOnly, SameSite=Strict, for the dashboard's path only (behind a
    proxy's prefix too), and Secure when the dashboard is reached over https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=prefix(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def delete_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path=prefix(request))


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    session: DashboardSession | None,
    settings: Settings,
    status_code: int = 200,
) -> HTMLResponse:
    """A page, with the session's CSRF token and the message an action left, if any."""
    flash = None
    if session is not None:
        flash = read_flash(settings, session, request.cookies.get(FLASH_COOKIE))
    response = templates.TemplateResponse(
        request,
        template,
        {
            "project_name": PROJECT_NAME,
            "version": __version__,
            "session": session,
            "csrf": csrf_token(settings, session) if session else None,
            "flash": flash,
            "now": datetime.now(UTC),
            "link": lambda *parts, **query: link(request, *parts, **query),
            # What the live parts re-read: this page, or, for a form sent back with its
            # errors, the page the form is on.
            "live_url": str(request.url) if request.method == "GET" else "",
            **context,
        },
        status_code=status_code,
        headers=PAGE_HEADERS,
    )
    if flash is not None:
        delete_cookie(request, response, FLASH_COOKIE)
    return response


def outcome_kind(status: CommandStatus) -> str:
    """How a page shows an answer: applied, stored for later, or rejected."""
    return {
        CommandStatus.APPLIED: "applied",
        CommandStatus.PENDING: "stored",
        CommandStatus.REJECTED: "rejected",
    }[status]


# Statuses a page shows as trouble, as a warning, or as good news.
BAD = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.INTERRUPTED})
WARNING = frozenset({ExecutionStatus.MISSED, ExecutionStatus.SKIPPED, ExecutionStatus.CANCELLED})


def _status_class(status: str) -> str:
    value = ExecutionStatus(status)
    if value in BAD:
        return "bad"
    if value in WARNING:
        return "warn"
    if value is ExecutionStatus.SUCCEEDED:
        return "good"
    return "busy"


def _utc(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _relative(moment: datetime | None) -> str:
    if moment is None:
        return ""
    seconds = (moment - datetime.now(UTC)).total_seconds()
    size = abs(seconds)
    for unit, length in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if size >= length:
            amount = f"{size / length:.0f} {unit}"
            break
    else:
        amount = f"{size:.0f} s"
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def _duration(milliseconds: float | None) -> str:
    if milliseconds is None:
        return "-"
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    if milliseconds < 120_000:
        return f"{milliseconds / 1000:.1f} s"
    return f"{milliseconds / 60_000:.1f} min"


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


templates.env.filters.update(
    utc=_utc, relative=_relative, duration=_duration, percent=_percent, status_class=_status_class
)
