"""Leadership is a lease: one row, taken and renewed by conditional updates on the database clock.

- A leader renews its lease every third of `LEADER_LEASE_SECONDS`. One that cannot renew in
  time stops claiming before the lease ends (fail-stop): it does not wait to be told.
- Each new leader raises the epoch, the fencing token. Every claim checks, in its own
  transaction, that its epoch is still the current and unexpired lease, so a leader that was
  frozen, cut off or slow claims nothing once it has lost the lease, whatever its memory says.
- A standby tries about every second. It takes a lease that has ended, or one whose holder has
  lost its lock: the leader holds a lock that the kernel or the database server frees when its
  process or session ends (`leader.py`), so a dead leader is replaced at once, not after the
  lease. A frozen leader keeps its lock, and only the end of its lease replaces it.
- A clean stop gives the lease up at once.

SQLite runs on one host and takes the same lease on that host's clock.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, Interval, bindparam, literal, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import ColumnElement, literal_column

from app.components.scheduler.leader import LeaderLock, leader_lock
from app.core.db import UTCDateTime, utcnow, write_transaction
from app.core.lease_state import LEASE_NAME
from app.core.models import SchedulerLease
from app.core.text import first_line

logger = logging.getLogger("app.scheduler")


class LeaseLost(Exception):
    """This process's lease is no longer the current one; it claims nothing more."""


class LeaseHeld(Exception):
    """Another scheduler holds the lease."""


def new_instance_id() -> str:
    """A fresh id for a scheduler process: every run it claims names it."""
    return uuid.uuid4().hex[:12]


def _clock(connection: Connection) -> ColumnElement[Any]:
    """Now, on the database server's clock where there is one (PostgreSQL)."""
    if connection.dialect.name == "postgresql":
        # clock_timestamp(), not now(): now() is the start of the transaction.
        return literal_column("(clock_timestamp() AT TIME ZONE 'UTC')", DateTime())
    return literal(utcnow(), UTCDateTime())


def _later(connection: Connection, seconds: float) -> ColumnElement[Any]:
    if connection.dialect.name == "postgresql":
        return _clock(connection) + bindparam("lease", timedelta(seconds=seconds), Interval())
    return literal(utcnow() + timedelta(seconds=seconds), UTCDateTime())


def _held_by(instance_id: str, epoch: int) -> tuple[ColumnElement[bool], ...]:
    """The lease row as `instance_id` holds it under `epoch`."""
    return (
        SchedulerLease.name == LEASE_NAME,
        SchedulerLease.holder == instance_id,
        SchedulerLease.epoch == epoch,
    )


def check_fence(connection: Connection, instance_id: str, epoch: int) -> None:
    """Raise `LeaseLost` unless `epoch` is the current, unexpired lease of `instance_id`.

    Called first in every claiming transaction, so a leader that lost its lease (frozen, cut
    off, slow) claims nothing from then on. The row is read, not locked: a lock would make a
    standby's take wait for a claim that a frozen leader left open, as long as it stays
    frozen. A claim already past this check when a standby takes over may still commit; the
    claims' unique key keeps the new leader from claiming the same times again, and a run
    whose lease ended before its time does not start (`Lease.valid`).
    """
    query = select(SchedulerLease.epoch).where(
        *_held_by(instance_id, epoch), SchedulerLease.expires_at > _clock(connection)
    )
    if connection.execute(query).first() is None:
        raise LeaseLost(f"the lease of epoch {epoch} is no longer this scheduler's")


def check_no_successor(connection: Connection, instance_id: str, epoch: int) -> None:
    """Raise `LeaseLost` if another scheduler has taken the lease since epoch `epoch`.

    For giving claims back, which may happen just after this process gave the lease up
    (a claim that landed during its stop). The row is locked until the caller commits, so no
    standby takes the lease, and builds its timer from the tables, halfway through.
    """
    query = select(SchedulerLease.epoch).where(*_held_by(instance_id, epoch))
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    if connection.execute(query).first() is None:
        raise LeaseLost(f"another scheduler has led since epoch {epoch}")


class Lease:
    """This process's hold on leadership under one epoch, from its take to its end."""

    def __init__(
        self,
        engine: Engine,
        lock: LeaderLock,
        instance_id: str,
        epoch: int,
        seconds: float,
        valid_until: float,
        locked: bool,
    ) -> None:
        self.engine = engine
        self.lock = lock
        self.instance_id = instance_id
        self.epoch = epoch
        self.seconds = seconds
        # On this process's monotonic clock, which counts time spent frozen: a process
        # stopped past its lease finds it invalid the moment it continues.
        self.valid_until = valid_until
        self.lost: str | None = None
        # Whether the lease row says this holder has the lock, so that its death is seen at
        # once; without it, renewals come sooner, to take the lock as soon as it is free.
        self.locked = locked
        self._ended = False

    def valid(self) -> bool:
        """Whether this process may still start runs under the lease."""
        return self.lost is None and time.monotonic() < self.valid_until

    def remaining(self) -> float:
        """Seconds left before the lease ends unless renewed."""
        return self.valid_until - time.monotonic()

    def renewal_interval(self) -> float:
        """Every third of the lease; every half second while this holder lacks the lock."""
        return self.seconds / 3 if self.locked else min(self.seconds / 3, 0.5)

    def renew(self) -> bool:
        """Extend the lease; False if it is lost. Raises `SQLAlchemyError` if unknown."""
        sent = time.monotonic()
        locked = self.lock.holds() or self.lock.try_acquire()
        with write_transaction(self.engine) as connection:
            renewed = connection.execute(
                update(SchedulerLease)
                .where(
                    *_held_by(self.instance_id, self.epoch),
                    SchedulerLease.expires_at > _clock(connection),
                )
                .values(expires_at=_later(connection, self.seconds), holder_locked=locked)
                .returning(SchedulerLease.epoch)
            ).first()
        if renewed is None:
            self.lose("another scheduler took the lease, or it ended before it was renewed")
            return False
        self.locked = locked
        if self.lost is None:
            self.valid_until = sent + self.seconds
        return self.lost is None

    def lose(self, reason: str) -> None:
        """Mark the lease lost; the first reason is kept."""
        if self.lost is None:
            self.lost = reason

    def give_up(self) -> None:
        """End the lease now, if it is still this one, so no standby waits; free the lock.

        The update names this epoch, so it never touches a successor's lease. It is made even
        after the lease was lost here: a renewal that timed out may still have committed.
        """
        self.lose("given up")
        if not self._ended:
            self._ended = True
            try:
                with write_transaction(self.engine) as connection:
                    connection.execute(
                        update(SchedulerLease)
                        .where(*_held_by(self.instance_id, self.epoch))
                        .values(expires_at=_clock(connection), holder_locked=False)
                    )
            except SQLAlchemyError as error:
                logger.warning(
                    "lease not given up; a standby takes over when it ends",
                    extra={"error": first_line(error)},
                )
        self.lock.release()


class Candidate:
    """A scheduler process that may lead: it takes the lease when it is free."""

    def __init__(self, engine: Engine, instance_id: str, seconds: float) -> None:
        self.engine = engine
        self.instance_id = instance_id
        self.seconds = seconds
        self.lock = leader_lock(engine)

    def try_take(self) -> Lease | None:
        """The lease under a new epoch if it has ended or its holder died; else None."""
        sent = time.monotonic()
        locked = self.lock.try_acquire()
        try:
            epoch = self._take(locked)
        except BaseException:
            self.lock.release()
            raise
        if epoch is None:
            # A standby keeps no lock: a leader without one (it took a free lease while
            # another process held the lock for a moment, or an ended one from a frozen
            # holder) takes it at one of its next renewals.
            self.lock.release()
            return None
        return Lease(
            self.engine,
            self.lock,
            self.instance_id,
            epoch,
            self.seconds,
            sent + self.seconds,
            locked,
        )

    def _take(self, locked: bool) -> int | None:
        with write_transaction(self.engine) as connection:
            now = _clock(connection)
            free = (
                SchedulerLease.holder.is_(None)
                | SchedulerLease.expires_at.is_(None)
                | (SchedulerLease.expires_at <= now)
            )
            if locked:
                # This process holds the lock, so a holder that held it has lost it: its
                # process or its database session ended.
                free = free | SchedulerLease.holder_locked
            epoch = connection.execute(
                update(SchedulerLease)
                .where(SchedulerLease.name == LEASE_NAME, free)
                .values(
                    holder=self.instance_id,
                    epoch=SchedulerLease.epoch + 1,
                    acquired_at=now,
                    expires_at=_later(connection, self.seconds),
                    holder_locked=locked,
                )
                .returning(SchedulerLease.epoch)
            ).scalar()
        return None if epoch is None else int(epoch)
