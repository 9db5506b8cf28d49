"""The management API's bearer tokens: from settings, compared in constant time.

The operator token (`API_TOKEN`) may do everything; the optional read-only token
(`API_READ_TOKEN`) may read everything and change nothing. Every change is a request that is
not GET or HEAD, so the check is made once, here, for every route.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app import ENV_PREFIX
from app.components.backend.deps import SettingsDep
from app.core.settings import Settings

_bearer = HTTPBearer(
    auto_error=False,
    description="The operator token in API_TOKEN (see .env), or the read-only API_READ_TOKEN.",
)
READ_METHODS = frozenset({"GET", "HEAD"})


class Access(StrEnum):
    """What a token allows."""

    OPERATOR = "operator"  # read and change
    READER = "reader"  # read only


def token_access(settings: Settings, presented: str) -> Access | None:
    """Which access `presented` grants; None if it is neither token."""
    given = presented.encode()
    granted: Access | None = None
    # Both compared, always, so the time taken does not say which one came close.
    for access, token in (
        (Access.OPERATOR, settings.api_token),
        (Access.READER, settings.api_read_token),
    ):
        if token is not None and secrets.compare_digest(given, token.get_secret_value().encode()):
            granted = granted or access
    return granted


def require_token(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Access:
    """401 without a bearer token, 403 with a wrong one or a change with the read-only token,
    503 when no operator token is configured."""
    if settings.api_token is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the management API is disabled: set {ENV_PREFIX}API_TOKEN",
        )
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing token: send the header 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    access = token_access(settings, credentials.credentials)
    if access is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the token is not valid")
    if access is Access.READER and request.method not in READ_METHODS:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"the read-only token ({ENV_PREFIX}API_READ_TOKEN) may not change anything: "
            f"use the operator token ({ENV_PREFIX}API_TOKEN)",
        )
    return access


Authorized = Depends(require_token)
