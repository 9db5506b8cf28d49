"""Request dependencies: the shared engine and the settings the app was built with."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

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
