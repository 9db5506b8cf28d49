"""Crontab expressions mean what they mean in crontab, and read back the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.core.schedules import (
    Cron,
    Interval,
    Once,
    ScheduleError,
    crontab_weekdays,
    describe_trigger,
)

UTC_ZONE = ZoneInfo("UTC")


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("*", "*"),
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon-fri"),
        ("5-7", "fri-sun"),
        ("0,6", "sat-sun"),
        ("1,3,5", "mon,wed,fri"),
        ("*/2", "tue,thu,sat-sun"),
        ("MON-fri", "mon-fri"),
        ("sun-sat", "*"),
    ],
)
def test_weekdays_follow_crontab_numbering(field: str, expected: str) -> None:
    assert crontab_weekdays(field) == expected


@pytest.mark.parametrize("field", ["8", "x", "5-1", "*/0", "1,,2"])
def test_invalid_weekdays_are_refused(field: str) -> None:
    with pytest.raises(ScheduleError, match="day_of_week"):
        crontab_weekdays(field)


def test_sunday_cron_fires_on_sunday() -> None:
    trigger = Cron("0 9 * * 0").to_trigger(UTC_ZONE)
    saturday = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    fire = trigger.get_next_fire_time(None, saturday)
    assert fire is not None
    assert fire.strftime("%A %H:%M") == "Sunday 09:00"


def test_day_of_month_or_day_of_week_as_in_crontab() -> None:
    # Crontab: the 1st of the month, and every Monday.
    trigger = Cron("0 0 1 * 1").to_trigger(UTC_ZONE)
    moment = datetime(2026, 5, 30, tzinfo=UTC)
    fires = []
    for _ in range(7):
        moment = trigger.get_next_fire_time(None, moment + timedelta(seconds=1))
        assert moment is not None
        fires.append(moment.date().isoformat())
    # June 1st is a Monday; then the Mondays; then July 1st, a Wednesday; then a Monday again.
    assert fires == [
        "2026-06-01",
        "2026-06-08",
        "2026-06-15",
        "2026-06-22",
        "2026-06-29",
        "2026-07-01",
        "2026-07-06",
    ]
    assert describe_trigger(trigger) == 'cron "0 0 1 * mon" (UTC)'


def test_a_zone_given_to_the_trigger_is_used() -> None:
    trigger = Cron("30 6 * * *").to_trigger(ZoneInfo("Europe/Paris"))
    assert describe_trigger(trigger) == 'cron "30 6 * * *" (Europe/Paris)'


@pytest.mark.parametrize(
    ("schedule", "description"),
    [
        (Cron("*/5 9-17 * * 1-5"), 'cron "*/5 9-17 * * mon-fri" (UTC)'),
        (Interval(minutes=90), "every 1h 30m"),
        (Interval(days=1, seconds=5), "every 1d 5s"),
        (Once(at=datetime(2030, 1, 2, 3, 4, tzinfo=UTC)), "once at 2030-01-02T03:04:00+00:00"),
    ],
)
def test_descriptions_read_well(schedule: Cron | Interval | Once, description: str) -> None:
    assert describe_trigger(schedule.to_trigger(UTC_ZONE)) == description


def test_naive_one_time_date_is_refused() -> None:
    with pytest.raises(ScheduleError, match="aware datetime"):
        Once(at=datetime(2030, 1, 1)).to_trigger(UTC_ZONE)  # noqa: DTZ001
