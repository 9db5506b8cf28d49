"""A job's next scheduled times in its own time zone, with the ones a DST change moves flagged.

Where clocks go forward, a cron time inside the skipped hour either does not run (`*` hours)
or runs an hour later by the wall clock (a fixed hour); where they go back, a wall time
happens twice and a fixed-hour job runs at the first only. Each such time says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from apscheduler.triggers.base import BaseTrigger

from app.components.scheduler.fires import first_fire, next_fire

# A daylight-saving change moves clocks by two hours at most.
_LOOK_BACK = timedelta(hours=2)
_STEPS_MOST = 64


@dataclass(frozen=True)
class UpcomingFire:
    """One scheduled time: when, on the job's wall clock, and what DST does to it."""

    at: datetime  # in the job's zone
    dst: str | None = None


def upcoming_fires(
    trigger: BaseTrigger, zone: tzinfo, first: datetime | None, now: datetime, count: int
) -> list[UpcomingFire]:
    """The next `count` times: from `first` (the stored next run) or else from `now`."""
    moment = first_fire(trigger, now) if first is None else _as_the_trigger_meant(trigger, first)
    fires: list[UpcomingFire] = []
    offset_before = now.astimezone(zone).utcoffset()
    while moment is not None and len(fires) < count:
        # Through UTC: `astimezone` to a datetime's own zone would keep a skipped wall time.
        local = moment.astimezone(UTC).astimezone(zone)
        note = _dst_note(moment, local, offset_before)
        fires.append(UpcomingFire(at=local, dst=note))
        # A change already told of at the time before is not told again at this one.
        offset_before = None if note else local.utcoffset()
        moment = next_fire(trigger, moment)
    return fires


def _as_the_trigger_meant(trigger: BaseTrigger, first: datetime) -> datetime:
    """The stored next run as the trigger gave it, with the wall time it meant.

    Stored in UTC, a time has lost that wall time (a skipped 02:30 reads as 01:30 UTC): the
    trigger, run again from a little before, gives it back. A schedule that has changed since,
    or one too dense to walk, keeps the stored time.
    """
    target = first.astimezone(UTC)
    moment = first_fire(trigger, first - _LOOK_BACK)
    # Compared in UTC: Python never finds a skipped or repeated wall time equal to another
    # zone's time (PEP 495).
    for _ in range(_STEPS_MOST):
        if moment is None or moment.astimezone(UTC) >= target:
            break
        moment = next_fire(trigger, moment)
    return moment if moment is not None and moment.astimezone(UTC) == target else first


def _dst_note(moment: datetime, local: datetime, offset_before: timedelta | None) -> str | None:
    wall = moment.replace(tzinfo=None)
    if moment.tzinfo is not UTC and wall != local.replace(tzinfo=None):
        # The trigger asked for a wall time the forward change skips: it runs an hour later.
        return (
            f"{wall:%H:%M} does not exist on {wall:%Y-%m-%d} (clocks go forward): "
            f"runs at {local:%H:%M %Z}"
        )
    other = local.replace(fold=1 - local.fold)
    if other.utcoffset() != local.utcoffset():
        which = "first" if local.fold == 0 else "second"
        return (
            f"{local:%H:%M} happens twice on {local:%Y-%m-%d} (clocks go back): this is the {which}"
        )
    offset = local.utcoffset()
    if offset_before is not None and offset is not None and offset != offset_before:
        direction = "forward" if offset > offset_before else "back"
        return (
            f"clocks go {direction} before this run (UTC{_hours(offset_before)} to "
            f"UTC{_hours(offset)})"
        )
    return None


def _hours(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
