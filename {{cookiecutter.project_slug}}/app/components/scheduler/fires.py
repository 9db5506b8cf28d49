"""When a job's scheduled times fall, and what becomes of those that are due at once.

Scheduled times are computed from the job's stored next run, never from "now": an interval
job's times stay on the grid it started on, so a time is the same instant for every leader
that computes it, and a claim of it can be unique.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.triggers.base import BaseTrigger

from app.core.enums import CatchUp, MissReason

# A due time later than this passed while no scheduler could run it: the catch-up policy
# decides about it. Earlier ones are just due.
ON_TIME = timedelta(seconds=1)
# After a very long downtime a fast job has more passed times than are worth a row each; the
# oldest beyond this are summed up in the last row's reason instead.
MAX_CATCH_UP_ROWS = 10_000


def first_fire(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The first scheduled time of a job whose schedule starts now."""
    moment: datetime | None = trigger.get_next_fire_time(None, now)
    return moment


def next_fire(trigger: BaseTrigger, after: datetime) -> datetime | None:
    """The scheduled time that follows `after`; None when the schedule has ended."""
    moment: datetime | None = trigger.get_next_fire_time(after, after)
    return moment


@dataclass(frozen=True)
class DueTimes:
    """The scheduled times up to now, the first one after them, and how many were left out."""

    times: list[datetime]
    following: datetime | None
    left_out: int = 0


def due_times(trigger: BaseTrigger, first: datetime, now: datetime) -> DueTimes:
    """The scheduled times from `first` (a time of this schedule) up to `now`."""
    times: list[datetime] = []
    moment: datetime | None = first
    left_out = 0
    while moment is not None and moment <= now:
        if len(times) == MAX_CATCH_UP_ROWS:
            # Keep the newest: the policy runs the latest, and the count stays exact.
            times.pop(0)
            left_out += 1
        times.append(moment)
        moment = next_fire(trigger, moment)
    return DueTimes(times, moment, left_out)


@dataclass(frozen=True)
class Fate:
    """What one due scheduled time becomes: a run, or a `missed` row with the reason."""

    scheduled_at: datetime
    missed: str | None = None
    kind: MissReason | None = None


def decide(policy: CatchUp, grace: timedelta, due: DueTimes, now: datetime) -> list[Fate]:
    """Apply a job's catch-up policy to its due times, oldest first."""
    fates = []
    last = len(due.times) - 1
    for index, moment in enumerate(due.times):
        late = now - moment
        reason: str | None = None
        kind: MissReason | None = None
        if late > grace:
            reason = f"later than the misfire grace time allows ({grace})"
            kind = MissReason.MISFIRE_GRACE_TIME
        elif policy is CatchUp.LATEST:
            if index != last:
                reason = "a later scheduled time ran instead (catch_up=latest)"
                kind = MissReason.CATCH_UP_LATEST
        elif policy is CatchUp.NONE and late > ON_TIME:
            reason = "passed while no scheduler could run it (catch_up=none)"
            kind = MissReason.CATCH_UP_NONE
        fates.append(Fate(moment, reason, kind))
    if due.left_out and fates and fates[0].missed is not None:
        # The oldest row that is missed says how many older times have no row. (If it runs,
        # it stays a run: the claimer logs and counts the times left out.)
        first = fates[0]
        note = f"{due.left_out} earlier scheduled times were missed too and are not listed"
        fates[0] = Fate(first.scheduled_at, f"{first.missed}; {note}", first.kind)
    return fates
