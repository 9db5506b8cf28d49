"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import PROJECT_NAME, __version__
from app.components.backend.routers import health, jobs
from app.core.db import create_db_engine
from app.core.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API, with its own engine on the shared database."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The API only reads; the scheduler creates the tables. Until it has, readiness says so.
        engine = create_db_engine(settings.database_url)
        app.state.engine = engine
        app.state.settings = settings
        yield
        engine.dispose()

    app = FastAPI(
        title=PROJECT_NAME,
        description="Health, readiness and the scheduled jobs.",
        version=__version__,
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(jobs.router)
    return app
