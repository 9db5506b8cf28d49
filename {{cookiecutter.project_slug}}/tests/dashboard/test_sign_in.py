"""Who gets in: the sign-in, its session cookie, CSRF on every form, and sign-out."""

from __future__ import annotations

import base64
import re
import time
from http.cookies import SimpleCookie

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from app import ENV_PREFIX
from app.components.backend.auth import Access
from app.components.backend.dashboard import actions, pages, sessions
from app.components.backend.dashboard.sessions import COOKIE_PATH
from app.components.backend.main import create_app
from app.core.settings import Settings
from tests.conftest import TEST_TOKEN
from tests.dashboard.pages import csrf_of, form_fields, one, page, sign_in, text

READ_TOKEN = "read-only-token-" + "r" * 24


def dashboard_routes() -> list[tuple[str, str]]:
    """Every dashboard page and form, from the dashboard's own routers."""
    return [
        (method, re.sub(r"\{[^}]+\}", "some_id", f"{COOKIE_PATH}{route.path}"))
        for router in (pages.router, actions.router)
        for route in router.routes
        if isinstance(route, APIRoute) and not route.path.startswith("/sign-in")
        for method in sorted(route.methods or ())
    ]


def test_signed_out_every_dashboard_route_leads_to_the_sign_in_page(
    settings: Settings, browser: TestClient
) -> None:
    routes = dashboard_routes()
    assert len([route for route in routes if route[0] == "GET"]) >= 6
    assert len([route for route in routes if route[0] == "POST"]) >= 7
    for method, path in [*routes, ("GET", "/dashboard/no/such/page")]:
        response = browser.request(method, path, data={"csrf": "x"})
        assert response.status_code == 303, (method, path)
        location = response.headers["location"]
        assert location.startswith("/dashboard/sign-in"), (method, path, location)
        if method == "GET" and path != "/dashboard":
            assert f"next={path.replace('/', '%2F')}" in location, location
    assert one(page(browser.get("/dashboard/sign-in")), "form input#token")["type"] == "password"


def test_signing_in_gives_a_signed_expiring_cookie_and_goes_where_it_was_asked(
    browser: TestClient, settings: Settings
) -> None:
    response = sign_in(browser, next_path="/dashboard/jobs?state=paused")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/jobs?state=paused"
    cookie = SimpleCookie(response.headers["set-cookie"].split(", dashboard_sign_in")[0])
    session = cookie[sessions.SESSION_COOKIE]
    assert session["httponly"] is True
    assert session["samesite"] == "strict"
    assert session["path"] == "/dashboard"
    assert int(session["max-age"]) == int(settings.dashboard_session_hours * 3600)
    assert not session["secure"], "plain http: a Secure cookie would never come back"
    assert TEST_TOKEN not in response.headers["set-cookie"]
    overview = browser.get("/dashboard")
    assert overview.status_code == 200
    assert text(one(page(overview), ".who")) == "operator session"


def test_over_https_the_cookie_is_secure(settings: Settings, engine: Engine) -> None:
    with TestClient(
        create_app(settings), base_url="https://testserver", follow_redirects=False
    ) as client:
        response = sign_in(client)
    assert response.status_code == 303
    assert "secure" in response.headers["set-cookie"].lower()


def test_a_wrong_token_is_refused_on_the_page_without_echoing_it(browser: TestClient) -> None:
    response = sign_in(browser, token="not-the-token-at-all")
    assert response.status_code == 401
    assert text(one(page(response), "#token-error")) == "that token is not valid"
    assert "not-the-token-at-all" not in response.text
    assert browser.get("/dashboard").status_code == 303


def test_sign_in_without_its_form_token_is_refused(browser: TestClient) -> None:
    response = browser.post(
        "/dashboard/sign-in", data={"token": TEST_TOKEN, "csrf": "forged", "next": ""}
    )
    assert response.status_code == 400
    assert "came from elsewhere" in text(one(page(response), "#token-error"))
    assert browser.get("/dashboard").status_code == 303


@pytest.mark.parametrize(
    "target", ["https://elsewhere.example/", "//elsewhere.example/", "/api/jobs", "/dashboardx"]
)
def test_sign_in_never_sends_the_browser_off_the_dashboard(
    browser: TestClient, target: str
) -> None:
    response = sign_in(browser, next_path=target)
    assert response.headers["location"] == "/dashboard"


def test_a_forged_an_expired_and_an_old_tokens_cookie_are_all_signed_out(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, good = sessions.start_session(settings, Access.OPERATOR)
    # A well-formed cookie signed with another key: only the signature can refuse it.
    other = settings.model_copy(update={"api_token": SecretStr("another-token-" + "y" * 24)})
    _, forged = sessions.start_session(other, Access.OPERATOR)
    # Claims the operator's access with the read-only token's signature.
    reader = settings.model_copy(update={"api_read_token": SecretStr("read-only-" + "r" * 24)})
    _, read_only = sessions.start_session(reader, Access.READER)
    promoted = read_only.replace("reader.", "operator.", 1)
    # Issued 13 hours ago, under the same token: a 12-hour session that has ended.
    issued = time.time() - 13 * 3600
    monkeypatch.setattr(time, "time", lambda: issued)
    _, expired = sessions.start_session(settings, Access.OPERATOR)
    monkeypatch.undo()
    nested = "operator." + base64.urlsafe_b64encode(b"[" * 5000).decode() + ".x"
    with TestClient(create_app(reader), follow_redirects=False) as client:
        for cookie in (forged, promoted, expired, nested, "", "a.b.c", "a.b"):
            client.cookies.set(sessions.SESSION_COOKIE, cookie, path="/dashboard")
            assert client.get("/dashboard").status_code == 303, cookie
        client.cookies.set(sessions.SESSION_COOKIE, good, path="/dashboard")
        assert client.get("/dashboard").status_code == 200
    # A new operator token ends the sessions the old one started.
    with TestClient(create_app(other), follow_redirects=False) as client:
        client.cookies.set(sessions.SESSION_COOKIE, good, path="/dashboard")
        assert client.get("/dashboard").status_code == 303


def test_every_form_needs_the_sessions_csrf_token(signed_in: TestClient) -> None:
    for forged in ({}, {"csrf": "forged"}):
        response = signed_in.post("/dashboard/jobs/cleanup_old_records/pause", data=forged)
        assert response.status_code == 403
        assert "CSRF" in text(one(page(response), "p.flash"))
    response = signed_in.post(
        "/dashboard/jobs/cleanup_old_records/pause",
        content=b'{"csrf": "x"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 415


def test_csrf_tokens_belong_to_one_session(settings: Settings, engine: Engine) -> None:
    clients = [TestClient(create_app(settings), follow_redirects=False) for _ in range(2)]
    with clients[0] as first, clients[1] as second:
        sign_in(first)
        sign_in(second)
        assert csrf_of(first) != csrf_of(second)
        response = second.post("/dashboard/sign-out", data={"csrf": csrf_of(first)})
        assert response.status_code == 403


def test_signing_out_ends_the_session(signed_in: TestClient) -> None:
    form = one(page(signed_in.get("/dashboard")), "form.sign-out")
    response = signed_in.post(str(form["action"]), data=form_fields(form))
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/sign-in"
    assert signed_in.get("/dashboard").status_code == 303


def test_the_read_only_token_signs_in_to_watch_and_is_refused_every_change(
    settings: Settings, engine: Engine, registered: list[str]
) -> None:
    reader = settings.model_copy(update={"api_read_token": SecretStr(READ_TOKEN)})
    with TestClient(create_app(reader), follow_redirects=False) as client:
        assert sign_in(client, token=READ_TOKEN).status_code == 303
        job = page(client.get("/dashboard/jobs/cleanup_old_records"))
        assert text(one(job, ".who")) == "read-only session"
        assert [form["action"] for form in job.select("main form")] == []
        csrf = csrf_of(client)
        for path in (
            "/dashboard/jobs/cleanup_old_records/pause",
            "/dashboard/jobs/cleanup_old_records/run",
            "/dashboard/executions/some_id/retry",
        ):
            refused = client.post(path, data={"csrf": csrf})
            assert refused.status_code == 403, path
            assert f"{ENV_PREFIX}API_READ_TOKEN" in text(one(page(refused), "p.flash"))
        audit = page(client.get("/dashboard/audit"))
        assert text(one(audit, "table caption")) == "0 change(s)"


def test_without_an_operator_token_the_sign_in_page_says_how_to_set_one(
    settings: Settings, engine: Engine
) -> None:
    unset = settings.model_copy(update={"api_token": None})
    with TestClient(create_app(unset), follow_redirects=False) as client:
        response = client.get("/dashboard/sign-in")
        assert response.status_code == 503
        assert f"{ENV_PREFIX}API_TOKEN" in text(one(page(response), "p.flash"))
        assert page(response).select("input#token") == []


def test_the_dashboard_can_be_turned_off(settings: Settings, engine: Engine) -> None:
    off = settings.model_copy(update={"dashboard_enabled": False})
    with TestClient(create_app(off), follow_redirects=False) as client:
        assert client.get("/dashboard/sign-in").status_code == 404
        assert client.get("/").status_code == 404
