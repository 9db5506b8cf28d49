"""One scheduler per database runs jobs; any other instance waits on standby.

The leader holds a lock that the operating system or the database server releases when the
process dies, so a standby takes over without a timeout to tune:
- SQLite: an exclusive `flock` on a file beside the database (one host, as SQLite itself);
- PostgreSQL: a session-level advisory lock, held by a connection kept open for it.
Each new leader raises the epoch in `scheduler_lease`; every run it claims carries it. A claim
is unique per scheduled time whatever the lock says, so two leaders never run one time twice.
"""

from __future__ import annotations

import fcntl
import logging
import os
import zlib
from typing import Protocol

from sqlalchemy import Connection, Engine, text, update
from sqlalchemy.exc import SQLAlchemyError

from app.core.db import sqlite_path, utcnow, write_transaction
from app.core.models import SchedulerLease

LEASE_NAME = "scheduler"

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

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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

    def try_acquire(self) -> bool:
        if self.holds():
            return True
        try:
            connection = self.engine.connect()
            scope = connection.execute(text("SELECT current_database(), current_schema()")).one()
            key = zlib.crc32(f"{scope[0]}.{scope[1]}.{LEASE_NAME}".encode()) - 2**31
            acquired = bool(
                connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
            )
            # Commit so the connection is not left idle in a transaction while it holds the lock.
            connection.commit()
        except SQLAlchemyError as error:
            logger.warning("leader lock unavailable", extra={"error": str(error).splitlines()[0]})
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
        if self._connection is not None:
            # Invalidating closes the session itself rather than returning it to the pool, where
            # it would keep the lock.
            self._connection.invalidate()
            self._connection.close()
            self._connection = None


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
    return FileLock(f"{path}.scheduler-lock")


def take_epoch(engine: Engine, instance_id: str) -> int:
    """Record this instance as the leader under a new epoch; returns the epoch."""
    with write_transaction(engine) as connection:
        epoch = connection.execute(
            update(SchedulerLease)
            .where(SchedulerLease.name == LEASE_NAME)
            .values(epoch=SchedulerLease.epoch + 1, holder=instance_id, acquired_at=utcnow())
            .returning(SchedulerLease.epoch)
        ).scalar_one()
    return int(epoch)
