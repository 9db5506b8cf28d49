"""What a code-defined job declares: what runs, when, and how its runs are handled."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

from apscheduler.triggers.base import BaseTrigger

from app.components.scheduler.functions import JobFunction
from app.core.enums import CatchUp, JobOrigin, Queue
from app.core.schedule_specs import Spec, spec_of
from app.core.schedules import Schedule, ScheduleError, parse_timezone

JOB_ID_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
# Within a queue, the runs of a higher-priority job are taken first (worker processes).
LOWEST_PRIORITY, HIGHEST_PRIORITY = -100, 100


@dataclass(frozen=True)
class Fixed:
    """The same delay before every retry."""

    delay: timedelta

    def delay_before(self, retry: int) -> timedelta:
        """The delay before retry number `retry` (1 for the first)."""
        return self.delay


@dataclass(frozen=True)
class Exponential:
    """`base` doubled (times `factor`) per retry, capped, with up to `jitter` of it added at random.

    Jitter spreads the retries of jobs that failed together, so they do not hit a recovering
    upstream at the same instant.
    """

    base: timedelta
    factor: float = 2.0
    cap: timedelta = timedelta(hours=1)
    jitter: float = 0.1

    def delay_before(self, retry: int) -> timedelta:
        """The delay before retry number `retry` (1 for the first)."""
        delay = min(self.base * self.factor ** (retry - 1), self.cap)
        return delay * (1 + random.uniform(0, self.jitter))


@dataclass(frozen=True)
class Delays:
    """An explicit list of delays, for example 1 min, 5 min, 30 min; the last one repeats."""

    delays: Sequence[timedelta]

    def delay_before(self, retry: int) -> timedelta:
        """The delay before retry number `retry` (1 for the first)."""
        return self.delays[min(retry, len(self.delays)) - 1]


Backoff = Fixed | Exponential | Delays


@dataclass(frozen=True)
class Retry:
    """Up to `attempts` runs in all (the first included), waiting `backoff` between them."""

    attempts: int
    backoff: Backoff = field(default_factory=lambda: Fixed(timedelta(minutes=1)))


NO_RETRY = Retry(attempts=1)


@dataclass(frozen=True)
class ScheduledJob:
    """A job defined in code. The id is its identity in the `jobs` table: keep it stable.

    `catch_up` says what happens to scheduled times that passed while no scheduler could run
    them (downtime, a failover, a database outage); see `CatchUp`. `misfire_grace_time` is how
    late a run may still start, by default the settings' value (an hour); a later one is
    recorded as `missed`.

    `queue` and `priority` say where its runs wait for a worker process and in which order:
    each queue has its own share of every worker, and within a queue a run of a job of
    higher priority is taken first. (Without workers, the scheduler runs each at its time.)
    """

    id: str
    name: str
    func: Callable[..., Any]
    schedule: Schedule
    timezone: str | None = None
    max_instances: int = 1
    catch_up: CatchUp = CatchUp.LATEST
    misfire_grace_time: timedelta | None = None
    retry: Retry = NO_RETRY
    timeout: timedelta | None = None
    queue: Queue = Queue.DEFAULT
    priority: int = 0
    # Parameters of `func` a manual run (and a runtime job calling it) may set, as JSON.
    inputs: tuple[str, ...] = ()
    # Fixed arguments of every run: set for jobs added at runtime, empty for code-defined ones.
    args: Mapping[str, Any] = field(default_factory=dict)
    origin: JobOrigin = JobOrigin.CODE

    @cached_property
    def function(self) -> JobFunction:
        """The function with the inputs it accepts from outside."""
        return JobFunction(self.func, self.inputs)

    def validate(self) -> None:
        """Raise ScheduleError naming the field of the first problem found."""
        if not JOB_ID_PATTERN.fullmatch(self.id):
            raise ScheduleError(f"id: {self.id!r} must be lowercase letters, digits and _")
        try:
            self.function.check()
        except ValueError as error:
            raise ScheduleError(str(error)) from None
        if self.timezone is not None:
            try:
                parse_timezone(self.timezone)
            except ScheduleError as error:
                raise ScheduleError(f"timezone: {error}") from None
        if self.max_instances < 1:
            raise ScheduleError("max_instances: must be at least 1")
        if not LOWEST_PRIORITY <= self.priority <= HIGHEST_PRIORITY:
            raise ScheduleError(
                f"priority: must be from {LOWEST_PRIORITY} to {HIGHEST_PRIORITY}, "
                f"not {self.priority}"
            )
        if self.retry.attempts < 1:
            raise ScheduleError("retry.attempts: must be at least 1")
        if isinstance(self.retry.backoff, Delays) and not self.retry.backoff.delays:
            raise ScheduleError("retry.backoff: give at least one delay")
        for name in ("misfire_grace_time", "timeout"):
            value = getattr(self, name)
            if value is not None and value <= timedelta(0):
                raise ScheduleError(f"{name}: must be positive")

    @cached_property
    def spec(self) -> Spec:
        """The schedule as structured data, as the `jobs` table keeps it."""
        return spec_of(self.schedule, self.timezone)

    def grace(self, default: timedelta) -> timedelta:
        """How late a run may start: the job's own grace time, else `default`."""
        return self.misfire_grace_time or default

    def trigger(self, default_zone: str) -> BaseTrigger:
        """The APScheduler trigger, in the job's zone or else `default_zone`."""
        return self.schedule.to_trigger(parse_timezone(self.timezone or default_zone))
