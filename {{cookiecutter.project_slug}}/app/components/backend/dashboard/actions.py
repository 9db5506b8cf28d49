"""Signing in and out, and the dashboard's changes: run now, pause, resume, reschedule,
retry and cancel, each through `Management` as the API makes them.

Every form is posted as `application/x-www-form-urlencoded` with the session's CSRF token.
An answer comes back as a message on the page the form was on: applied, stored for when a
scheduler runs, or rejected with the reason; a field that does not parse is shown beside it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError

from app import ENV_PREFIX
from app.components.backend.auth import token_access
from app.components.backend.dashboard.pages import job_page
from app.components.backend.dashboard.rendering import (
    SessionDep,
    View,
    ViewDep,
    delete_cookie,
    outcome_kind,
    prefix,
    render,
    set_cookie,
)
from app.components.backend.dashboard.sessions import (
    FLASH_COOKIE,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    DashboardSession,
    csrf_valid,
    start_session,
)
from app.components.backend.deps import SettingsDep
from app.components.management.errors import InvalidInput, ManagementError
from app.components.management.schemas import CommandResult
from app.core.schedule_specs import RecurringSpec
from app.core.settings import Settings

router = APIRouter()

FORM_TYPE = "application/x-www-form-urlencoded"
INPUT_MAX_CHARS = 65_536
_RECURRING: TypeAdapter[Any] = TypeAdapter(RecurringSpec)
INTERVAL_UNITS = ("seconds", "minutes", "hours", "days")


class FormError(Exception):
    """A form that is not one the dashboard sent: answered with a page that says why."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


async def read_form(request: Request) -> dict[str, str]:
    """The posted fields; FormError for another content type or a body that is not a form."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if raw and content_type != FORM_TYPE:
        raise FormError(415, f"the dashboard's forms are sent as {FORM_TYPE}")
    try:
        body = raw.decode()
        return dict(parse_qsl(body, keep_blank_values=True, strict_parsing=bool(body)))
    except (UnicodeDecodeError, ValueError):
        raise FormError(400, "the form's body is not a URL-encoded form") from None


def safe_next(request: Request, target: str | None) -> str:
    """Where to go after signing in: a dashboard page only, never another site."""
    home = prefix(request)
    if target and target.startswith(home) and not target.startswith("//"):
        rest = target[len(home) :]
        if rest == "" or rest[0] in "/?":
            return target
    return home


# Sign-in and sign-out


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request, settings: SettingsDep) -> Response:
    """The token form; its CSRF value is kept in a cookie of its own."""
    return _sign_in_form(request, settings, request.query_params.get("next"))


def _sign_in_form(
    request: Request,
    settings: Settings,
    next_path: str | None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    value = secrets.token_urlsafe(24)
    disabled = settings.api_token is None
    response = render(
        request,
        "sign_in.html",
        {
            "next": safe_next(request, next_path),
            "sign_in_csrf": value,
            "error": error,
            "disabled": disabled,
            "token_setting": f"{ENV_PREFIX}API_TOKEN",
            "read_setting": f"{ENV_PREFIX}API_READ_TOKEN",
        },
        session=None,
        settings=settings,
        status_code=503 if disabled else status_code,
    )
    set_cookie(request, response, SIGN_IN_COOKIE, value, 3600)
    return response


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, settings: SettingsDep) -> Response:
    """Check the token; a valid one starts a session and goes on to the page asked for."""
    form = await read_form(request)
    next_path = form.get("next")
    expected = request.cookies.get(SIGN_IN_COOKIE)
    presented = form.get("csrf", "")
    if not expected or not secrets.compare_digest(expected.encode(), presented.encode()):
        return _sign_in_form(
            request,
            settings,
            next_path,
            "the sign-in form expired or came from elsewhere: sign in again "
            "(the browser must accept cookies from this site)",
            400,
        )
    if settings.api_token is None:
        return _sign_in_form(request, settings, next_path)
    access = token_access(settings, form.get("token", "").strip())
    if access is None:
        return _sign_in_form(request, settings, next_path, "that token is not valid", 401)
    _, cookie = start_session(settings, access)
    response = RedirectResponse(safe_next(request, next_path), status_code=303)
    lasts = int(settings.dashboard_session_hours * 3600)
    set_cookie(request, response, SESSION_COOKIE, cookie, lasts)
    delete_cookie(request, response, SIGN_IN_COOKIE)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """End the session in this browser and go back to the sign-in page."""
    form = await read_form(request)
    _require_csrf(settings, session, form)
    response = RedirectResponse(f"{prefix(request)}/sign-in", status_code=303)
    for name in (SESSION_COOKIE, FLASH_COOKIE):
        delete_cookie(request, response, name)
    return response


def _require_csrf(settings: Settings, session: DashboardSession, form: dict[str, str]) -> None:
    if not csrf_valid(settings, session, form.get("csrf")):
        raise FormError(
            403, "the form's CSRF token is not this session's: reload the page and try again"
        )


async def _change_form(view: View) -> dict[str, str]:
    """The posted form of a change: its CSRF token checked, and the session allowed to."""
    form = await read_form(view.request)
    _require_csrf(view.settings, view.session, form)
    if not view.session.may_change:
        raise FormError(
            403,
            f"this session signed in with the read-only token ({ENV_PREFIX}API_READ_TOKEN) "
            f"and may not change anything: sign in with {ENV_PREFIX}API_TOKEN",
        )
    return form


async def _answer(
    view: View,
    back_to: str,
    call: Callable[[], CommandResult],
) -> Response:
    """Make the change, then go back to `back_to` with its answer (applied, stored, rejected)."""
    try:
        result = await run_in_threadpool(call)
    except ManagementError as error:
        return view.back_to(back_to, "rejected", str(error))
    return view.back_to(back_to, outcome_kind(result.status), result.detail)


async def _with_errors(
    view: View, job_id: str, form: dict[str, str], errors: dict[str, str]
) -> HTMLResponse:
    """The job page again, with what was typed and what is wrong beside each field."""
    page: HTMLResponse = await run_in_threadpool(
        lambda: job_page(view, job_id, form=form, errors=errors, status_code=422)
    )
    return page


# Jobs


@router.post("/jobs/{job_id}/pause")
async def pause(job_id: str, view: ViewDep) -> Response:
    await _change_form(view)
    return await _answer(view, view.link("jobs", job_id), lambda: view.manage.pause(job_id))


@router.post("/jobs/{job_id}/resume")
async def resume(job_id: str, view: ViewDep) -> Response:
    await _change_form(view)
    return await _answer(view, view.link("jobs", job_id), lambda: view.manage.resume(job_id))


@router.post("/jobs/{job_id}/run", response_class=HTMLResponse)
async def run_now(job_id: str, view: ViewDep) -> Response:
    """Run now, with the JSON input the form gives (an object of the job's inputs)."""
    form = await _change_form(view)
    text = form.get("input", "").strip()
    arguments, problem = _json_object(text)
    if problem is None:
        try:
            result = await run_in_threadpool(view.manage.run, job_id, arguments)
        except InvalidInput as error:
            problem = "; ".join(
                f"{field.removeprefix('input.')}: {reason}"
                for field, reason in error.problems.items()
            )
        except ManagementError as error:
            return view.back_to(view.link("jobs", job_id), "rejected", str(error))
        else:
            message = f"{result.detail} (execution {result.execution_id})"
            return view.back_to(view.link("jobs", job_id), outcome_kind(result.status), message)
    return await _with_errors(view, job_id, {"input": text}, {"input": problem})


def _json_object(text: str) -> tuple[dict[str, Any], str | None]:
    if not text:
        return {}, None
    if len(text) > INPUT_MAX_CHARS:
        return {}, f"is longer than {INPUT_MAX_CHARS} characters"
    try:
        value = json.loads(text)
    except ValueError as error:
        return {}, f"is not JSON: {error}"
    except RecursionError:
        return {}, "is nested too deeply"
    if not isinstance(value, dict):
        return {}, 'must be a JSON object, like {"name": "value"}'
    return value, None


@router.post("/jobs/{job_id}/schedule", response_class=HTMLResponse)
async def reschedule(job_id: str, view: ViewDep) -> Response:
    """A new cron or interval schedule; what is wrong with it is shown beside the field."""
    form = await _change_form(view)
    values = {
        name: form.get(name, "").strip() for name in ("kind", "expression", "every", "unit", "zone")
    }
    spec, errors = _schedule(values)
    if spec is not None:
        try:
            result = await run_in_threadpool(view.manage.reschedule, job_id, spec)
        except InvalidInput as error:
            errors = {_schedule_field(field): reason for field, reason in error.problems.items()}
        except ManagementError as error:
            return view.back_to(view.link("jobs", job_id), "rejected", str(error))
        else:
            kind = outcome_kind(result.status)
            return view.back_to(view.link("jobs", job_id), kind, result.detail)
    return await _with_errors(view, job_id, values, errors)


def _schedule(values: dict[str, str]) -> tuple[Any, dict[str, str]]:
    """The spec the form describes, or what is wrong with it, by field."""
    kind = values["kind"]
    data: dict[str, Any] = {"kind": kind, "timezone": values["zone"] or None}
    if kind == "cron":
        if not values["expression"]:
            return None, {"expression": "give a cron expression, like 0 6 * * *"}
        data["expression"] = values["expression"]
    elif kind == "interval":
        unit = values["unit"]
        if unit not in INTERVAL_UNITS:
            return None, {"unit": f"choose one of {', '.join(INTERVAL_UNITS)}"}
        try:
            data[unit] = float(values["every"])
        except ValueError:
            return None, {"every": "give a number"}
    else:
        return None, {"kind": "choose cron or interval"}
    try:
        return _RECURRING.validate_python(data), {}
    except ValidationError as error:
        errors: dict[str, str] = {}
        for problem in error.errors():
            name = ".".join(str(part) for part in problem["loc"][1:])
            # A problem of the whole interval is its period's.
            field = "every" if kind == "interval" and not name else _schedule_field(name)
            errors.setdefault(field, str(problem["msg"]).removeprefix("Value error, "))
        return None, errors


def _schedule_field(field: str) -> str:
    """The form field a problem belongs to, from the spec's field name."""
    name = field.removeprefix("schedule").strip(".")
    if name in INTERVAL_UNITS:
        return "every"
    return {"timezone": "zone", "": "schedule"}.get(name, name)


# Runs


@router.post("/executions/{execution_id}/retry")
async def retry(execution_id: str, view: ViewDep) -> Response:
    await _change_form(view)
    try:
        result = await run_in_threadpool(view.manage.retry, execution_id)
    except ManagementError as error:
        return view.back_to(view.link("executions", execution_id), "rejected", str(error))
    # On to the new run, which the page then follows as it starts and ends.
    new_run = view.link("executions", result.execution_id or execution_id)
    message = f"{result.detail} (a retry of execution {execution_id})"
    return view.back_to(new_run, outcome_kind(result.status), message)


@router.post("/executions/{execution_id}/cancel")
async def cancel(execution_id: str, view: ViewDep) -> Response:
    await _change_form(view)
    back = view.link("executions", execution_id)
    return await _answer(view, back, lambda: view.manage.cancel(execution_id))
