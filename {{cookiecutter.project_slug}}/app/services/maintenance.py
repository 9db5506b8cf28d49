"""System maintenance: watch free disk space, and on SQLite keep the write-ahead log short."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine.interfaces import DBAPICursor

from app.core.db import PRIVATE_DIR_MODE, get_engine, sqlite_path
from app.core.settings import get_settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaintenanceResult:
    """What maintenance measured."""

    database_bytes: int | None
    disk_free_percent: float
    low_disk: bool


def run_system_maintenance(
    engine: Engine | None = None,
    data_dir: Path | None = None,
    warn_below_percent: float | None = None,
) -> MaintenanceResult:
    """Measure free disk space; on SQLite, checkpoint the WAL first and measure the file."""
    settings = get_settings()
    engine = engine or get_engine()
    data_dir = data_dir or settings.data_dir
    threshold = (
        settings.disk_free_warning_percent if warn_below_percent is None else warn_below_percent
    )

    database_file = sqlite_path(engine.url)
    database_bytes = None
    if database_file is not None:
        # Without a checkpoint the WAL file grows as long as some reader keeps it busy.
        # Outside a transaction, each pragma takes the locks it needs, waiting for them as
        # busy_timeout allows; in a read transaction that then writes, SQLite fails at once
        # if another process committed in between.
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            _optimize(cursor)
            cursor.close()
        finally:
            raw.close()
        database_bytes = database_file.stat().st_size

    data_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    usage = shutil.disk_usage(data_dir)
    free_percent = round(100 * usage.free / usage.total, 2)
    low_disk = free_percent < threshold
    if low_disk:
        logger.warning(
            "free disk space is low",
            extra={"path": str(data_dir), "free_percent": free_percent, "threshold": threshold},
        )
    return MaintenanceResult(database_bytes, free_percent, low_disk)


def _optimize(cursor: DBAPICursor) -> None:
    """Refresh the query planner's statistics where SQLite thinks they are stale.

    Its ANALYZE reads, then writes in the same statement; if another process commits in
    between, SQLite refuses at once rather than wait (waiting could deadlock). The statistics
    are an optimisation, so a refused pass is logged and left to the next run.
    """
    try:
        cursor.execute("PRAGMA optimize")
    except sqlite3.OperationalError as error:
        if "locked" not in str(error) and "busy" not in str(error):
            raise
        logger.info("planner statistics not refreshed: the database was busy; next run retries")
