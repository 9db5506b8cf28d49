"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import PROJECT_NAME
from app.components.backend.routers import health, jobs
from app.core.db import create_db_engine, init_db
from app.core.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API, with its own engine on the shared database."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_db_engine(settings.database_url)
        init_db(engine)
        app.state.engine = engine
        app.state.settings = settings
        yield
        engine.dispose()

    app = FastAPI(
        title=PROJECT_NAME,
        description="Health, readiness and management of the scheduled jobs.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(jobs.router)
    return app
