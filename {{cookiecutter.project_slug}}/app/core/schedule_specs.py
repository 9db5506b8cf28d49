"""Schedules as JSON, for the API, the CLI and the tables that keep runtime changes.

`{"kind": "cron", "expression": "0 6 * * *", "timezone": "Europe/Paris"}`,
`{"kind": "interval", "minutes": 15}` or `{"kind": "once", "at": "2026-12-01T09:00:00Z"}`.
Each is checked by building its APScheduler trigger, so an invalid one is refused where it
enters, with the field and the problem, and never reaches the scheduler.
"""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

from app.core.schedules import Cron, Interval, Once, Schedule, ScheduleError, parse_timezone


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

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


class IntervalSpec(_Spec):
    """A fixed period: the parts are added up."""

    kind: Literal["interval"] = "interval"
    seconds: float = Field(0, ge=0, le=10**8)
    minutes: float = Field(0, ge=0, le=10**7)
    hours: float = Field(0, ge=0, le=10**6)
    days: float = Field(0, ge=0, le=10**5)

    @model_validator(mode="after")
    def _positive(self) -> IntervalSpec:
        if self.seconds + self.minutes + self.hours + self.days <= 0:
            raise ValueError("give a positive period in seconds, minutes, hours or days")
        return self

    def to_schedule(self) -> Interval:
        """The schedule this spec describes."""
        return Interval(
            seconds=self.seconds, minutes=self.minutes, hours=self.hours, days=self.days
        )


class OnceSpec(_Spec):
    """A single run at a moment with a time zone."""

    kind: Literal["once"] = "once"
    at: AwareDatetime

    def to_schedule(self) -> Once:
        """The schedule this spec describes."""
        return Once(self.at)


ScheduleSpec = Annotated[CronSpec | IntervalSpec | OnceSpec, Field(discriminator="kind")]
# What a reschedule accepts: a job keeps recurring.
RecurringSpec = Annotated[CronSpec | IntervalSpec, Field(discriminator="kind")]
SCHEDULE_SPEC: TypeAdapter[CronSpec | IntervalSpec | OnceSpec] = TypeAdapter(ScheduleSpec)


def parse_spec(text: str) -> CronSpec | IntervalSpec | OnceSpec:
    """A spec stored as JSON."""
    return SCHEDULE_SPEC.validate_json(text)
