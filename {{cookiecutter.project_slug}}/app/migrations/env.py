"""Alembic's entry point, for `alembic ...` on the command line and for `app.core.migrations`.

The database URL comes from the settings, like every other process's; the app passes its own
connection in instead, so an upgrade at start-up shares the caller's transaction and lock.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection
from sqlalchemy.types import TypeDecorator

from app.core.db import create_db_engine
from app.core.log import configure_logging
from app.core.migrations import include_object, lock_for_upgrade, target_metadata
from app.core.settings import get_settings


def render_item(kind: str, item: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write a custom column type as the type it stores, so a migration never imports the app."""
    if kind == "type" and isinstance(item, TypeDecorator):
        return f"sa.{item.impl!r}"
    return False


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata(),
        # SQLite cannot alter most of a table in place; batch mode copies it instead.
        render_as_batch=True,
        render_item=render_item,
        include_object=include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        lock_for_upgrade(connection)
        context.run_migrations()


def run_offline() -> None:
    """`alembic upgrade head --sql`: print the SQL instead of running it."""
    context.configure(
        url=get_settings().database_url,
        target_metadata=target_metadata(),
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given: Connection | None = context.config.attributes.get("connection")
    if given is not None:
        run_migrations(given)
        return
    # Run as the `alembic` command: say what it does, in the service's log format.
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)
    engine = create_db_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            run_migrations(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
