"""What due times become under each catch-up policy, and more due times than get rows."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import Engine, select

from app.components.scheduler import metrics
from app.components.scheduler.definition import ScheduledJob
from app.components.scheduler.execution import current_runtime
from app.components.scheduler.fires import DueTimes, decide
from app.components.scheduler.main import create_scheduler
from app.core.db import session_scope, utcnow
from app.core.enums import CatchUp, MissReason
from app.core.models import JobExecution
from app.core.schedules import Interval
from app.core.settings import Settings
from tests.helpers import stop, wait_until

NOW = utcnow()
TIMES = [NOW - timedelta(seconds=3), NOW - timedelta(seconds=2), NOW - timedelta(seconds=1)]
DAY = timedelta(days=1)


def test_catch_up_all_runs_every_time_and_left_out_times_do_not_turn_a_run_into_a_miss() -> None:
    fates = decide(CatchUp.ALL, DAY, DueTimes(TIMES, None, left_out=5), NOW)
    assert [(fate.missed, fate.kind) for fate in fates] == [(None, None)] * 3


def test_catch_up_latest_notes_the_left_out_times_on_the_oldest_miss() -> None:
    fates = decide(CatchUp.LATEST, DAY, DueTimes(TIMES, None, left_out=5), NOW)
    assert [fate.kind for fate in fates] == [
        MissReason.CATCH_UP_LATEST,
        MissReason.CATCH_UP_LATEST,
        None,
    ]
    assert fates[0].missed is not None
    assert fates[0].missed.endswith("5 earlier scheduled times were missed too and are not listed")


def test_times_too_late_are_missed_for_the_grace_time() -> None:
    fates = decide(CatchUp.ALL, timedelta(seconds=1.5), DueTimes(TIMES, None), NOW)
    assert [fate.kind for fate in fates] == [
        MissReason.MISFIRE_GRACE_TIME,
        MissReason.MISFIRE_GRACE_TIME,
        None,
    ]


ran: list[str] = []


def tick() -> None:
    ran.append("tick")


async def test_times_left_out_of_a_catch_up_are_counted_and_the_rest_run(
    settings: Settings, engine: Engine
) -> None:
    ran.clear()
    job = ScheduledJob(
        id="tick",
        name="Tick",
        func=tick,
        schedule=Interval(hours=1),
        catch_up=CatchUp.ALL,
        misfire_grace_time=DAY,
        # Both kept times are due at once.
        max_instances=2,
    )

    def unlisted() -> float:
        value = metrics.REGISTRY.get_sample_value(
            "scheduler_fires_missed_total", {"job_id": "tick", "reason": "unlisted"}
        )
        return value or 0.0

    def statuses() -> list[str]:
        # What the history holds once what is queued is written.
        current_runtime().recorder.flush()
        with session_scope(engine) as session:
            return [str(status) for status in session.scalars(select(JobExecution.status))]

    before = unlisted()
    scheduler = create_scheduler((job,), settings, engine)
    scheduler.start()
    runtime = current_runtime()
    try:
        await asyncio.sleep(0)
        now = utcnow()
        runtime.claimer.submit("tick", [now - timedelta(seconds=2), now], left_out=3)
        await wait_until(lambda: statuses() == ["succeeded"] * 2, 10, "both kept times to run")
        assert runtime.claimer.healthy
    finally:
        await stop(scheduler)
    assert ran == ["tick", "tick"]
    assert unlisted() - before == 3
