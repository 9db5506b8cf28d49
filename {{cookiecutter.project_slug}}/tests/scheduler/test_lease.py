"""The lease: one holder at a time, taken over at once from a dead holder, and a fence on claims."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, insert, select, update

from app.components.scheduler.history import (
    LOST_LEADERSHIP,
    Advance,
    claim_scheduled,
    execution_row,
    release,
)
from app.components.scheduler.lease import Candidate, Lease, LeaseLost
from app.core.db import create_db_engine, utcnow
from app.core.enums import ExecutionStatus
from app.core.lease_state import read_lease
from app.core.models import Job, JobExecution, SchedulerLease
from app.core.settings import Settings
from tests.helpers import wait_for


@pytest.fixture
def engines(settings: Settings, engine: Engine) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on the test's database, as two scheduler processes would have."""
    other = create_db_engine(settings.database_url)
    yield engine, other
    other.dispose()


def candidates(
    engines: tuple[Engine, Engine], seconds: float = 10.0
) -> tuple[Candidate, Candidate]:
    return Candidate(engines[0], "first", seconds), Candidate(engines[1], "second", seconds)


def taken(candidate: Candidate) -> Lease:
    lease = candidate.try_take()
    assert lease is not None, f"{candidate.instance_id} could not take a free lease"
    return lease


def taken_within(candidate: Candidate, timeout: float) -> Lease:
    """Try as a standby does until the lease is taken; fail after `timeout` seconds."""
    leases: list[Lease] = []

    def took() -> bool:
        lease = candidate.try_take()
        if lease is not None:
            leases.append(lease)
        return bool(leases)

    wait_for(took, timeout, f"{candidate.instance_id} to take the lease")
    return leases[0]


def test_one_holder_and_each_leader_raises_the_epoch(engines: tuple[Engine, Engine]) -> None:
    first, second = candidates(engines)
    lease = taken(first)
    assert lease.valid()
    assert second.try_take() is None
    assert lease.renew()
    with engines[0].connect() as connection:
        state = read_lease(connection)
    assert state is not None
    assert (state.holder, state.epoch) == ("first", lease.epoch)
    assert state.expires_at is not None
    assert timedelta(seconds=9) < state.expires_at - utcnow() <= timedelta(seconds=10)

    lease.give_up()
    assert not lease.valid()
    successor = taken(second)
    assert successor.epoch == lease.epoch + 1
    successor.give_up()


def test_a_holder_whose_lock_went_is_replaced_at_once(engines: tuple[Engine, Engine]) -> None:
    first, second = candidates(engines)
    lease = taken(first)
    # What the kernel or the server does when the holder's process or session ends.
    lease.lock.release()
    successor = taken(second)
    assert successor.epoch == lease.epoch + 1
    assert not lease.renew()
    assert lease.lost is not None
    assert not lease.valid()
    successor.give_up()


def test_a_free_lease_taken_without_the_lock_gets_it_soon(
    engines: tuple[Engine, Engine],
) -> None:
    first, second = candidates(engines)
    # Another process holds the lock for a moment, as a standby does while it tries.
    assert second.lock.try_acquire()
    lease = taken(first)
    assert not lease.locked
    assert lease.renewal_interval() == 0.5
    second.lock.release()
    assert lease.renew()
    assert lease.locked
    assert lease.renewal_interval() == pytest.approx(10 / 3)
    lease.give_up()


def test_a_frozen_holder_is_replaced_when_its_lease_ends(
    engines: tuple[Engine, Engine],
) -> None:
    first, second = candidates(engines, seconds=1.0)
    lease = taken(first)
    taken_at = time.monotonic()
    # The holder keeps its lock, as a stopped process does: only the lease's end frees it.
    successor = taken_within(second, 5)
    assert time.monotonic() - taken_at >= 0.9
    assert not lease.valid(), "the frozen holder knows by its own clock that it lost"
    assert not lease.renew()
    successor.give_up()
    lease.give_up()


def test_a_leader_without_the_lock_takes_it_when_renewing(
    engines: tuple[Engine, Engine],
) -> None:
    first, second = candidates(engines, seconds=1.0)
    frozen = taken(first)
    leader = taken_within(second, 5)
    assert not leader.locked
    assert leader.renewal_interval() == pytest.approx(1 / 3), "renewed soon, for the lock"
    frozen.give_up()  # the frozen process continues, finds its lease lost and lets go
    assert leader.renew()
    assert leader.locked
    with engines[0].connect() as connection:
        locked = connection.scalar(select(SchedulerLease.holder_locked))
    assert locked, "the new leader holds the lock now, so its death is seen at once"
    leader.give_up()


def stored_job(engine: Engine, job_id: str = "probe") -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(Job),
            [
                {
                    "id": job_id,
                    "origin": "runtime",
                    "name": job_id,
                    "function": "noop",
                    "args": "{}",
                    "queue": "default",
                    # Never read here: the claims below name their times themselves.
                    "schedule": "{}",
                    "paused": False,
                    "next_run_at": utcnow(),
                    "version": 1,
                    "updated_at": utcnow(),
                }
            ],
        )


def claim_rows(lease: Lease, scheduled_at: object) -> list[dict[str, object]]:
    return [
        execution_row(
            "probe",
            "default",
            scheduled_at,  # type: ignore[arg-type]
            ExecutionStatus.RUNNING,
            instance_id=lease.instance_id,
            epoch=lease.epoch,
        )
    ]


def test_a_deposed_leader_claims_nothing(engines: tuple[Engine, Engine]) -> None:
    engine = engines[0]
    stored_job(engine)
    first, second = candidates(engines)
    deposed = taken(first)
    deposed.lock.release()
    leader = taken(second)
    moment = utcnow().replace(microsecond=0) + timedelta(seconds=5)
    advance = [Advance("probe", 1, moment + timedelta(seconds=1))]

    with pytest.raises(LeaseLost):
        claim_scheduled(engine, advance, claim_rows(deposed, moment), ("first", deposed.epoch))
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(JobExecution)) == 0
        assert connection.scalar(select(Job.version).where(Job.id == "probe")) == 1

    inserted, stale = claim_scheduled(
        engine, advance, claim_rows(leader, moment), ("second", leader.epoch)
    )
    assert len(inserted) == 1
    assert not stale
    leader.give_up()


def test_an_expired_lease_fences_even_with_no_successor(
    engines: tuple[Engine, Engine],
) -> None:
    engine = engines[0]
    stored_job(engine)
    lease = taken(candidates(engines)[0])
    with engine.begin() as connection:
        connection.execute(
            update(SchedulerLease).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    moment = utcnow() + timedelta(seconds=5)
    with pytest.raises(LeaseLost):
        claim_scheduled(
            engine,
            [Advance("probe", 1, None)],
            claim_rows(lease, moment),
            (lease.instance_id, lease.epoch),
        )


def test_claims_given_back_after_losing_the_lease_are_recorded_missed(
    engines: tuple[Engine, Engine],
) -> None:
    engine = engines[0]
    stored_job(engine)
    first, second = candidates(engines)
    lease = taken(first)
    moment = utcnow().replace(microsecond=0) + timedelta(seconds=5)
    after = moment + timedelta(seconds=1)
    rows = claim_rows(lease, moment)
    claim_scheduled(engine, [Advance("probe", 1, after)], rows, ("first", lease.epoch))
    lease.lock.release()
    successor = taken(second)

    released, missed = release(
        engine, [(str(rows[0]["id"]), "probe", moment, 1)], ("first", lease.epoch)
    )
    assert (released, missed) == (0, 1)
    with engine.connect() as connection:
        row = connection.execute(select(JobExecution.status, JobExecution.error_message)).one()
        next_run_at = connection.scalar(select(Job.next_run_at).where(Job.id == "probe"))
    assert (row.status, row.error_message) == (ExecutionStatus.MISSED, LOST_LEADERSHIP)
    # The successor may already have moved on from that time: it is not put back.
    assert next_run_at == after
    successor.give_up()


def test_claims_landing_after_a_clean_stop_are_given_back(
    engines: tuple[Engine, Engine],
) -> None:
    engine = engines[0]
    stored_job(engine)
    lease = taken(candidates(engines)[0])
    moment = utcnow().replace(microsecond=0) + timedelta(seconds=5)
    rows = claim_rows(lease, moment)
    claim_scheduled(
        engine,
        [Advance("probe", 1, moment + timedelta(seconds=1))],
        rows,
        (lease.instance_id, lease.epoch),
    )
    # The stop gave the lease up while this claim was still committing; nobody leads since.
    lease.give_up()
    released, missed = release(
        engine, [(str(rows[0]["id"]), "probe", moment, 1)], (lease.instance_id, lease.epoch)
    )
    assert (released, missed) == (1, 0)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(JobExecution)) == 0
        assert connection.scalar(select(Job.next_run_at).where(Job.id == "probe")) == moment
