"""A job's next fire times, with the ones a daylight-saving change moves flagged."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from app.components.scheduler.upcoming import upcoming_fires
from app.core.schedules import Cron, Interval

PARIS = ZoneInfo("Europe/Paris")
# 2027: clocks go forward on 28 March at 02:00 and back on 31 October at 03:00.
BEFORE_SPRING = datetime(2027, 3, 27, 0, 0, tzinfo=UTC)
BEFORE_AUTUMN = datetime(2027, 10, 30, 22, 0, tzinfo=UTC)


def fires(schedule: Cron | Interval, now: datetime, count: int) -> list[tuple[str, str | None]]:
    found = upcoming_fires(schedule.to_trigger(PARIS), PARIS, None, now, count)
    return [(fire.at.isoformat(), fire.dst) for fire in found]


def test_a_fixed_time_the_forward_change_skips_runs_an_hour_later_and_says_so() -> None:
    assert fires(Cron("30 2 * * *"), BEFORE_SPRING, 3) == [
        ("2027-03-27T02:30:00+01:00", None),
        (
            "2027-03-28T03:30:00+02:00",
            "02:30 does not exist on 2027-03-28 (clocks go forward): runs at 03:30 CEST",
        ),
        ("2027-03-29T02:30:00+02:00", None),
    ]


def test_hourly_runs_across_the_forward_change_say_the_clocks_moved() -> None:
    found = fires(Cron("0 * * * *"), datetime(2027, 3, 28, 0, 0, tzinfo=UTC), 3)
    assert found == [
        ("2027-03-28T01:00:00+01:00", None),
        ("2027-03-28T03:00:00+02:00", "clocks go forward before this run (UTC+01:00 to UTC+02:00)"),
        ("2027-03-28T04:00:00+02:00", None),
    ]


def test_a_fixed_time_in_the_repeated_hour_runs_once_at_the_first() -> None:
    assert fires(Cron("30 2 * * *"), BEFORE_AUTUMN, 2) == [
        (
            "2027-10-31T02:30:00+02:00",
            "02:30 happens twice on 2027-10-31 (clocks go back): this is the first",
        ),
        ("2027-11-01T02:30:00+01:00", None),
    ]


def test_hourly_runs_in_the_repeated_hour_run_at_both_and_name_which() -> None:
    found = fires(Cron("0 * * * *"), BEFORE_AUTUMN, 5)
    assert [note for _, note in found] == [
        None,
        None,
        "02:00 happens twice on 2027-10-31 (clocks go back): this is the first",
        "02:00 happens twice on 2027-10-31 (clocks go back): this is the second",
        None,
    ]


def test_an_interval_keeps_its_period_and_flags_the_wall_clock_jump() -> None:
    found = upcoming_fires(
        Interval(hours=12).to_trigger(PARIS),
        PARIS,
        datetime(2027, 10, 30, 18, 0, tzinfo=UTC),
        BEFORE_AUTUMN,
        3,
    )
    assert [fire.at.isoformat() for fire in found] == [
        "2027-10-30T20:00:00+02:00",
        "2027-10-31T07:00:00+01:00",
        "2027-10-31T19:00:00+01:00",
    ]
    assert [fire.dst for fire in found] == [
        None,
        "clocks go back before this run (UTC+02:00 to UTC+01:00)",
        None,
    ]


def test_a_yearly_schedule_lists_the_years_ahead() -> None:
    found = upcoming_fires(Cron("0 12 1 1 *").to_trigger(PARIS), PARIS, None, BEFORE_SPRING, 3)
    assert [fire.at.isoformat() for fire in found] == [
        "2028-01-01T12:00:00+01:00",
        "2029-01-01T12:00:00+01:00",
        "2030-01-01T12:00:00+01:00",
    ]


def test_a_stored_next_run_in_utc_keeps_the_wall_time_its_trigger_meant() -> None:
    # The leader stores 02:30 of the skipped hour as 01:30 UTC; the listing still says why.
    stored = datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    found = upcoming_fires(Cron("30 2 * * *").to_trigger(PARIS), PARIS, stored, BEFORE_SPRING, 2)
    assert found[0].at.isoformat() == "2027-03-28T03:30:00+02:00"
    assert found[0].dst is not None
    assert found[0].dst.startswith("02:30 does not exist on 2027-03-28")
    assert found[1].at.isoformat() == "2027-03-29T02:30:00+02:00"
