"""The leader's lease as readers see it; the scheduler takes and renews it (`lease.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from app.core.models import SchedulerLease

# The lease row's name; also what the PostgreSQL leader lock's key is made from.
LEASE_NAME = "scheduler"


@dataclass(frozen=True)
class LeaseState:
    """Who holds the lease, under which epoch, and until when (the database's clock)."""

    holder: str | None
    epoch: int
    acquired_at: datetime | None
    expires_at: datetime | None


_READ_LEASE = select(
    SchedulerLease.holder,
    SchedulerLease.epoch,
    SchedulerLease.acquired_at,
    SchedulerLease.expires_at,
).where(SchedulerLease.name == LEASE_NAME)


def read_lease(connection: Connection) -> LeaseState | None:
    """The lease row; None in a database whose schema has none yet."""
    row = connection.execute(_READ_LEASE).one_or_none()
    return None if row is None else LeaseState(*row)
