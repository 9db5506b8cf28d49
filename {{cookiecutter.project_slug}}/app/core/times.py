"""How times are written for machines: one ISO 8601 form, in UTC, everywhere.

The API, every `--json` output and the JSON logs write a moment as
`2026-01-31T06:00:00.000000Z`: always UTC, always the same length, so a client can compare
or parse them as text without a date library's leniency.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, PlainSerializer


def iso_utc(moment: datetime, timespec: str = "microseconds") -> str:
    """`moment` in UTC as ISO 8601 with a `Z`; a naive moment is taken to be UTC already."""
    return as_utc(moment).isoformat(timespec=timespec).replace("+00:00", "Z")


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive one (a time typed without a zone) is taken to be UTC."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC)


# A datetime field of an API or CLI model: parsed as pydantic parses any datetime, written
# in the one form above.
UtcTime = Annotated[datetime, PlainSerializer(iso_utc, return_type=str, when_used="json")]

_NUMBER = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")


def _text_not_a_number(value: Any) -> Any:
    # Pydantic would read a number as seconds since 1970: 0.5 would be a time in 1970.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("give an ISO 8601 time with a zone, for example 2026-01-31T06:00:00Z")
    return value


# A time taken from input: ISO 8601 text with a zone (or offset), never a bare number.
IsoTime = Annotated[AwareDatetime, BeforeValidator(_text_not_a_number)]
