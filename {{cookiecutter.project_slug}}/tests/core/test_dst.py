"""Cron jobs across daylight-saving changes, with the clock under the test's control.

Europe/Paris springs forward on 2026-03-29 (02:00 becomes 03:00) and falls back on 2026-10-25
(03:00 becomes 02:00). Each test walks the trigger from one fire time to the next, as the
scheduler does, so "now" is whatever the test says.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.core.schedules import Cron

PARIS = ZoneInfo("Europe/Paris")


def fire_times(expression: str, start: datetime, count: int) -> list[datetime]:
    trigger = Cron(expression).to_trigger(PARIS)
    times: list[datetime] = []
    previous, now = None, start
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        assert fire is not None
        times.append(fire)
        # Through UTC, as a real clock would tick: local arithmetic would drop `fold`.
        previous, now = fire, (fire.astimezone(UTC) + timedelta(microseconds=1)).astimezone(PARIS)
    return times


def local(times: list[datetime]) -> list[str]:
    """Wall-clock times as a person in Paris reads them at those instants."""
    return [t.astimezone(UTC).astimezone(PARIS).strftime("%m-%d %H:%M %Z") for t in times]


def test_fixed_time_in_the_skipped_hour_runs_once_that_day() -> None:
    times = fire_times("30 2 * * *", datetime(2026, 3, 27, 12, tzinfo=PARIS), 4)
    assert local(times) == [
        "03-28 02:30 CET",
        "03-29 03:30 CEST",  # 02:30 does not exist; the run comes an hour later, not never
        "03-30 02:30 CEST",
        "03-31 02:30 CEST",
    ]


def test_fixed_time_in_the_repeated_hour_runs_once_that_day() -> None:
    times = fire_times("30 2 * * *", datetime(2026, 10, 23, 12, tzinfo=PARIS), 4)
    assert local(times) == [
        "10-24 02:30 CEST",
        "10-25 02:30 CEST",  # the first 02:30; the second, an hour later, is not a new day
        "10-26 02:30 CET",
        "10-27 02:30 CET",
    ]


@pytest.mark.parametrize(
    ("start", "expected_gap_hours"),
    [(datetime(2026, 3, 27, 12, tzinfo=PARIS), 23), (datetime(2026, 10, 23, 12, tzinfo=PARIS), 25)],
)
def test_daily_job_keeps_its_wall_clock_time(start: datetime, expected_gap_hours: int) -> None:
    times = fire_times("0 9 * * *", start, 3)
    assert [moment[6:11] for moment in local(times)] == ["09:00", "09:00", "09:00"]
    # Subtracting times that share a tzinfo ignores their offsets; compare instants in UTC.
    utc = [t.astimezone(UTC) for t in times]
    gaps = [(b - a).total_seconds() / 3600 for a, b in itertools.pairwise(utc)]
    assert expected_gap_hours in gaps


def test_every_half_hour_follows_real_time_through_the_repeated_hour() -> None:
    times = fire_times("*/30 * * * *", datetime(2026, 10, 25, 1, 45, tzinfo=PARIS), 5)
    # Both 02:30s are real half hours apart, so an every-30-minutes job runs in both.
    assert local(times) == [
        "10-25 02:00 CEST",
        "10-25 02:30 CEST",
        "10-25 02:00 CET",
        "10-25 02:30 CET",
        "10-25 03:00 CET",
    ]
    utc = [t.astimezone(UTC) for t in times]
    assert all(b - a == timedelta(minutes=30) for a, b in itertools.pairwise(utc))


def test_no_run_is_lost_or_doubled_over_a_year() -> None:
    times = fire_times("15 2 * * *", datetime(2026, 1, 1, tzinfo=PARIS), 365)
    days = [t.astimezone(PARIS).date() for t in times]
    assert len(set(days)) == 365
    assert days[0].isoformat() == "2026-01-01"
    assert days[-1].isoformat() == "2026-12-31"
