"""How times are written for machines: one ISO 8601 form, in UTC, everywhere.

The API, every `--json` output and the JSON logs write a moment as
`2026-01-31T06:00:00.000000Z`: always UTC, always the same length, so a client can compare
or parse them as text without a date library's leniency.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import PlainSerializer


def iso_utc(moment: datetime, timespec: str = "microseconds") -> str:
    """`moment` in UTC as ISO 8601 with a `Z`; a naive moment is taken to be UTC already."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


# A datetime field of an API or CLI model: parsed as pydantic parses any datetime, written
# in the one form above.
UtcTime = Annotated[datetime, PlainSerializer(iso_utc, return_type=str, when_used="json")]
