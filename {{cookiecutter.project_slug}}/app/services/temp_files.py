"""Temporary-file cleanup: delete what nobody has touched for a while."""

from __future__ import annotations

import errno
import logging
import os
import stat
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

    The walk holds each folder open and removes entries relative to it, never by path: a
    folder swapped for a symbolic link while the job runs cannot lead it outside `directory`.
    Links are removed as links and never followed.
    """
    settings = get_settings()
    # The configured folder itself may be a link (macOS's /tmp is): the walk starts where it
    # points, and follows no link below it.
    directory = (directory or settings.temp_path).resolve()
    max_age = max_age or timedelta(hours=settings.temp_file_max_age_hours)
    cutoff = (now or utcnow()).timestamp() - max_age.total_seconds()
    result = TempCleanupResult()
    if not directory.is_dir():
        logger.info(
            "temp directory does not exist; nothing to clean", extra={"path": str(directory)}
        )
        return result
    # Bottom-up, so that a folder is looked at once its contents are gone.
    for root, dirs, files, folder in os.fwalk(directory, topdown=False, follow_symlinks=False):
        for name in [*files, *dirs]:
            _remove_if_old(folder, name, cutoff, result, shown_as=Path(root, name))
    if result.errors:
        logger.warning(
            "some temporary files could not be removed",
            extra={"count": len(result.errors), "first": result.errors[0]},
        )
    return result


def _remove_if_old(
    folder: int, name: str, cutoff: float, result: TempCleanupResult, shown_as: Path
) -> None:
    """Remove `name` in the open `folder` if it is older than `cutoff`; a folder only if empty."""
    try:
        info = os.stat(name, dir_fd=folder, follow_symlinks=False)
        if info.st_mtime >= cutoff:
            return
        if stat.S_ISDIR(info.st_mode):
            os.rmdir(name, dir_fd=folder)
        else:
            os.unlink(name, dir_fd=folder)
            result.files_removed += 1
            result.bytes_freed += info.st_size
    except OSError as error:
        # A folder with something new in it stays, quietly: that is what it should do.
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
            result.errors.append(f"{shown_as}: {error.strerror}")
