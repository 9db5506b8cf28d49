"""When a job runs: cron, interval and one-time schedules, and their human-readable form.

Cron expressions follow standard crontab, which APScheduler 3 departs from twice:
- crontab's day of week 0 and 7 are Sunday, APScheduler's 0 is Monday, so numeric weekdays are
  translated to names before they reach it;
- when both day of month and day of week are restricted, crontab runs on days matching either
  and APScheduler on days matching both, so such an expression becomes two triggers, OR-ed.

Across daylight-saving changes a job with a fixed hour runs once a day: on the spring-forward
day a time that does not exist runs an hour later in wall-clock terms (the same instant in
UTC terms), and on the fall-back day only the first of the two repeated times fires. A job
whose hour field is `*` keeps running every period of real time, in both repeated hours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")


class ScheduleError(ValueError):
    """A schedule that cannot be built; the message names the field and the problem."""


def _weekday_number(token: str) -> int:
    lowered = token.lower()
    if lowered in _WEEKDAY_NAMES:
        return _WEEKDAY_NAMES.index(lowered)
    if lowered.isdigit() and 0 <= int(lowered) <= 7:
        return int(lowered) % 7
    raise ScheduleError(f"day_of_week: {token!r} is not a weekday (0-7 or sun-sat)")


def _expand_weekday_item(item: str) -> set[int]:
    body, _, step_text = item.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) == 0:
            raise ScheduleError(f"day_of_week: step {step_text!r} must be a positive number")
        step = int(step_text)
    if body == "*":
        first, last = 0, 6
    elif "-" in body:
        start, end = body.split("-", 1)
        first, last = _weekday_number(start), _weekday_number(end)
        if last == 0 and first > 0:
            last = 7  # "fri-sun" and "5-7" end on Sunday
        if last < first:
            raise ScheduleError(f"day_of_week: range {body!r} runs backwards")
    else:
        first = last = _weekday_number(body)
        if step_text:
            last = 6
    return {day % 7 for day in range(first, last + 1, step)}


def crontab_weekdays(field: str) -> str:
    """A standard crontab day-of-week field in APScheduler's unambiguous day names."""
    days: set[int] = set()
    for item in field.split(","):
        if not item:
            raise ScheduleError(f"day_of_week: empty item in {field!r}")
        days |= _expand_weekday_item(item)
    if days == set(range(7)):
        return "*"
    # APScheduler's weeks start on Monday, so runs of days are found in that order.
    monday_first = sorted((day + 6) % 7 for day in days)
    runs: list[list[int]] = []
    for position in monday_first:
        if runs and position == runs[-1][-1] + 1:
            runs[-1].append(position)
        else:
            runs.append([position])
    names = [_WEEKDAY_NAMES[(run[0] + 1) % 7] for run in runs]
    ends = [_WEEKDAY_NAMES[(run[-1] + 1) % 7] for run in runs]
    return ",".join(
        first if len(run) == 1 else f"{first}-{last}"
        for first, last, run in zip(names, ends, runs, strict=True)
    )


def parse_timezone(name: str) -> ZoneInfo:
    """A time zone by IANA name, with a clear error for unknown names."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"{name!r} is not an IANA time zone (for example UTC or Europe/Paris)"
        ) from None


class WallClockCronTrigger(CronTrigger):  # type: ignore[misc]  # APScheduler ships no types
    """A cron trigger that fires a fixed-hour time once on the day clocks fall back."""

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> Any:
        candidate = super().get_next_fire_time(previous_fire_time, now)
        while candidate is not None and self._repeats_an_hour(candidate):
            # Step forward in UTC: arithmetic on a local time drops `fold` and would land back
            # in the first of the repeated hours.
            after = (candidate.astimezone(UTC) + timedelta(seconds=1)).astimezone(self.timezone)
            candidate = super().get_next_fire_time(candidate, after)
        return candidate

    def _repeats_an_hour(self, moment: datetime) -> bool:
        hour = next(f for f in self.fields if f.name == "hour")
        return (
            str(hour) != "*"
            and moment.fold == 1
            and moment.replace(fold=0).utcoffset() != moment.utcoffset()
        )


def _cron_trigger(fields: dict[str, Any], zone: tzinfo) -> WallClockCronTrigger | OrTrigger:
    """Crontab semantics: weekday numbers as in crontab, and day fields OR-ed when both set."""
    fields = dict(fields)
    if "day_of_week" in fields:
        fields["day_of_week"] = crontab_weekdays(str(fields["day_of_week"]))
    day, weekday = str(fields.get("day", "*")), str(fields.get("day_of_week", "*"))
    if day != "*" and weekday != "*":
        return OrTrigger(
            [
                WallClockCronTrigger(**{**fields, "day_of_week": "*"}, timezone=zone),
                WallClockCronTrigger(**{**fields, "day": "*"}, timezone=zone),
            ]
        )
    return WallClockCronTrigger(**fields, timezone=zone)


@dataclass(frozen=True)
class Cron:
    """A standard five-field crontab expression: minute hour day-of-month month day-of-week."""

    expression: str

    def to_trigger(self, zone: tzinfo) -> WallClockCronTrigger | OrTrigger:
        """The APScheduler trigger for this schedule, read in `zone`."""
        values = self.expression.split()
        if len(values) != len(_CRON_FIELDS):
            raise ScheduleError(
                f"cron: {self.expression!r} has {len(values)} fields; expected 5 "
                "(minute hour day-of-month month day-of-week)"
            )
        try:
            return _cron_trigger(dict(zip(_CRON_FIELDS, values, strict=True)), zone)
        except ScheduleError:
            raise
        except ValueError as error:
            raise ScheduleError(f"cron: {self.expression!r}: {error}") from None


@dataclass(frozen=True)
class CronFields:
    """Cron given field by field: `CronFields(hour=6, minute=30, day_of_week="mon-fri")`.

    Fields left out behave as in APScheduler: larger units default to `*`, smaller ones to
    their minimum. Weekday numbers follow crontab (0 and 7 are Sunday).
    """

    fields: dict[str, int | str] = field(default_factory=dict)

    def __init__(self, **fields: int | str) -> None:
        object.__setattr__(self, "fields", fields)

    def to_trigger(self, zone: tzinfo) -> WallClockCronTrigger | OrTrigger:
        """The APScheduler trigger for this schedule, read in `zone`."""
        unknown = set(self.fields) - {*_CRON_FIELDS, "second", "week", "year"}
        if unknown:
            raise ScheduleError(f"cron fields: unknown field {sorted(unknown)[0]!r}")
        try:
            return _cron_trigger(self.fields, zone)
        except ScheduleError:
            raise
        except (ValueError, TypeError) as error:
            raise ScheduleError(f"cron fields: {error}") from None


@dataclass(frozen=True)
class Interval:
    """A fixed period between runs."""

    seconds: float = 0
    minutes: float = 0
    hours: float = 0
    days: float = 0

    def to_trigger(self, zone: tzinfo) -> IntervalTrigger:
        """The APScheduler trigger for this schedule."""
        period = timedelta(
            days=self.days, hours=self.hours, minutes=self.minutes, seconds=self.seconds
        )
        if period <= timedelta(0):
            raise ScheduleError("interval: the period must be positive")
        return IntervalTrigger(seconds=period.total_seconds(), timezone=zone)


@dataclass(frozen=True)
class Once:
    """A single run at an aware point in time."""

    at: datetime

    def to_trigger(self, zone: tzinfo) -> DateTrigger:
        """The APScheduler trigger for this schedule."""
        if self.at.tzinfo is None:
            raise ScheduleError("date: give an aware datetime (with a time zone)")
        return DateTrigger(run_date=self.at, timezone=zone)


Schedule = Cron | CronFields | Interval | Once


def _format_period(period: timedelta) -> str:
    total = int(period.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, total = divmod(total, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return " ".join(parts) or f"{period.total_seconds()}s"


def _crontab_fields(trigger: BaseTrigger) -> dict[str, str] | None:
    """The five crontab fields a trigger built by `Cron` stands for, else None."""
    if isinstance(trigger, CronTrigger):
        by_name = {field.name: str(field) for field in trigger.fields}
        return {name: by_name[name] for name in _CRON_FIELDS}
    if isinstance(trigger, OrTrigger) and len(trigger.triggers) == 2:
        by_day, by_weekday = (_crontab_fields(part) for part in trigger.triggers)
        if by_day and by_weekday:
            return {**by_day, "day_of_week": by_weekday["day_of_week"]}
    return None


def describe_trigger(trigger: BaseTrigger) -> str:
    """A short human-readable form: `cron "30 6 * * *" (UTC)`, `every 15m`, `once at ...`."""
    fields = _crontab_fields(trigger)
    if isinstance(trigger, OrTrigger) and fields:
        zone = trigger.triggers[0].timezone
        return f'cron "{" ".join(fields[name] for name in _CRON_FIELDS)}" ({zone})'
    if isinstance(trigger, CronTrigger):
        by_name = {field.name: field for field in trigger.fields}
        expression = " ".join(str(by_name[name]) for name in _CRON_FIELDS)
        extras = [
            f"{name}={by_name[name]}"
            for name in ("second", "week", "year")
            if not by_name[name].is_default
        ]
        suffix = f" {' '.join(extras)}" if extras else ""
        return f'cron "{expression}"{suffix} ({trigger.timezone})'
    if isinstance(trigger, IntervalTrigger):
        return f"every {_format_period(trigger.interval)}"
    if isinstance(trigger, DateTrigger):
        return f"once at {trigger.run_date.isoformat()}"
    return str(trigger)
