"""The leader's lock: a fast sign that a leader died, beside its lease (`lease.py`).

The lock is freed by the kernel or the database server when the process or its session ends,
so a standby that gets it knows the leader it belonged to is gone and takes the lease at once.
The lease and its epoch stay the fence; the lock only makes a failover faster.
- SQLite: an exclusive `flock` on a file beside the database (one host, as SQLite itself);
- PostgreSQL: a session-level advisory lock, held by a connection kept open for it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import zlib
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from app.core.db import open_private_file, sqlite_path
from app.core.lease_state import LEASE_NAME
from app.core.text import first_line

logger = logging.getLogger("app.scheduler")


class LeaderLock(Protocol):
    """A lock only one scheduler process can hold at a time."""

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True when this process holds it."""

    def holds(self) -> bool:
        """Whether this process still holds the lock."""

    def release(self) -> None:
        """Give the lock up."""


class FileLock:
    """An exclusive lock on a file; the kernel releases it when the process exits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = open_private_file(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def holds(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class AdvisoryLock:
    """A PostgreSQL advisory lock, per database and schema; lost if its connection drops."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: Connection | None = None
        self._key = 0

    def try_acquire(self) -> bool:
        if self.holds():
            return True
        try:
            connection = self.engine.connect()
            scope = connection.execute(text("SELECT current_database(), current_schema()")).one()
            self._key = zlib.crc32(f"{scope[0]}.{scope[1]}.{LEASE_NAME}".encode()) - 2**31
            acquired = bool(
                connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
                ).scalar()
            )
            # Commit so the connection is not left idle in a transaction while it holds the lock.
            connection.commit()
        except SQLAlchemyError as error:
            logger.warning("leader lock unavailable", extra={"error": first_line(error)})
            return False
        if acquired:
            self._connection = connection
        else:
            connection.close()
        return acquired

    def holds(self) -> bool:
        if self._connection is None:
            return False
        try:
            self._connection.execute(text("SELECT 1"))
            self._connection.commit()
        except SQLAlchemyError:
            # The session that held the lock is gone, and the lock with it.
            self._connection.invalidate()
            self._connection = None
            return False
        return True

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            connection.commit()
        except SQLAlchemyError:
            # Closing the session itself, rather than returning it to the pool, frees the lock.
            connection.invalidate()
        connection.close()


class NoLock:
    """In-memory SQLite: no other process can share the database."""

    def try_acquire(self) -> bool:
        return True

    def holds(self) -> bool:
        return True

    def release(self) -> None:
        return None


def leader_lock(engine: Engine) -> LeaderLock:
    """The lock that fits the database behind `engine`."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine)
    path = sqlite_path(engine.url)
    if path is None:
        return NoLock()
    return FileLock(path.with_name(f"{path.name}.scheduler-lock"))
