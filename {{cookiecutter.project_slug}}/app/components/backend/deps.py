"""Request dependencies: the shared engine and the settings the app was built with."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response, status
from sqlalchemy import Engine

from app.components.management.schemas import CommandResult
from app.components.management.service import Management
from app.core.audit import OPERATOR_TOKEN
from app.core.enums import CommandStatus
from app.core.settings import Settings


def request_engine(request: Request) -> Engine:
    """The engine created at start-up."""
    engine: Engine = request.app.state.engine
    return engine


def request_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


EngineDep = Annotated[Engine, Depends(request_engine)]
SettingsDep = Annotated[Settings, Depends(request_settings)]


def request_management(engine: EngineDep, settings: SettingsDep) -> Management:
    """Jobs and runs on the shared database; the audit log names the operator token.

    (Only the operator token gets this far with a change: `auth.require_token` refuses the
    read-only one.)
    """
    return Management(engine, settings, actor=OPERATOR_TOKEN)


ManagementDep = Annotated[Management, Depends(request_management)]


def command_response(
    result: CommandResult, response: Response, applied: int = status.HTTP_200_OK
) -> CommandResult:
    """The status code that tells the outcome: applied, 202 stored for later, 409 rejected."""
    response.status_code = {
        CommandStatus.APPLIED: applied,
        CommandStatus.PENDING: status.HTTP_202_ACCEPTED,
        CommandStatus.REJECTED: status.HTTP_409_CONFLICT,
    }[result.status]
    return result
