"""Dashboard sign-in: a signed, expiring session cookie, and the CSRF tokens of its forms.

Signing in with the operator token (`API_TOKEN`) or the read-only one (`API_READ_TOKEN`) gives
a cookie that says which, until when, and a random session id for the audit log. It is
signed with a key derived from that token, so changing a token ends every session it
started, and nothing is kept on the server: signing out removes the cookie from the browser,
and a copy taken before works until it expires or its token changes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from app.components.backend.auth import Access
from app.core.settings import Settings

SESSION_COOKIE = "dashboard_session"
# The sign-in form has no session yet: its CSRF token is a random value kept in this cookie
# and repeated in the form (a site elsewhere can read neither).
SIGN_IN_COOKIE = "dashboard_sign_in"
FLASH_COOKIE = "dashboard_flash"
COOKIE_PATH = "/dashboard"
_PURPOSE = b"dashboard session v1"


@dataclass(frozen=True)
class DashboardSession:
    """Who is signed in: the session's id, what its token allows, and when it ends."""

    id: str
    access: Access
    expires_at: float

    @property
    def may_change(self) -> bool:
        return self.access is Access.OPERATOR


def _key(settings: Settings, access: Access) -> bytes | None:
    token = settings.api_token if access is Access.OPERATOR else settings.api_read_token
    if token is None:
        return None
    return hmac.new(token.get_secret_value().encode(), _PURPOSE, hashlib.sha256).digest()


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, payload: str) -> str:
    return _encode(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def start_session(settings: Settings, access: Access) -> tuple[DashboardSession, str]:
    """A new session for `access`, and its cookie's value: `access.payload.signature`."""
    key = _key(settings, access)
    assert key is not None, "a session starts only for a token that is configured"
    session = DashboardSession(
        id=secrets.token_hex(8),
        access=access,
        expires_at=time.time() + settings.dashboard_session_hours * 3600,
    )
    payload = _encode(json.dumps({"id": session.id, "exp": session.expires_at}).encode())
    signed = f"{access.value}.{payload}"
    return session, f"{signed}.{_signature(key, signed)}"


def read_session(settings: Settings, cookie: str | None) -> DashboardSession | None:
    """The session a cookie stands for; None when it is missing, forged, stale or expired.

    The signature is checked before anything in the cookie is decoded: what a stranger wrote
    is never parsed.
    """
    if not cookie or cookie.count(".") != 2:
        return None
    access_name, payload, signature = cookie.split(".")
    try:
        access = Access(access_name)
    except ValueError:
        return None
    key = _key(settings, access)
    if key is None or not hmac.compare_digest(
        _signature(key, f"{access_name}.{payload}"), signature
    ):
        return None
    try:
        data = json.loads(_decode(payload))
        session = DashboardSession(id=str(data["id"]), access=access, expires_at=float(data["exp"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    if session.expires_at <= time.time():
        return None
    return session


def csrf_token(settings: Settings, session: DashboardSession) -> str:
    """The token every form of this session carries: bound to the session, so not reusable."""
    key = _key(settings, session.access)
    assert key is not None
    return _signature(key, f"csrf:{session.id}")


def csrf_valid(settings: Settings, session: DashboardSession, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_token(settings, session), presented)


def sign_flash(settings: Settings, session: DashboardSession, kind: str, text: str) -> str:
    """A one-time message for the page an action redirects to, signed like the session."""
    key = _key(settings, session.access)
    assert key is not None
    payload = _encode(json.dumps({"session": session.id, "kind": kind, "text": text}).encode())
    return f"{payload}.{_signature(key, payload)}"


def read_flash(
    settings: Settings, session: DashboardSession, cookie: str | None
) -> tuple[str, str] | None:
    """The message's kind and text, if the cookie is this session's own."""
    if not cookie or cookie.count(".") != 1:
        return None
    payload, signature = cookie.split(".")
    key = _key(settings, session.access)
    if key is None or not hmac.compare_digest(_signature(key, payload), signature):
        return None
    try:
        data = json.loads(_decode(payload))
    except (ValueError, binascii.Error):
        return None
    if data.get("session") != session.id:
        return None
    return str(data["kind"]), str(data["text"])
