"""The management API's bearer token: from settings, compared in constant time."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app import ENV_PREFIX
from app.components.backend.deps import SettingsDep

_bearer = HTTPBearer(auto_error=False, description="The token in API_TOKEN (see .env).")


def require_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 without a bearer token, 403 with a wrong one, 503 when none is configured."""
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
    expected = settings.api_token.get_secret_value().encode()
    if not secrets.compare_digest(credentials.credentials.encode(), expected):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the token is not valid")


Authorized = Depends(require_token)
