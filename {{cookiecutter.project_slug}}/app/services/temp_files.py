"""Temporary-file cleanup: delete what nobody has touched for a while."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from app.core.db import utcnow
from app.core.settings import get_settings

logger = logging.getLogger(__name__)


@dataclass
class TempCleanupResult:
    """What a temp-file cleanup removed, and what it could not."""

    files_removed: int = 0
    bytes_freed: int = 0
    errors: list[str] = field(default_factory=list)


def cleanup_temp_files(
    directory: Path | None = None, max_age: timedelta | None = None, now: datetime | None = None
) -> TempCleanupResult:
    """Delete files under `directory` not modified for `max_age`, and the empty folders left.

    Symbolic links are removed as links and never followed, so a link cannot lead the job
    outside the directory.
    """
    settings = get_settings()
    directory = directory or settings.temp_path
    max_age = max_age or timedelta(hours=settings.temp_file_max_age_hours)
    cutoff = (now or utcnow()).timestamp() - max_age.total_seconds()
    result = TempCleanupResult()
    if not directory.is_dir():
        logger.info(
            "temp directory does not exist; nothing to clean", extra={"path": str(directory)}
        )
        return result
    for root, dirs, files in os.walk(directory, topdown=False):
        for name in files:
            path = Path(root, name)
            try:
                info = path.lstat()
                if info.st_mtime < cutoff:
                    path.unlink()
                    result.files_removed += 1
                    result.bytes_freed += info.st_size
            except OSError as error:
                result.errors.append(f"{path}: {error.strerror}")
        for name in dirs:
            path = Path(root, name)
            try:
                if path.is_symlink():
                    if path.lstat().st_mtime < cutoff:
                        path.unlink()
                        result.files_removed += 1
                elif not any(path.iterdir()) and path.stat().st_mtime < cutoff:
                    path.rmdir()
            except OSError as error:
                result.errors.append(f"{path}: {error.strerror}")
    if result.errors:
        logger.warning(
            "some temporary files could not be removed",
            extra={"count": len(result.errors), "first": result.errors[0]},
        )
    return result
