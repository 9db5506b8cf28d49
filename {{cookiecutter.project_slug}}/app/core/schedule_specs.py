"""Schedules as structured data: what the API and the CLI accept and the `jobs` table keeps.

`{"kind": "cron", "expression": "0 6 * * *", "timezone": "Europe/Paris"}`,
`{"kind": "cron_fields", "fields": {"hour": 6, "day_of_week": "mon-fri"}}`,
`{"kind": "interval", "minutes": 15}` or `{"kind": "once", "at": "2026-12-01T09:00:00Z"}`.
Each is checked by building its APScheduler trigger, so an invalid one is refused where it
enters, with the field and the problem, and never reaches the scheduler.
"""

from __future__ import annotations

import json
from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

from app.core.schedules import (
    Cron,
    CronFields,
    Interval,
    Once,
    Schedule,
    ScheduleError,
    parse_timezone,
)
from app.core.times import IsoTime


class _Spec(BaseModel):
    # Frozen, so that a parsed spec can be shared: pages read the same few schedules again
    # and again (see `parse_spec`).
    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str | None = Field(
        None, description="IANA time zone; by default the job's own, else the service's."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            parse_timezone(value)
        return value

    def to_schedule(self) -> Schedule:
        raise NotImplementedError


class CronSpec(_Spec):
    """A five-field crontab expression (Sunday is 0 or 7)."""

    kind: Literal["cron"] = "cron"
    expression: str = Field(examples=["0 6 * * *"], max_length=200)

    @field_validator("expression")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        try:
            Cron(value).to_trigger(ZoneInfo("UTC"))
        except ScheduleError as error:
            raise ValueError(str(error).removeprefix("cron: ")) from None
        return value

    def to_schedule(self) -> Cron:
        """The schedule this spec describes."""
        return Cron(self.expression)


class CronFieldsSpec(_Spec):
    """Cron given field by field, as `CronFields` takes it in code."""

    kind: Literal["cron_fields"] = "cron_fields"
    fields: dict[str, int | str]

    @field_validator("fields")
    @classmethod
    def _valid_fields(cls, value: dict[str, int | str]) -> dict[str, int | str]:
        try:
            CronFields(**value).to_trigger(ZoneInfo("UTC"))
        except ScheduleError as error:
            raise ValueError(str(error).removeprefix("cron fields: ")) from None
        return value

    def to_schedule(self) -> CronFields:
        """The schedule this spec describes."""
        return CronFields(**self.fields)


# 100,000 days: the longest period, however it is given.
MAX_PERIOD_SECONDS = 10**5 * 86400


class IntervalSpec(_Spec):
    """A fixed period: the parts are added up."""

    kind: Literal["interval"] = "interval"
    seconds: float = Field(0, ge=0, le=MAX_PERIOD_SECONDS)
    minutes: float = Field(0, ge=0, le=10**7)
    hours: float = Field(0, ge=0, le=10**6)
    days: float = Field(0, ge=0, le=10**5)

    @model_validator(mode="after")
    def _a_period_that_fits(self) -> IntervalSpec:
        if self.seconds + self.minutes + self.hours + self.days <= 0:
            raise ValueError("give a positive period in seconds, minutes, hours or days")
        # Each part is bounded, but so must be their sum: it is stored in seconds.
        if self.period_seconds > MAX_PERIOD_SECONDS:
            raise ValueError(
                f"the period adds up to {self.period_seconds:.0f} s: at most "
                f"{MAX_PERIOD_SECONDS:,} s (100,000 days)"
            )
        return self

    def to_schedule(self) -> Interval:
        """The schedule this spec describes."""
        return Interval(
            seconds=self.seconds, minutes=self.minutes, hours=self.hours, days=self.days
        )

    @property
    def period_seconds(self) -> float:
        """The period, in seconds."""
        return self.seconds + 60 * self.minutes + 3600 * self.hours + 86400 * self.days


class OnceSpec(_Spec):
    """A single run at a moment with a time zone."""

    kind: Literal["once"] = "once"
    at: IsoTime

    def to_schedule(self) -> Once:
        """The schedule this spec describes."""
        return Once(self.at)


Spec = CronSpec | CronFieldsSpec | IntervalSpec | OnceSpec
ScheduleSpec = Annotated[Spec, Field(discriminator="kind")]
# What a reschedule accepts: a job keeps recurring.
RecurringSpec = Annotated[CronSpec | CronFieldsSpec | IntervalSpec, Field(discriminator="kind")]
SCHEDULE_SPEC: TypeAdapter[Spec] = TypeAdapter(ScheduleSpec)


@lru_cache(maxsize=4096)
def parse_spec(text: str) -> Spec:
    """A spec stored as JSON; thousands of jobs share a few schedules, each parsed once."""
    return SCHEDULE_SPEC.validate_json(text)


def spec_of(schedule: Schedule, timezone: str | None) -> Spec:
    """The structured form of a schedule defined in code, in one normal form per schedule.

    Two schedules are the same when these are equal; an interval is kept in seconds, so
    `Interval(hours=1)` and `Interval(minutes=60)` compare equal.
    """
    if isinstance(schedule, Cron):
        return CronSpec(expression=" ".join(schedule.expression.split()), timezone=timezone)
    if isinstance(schedule, CronFields):
        return CronFieldsSpec(fields=dict(schedule.fields), timezone=timezone)
    if isinstance(schedule, Interval):
        period = timedelta(
            days=schedule.days,
            hours=schedule.hours,
            minutes=schedule.minutes,
            seconds=schedule.seconds,
        )
        return IntervalSpec(seconds=period.total_seconds(), timezone=timezone)
    return OnceSpec(at=schedule.at, timezone=timezone)


def spec_data(spec: Spec) -> dict[str, Any]:
    """The spec as plain JSON data with only what was given: equal schedules, equal data."""
    data: dict[str, Any] = spec.model_dump(mode="json", exclude_defaults=True)
    data["kind"] = spec.kind
    return data


def dump_spec(spec: Spec) -> str:
    """The JSON text a spec is stored as."""
    return json.dumps(spec_data(spec), sort_keys=True)
