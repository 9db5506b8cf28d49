"""The history keeps what a run was given and what it reported, character for character.

Rows are written many to a statement, in the database's own array or row syntax; text that
looks like that syntax (quotes, backslashes, commas, braces, the word NULL) must come back as
it went in.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine

from app.components.scheduler.history import HistoryRecorder
from app.core.db import session_scope, utcnow
from app.core.enums import ExecutionStatus
from app.core.models import JobExecution

AWKWARD = [
    'a "quoted" word and a backslash \\ at the end\\',
    "commas, {braces}, (parentheses)",
    "a line\nbreak, a\ttab",
    "NULL",
    "",
    "zoë ✓ 日本語",
    '\\"',
    "it's",
]


@pytest.mark.parametrize("text", AWKWARD)
def test_input_and_error_come_back_as_written(engine: Engine, text: str) -> None:
    recorder = HistoryRecorder(engine, "test-instance")
    execution_id = recorder.planned(
        "awkward", "default", utcnow(), attempt=1, arguments={"text": text}
    )
    # Inserted in one batch, updated in the next: both statements carry the text.
    assert recorder.flush()
    recorder.finished(execution_id, "awkward", ExecutionStatus.FAILED, 1.5, error=ValueError(text))
    assert recorder.flush()
    recorder.close()
    with session_scope(engine) as session:
        row = session.get_one(JobExecution, execution_id)
    assert json.loads(row.input or "null") == {"text": text}
    assert row.error_message == (text or None)
    assert (row.status, row.duration_ms) == (ExecutionStatus.FAILED, 1.5)


def test_what_is_queued_after_the_final_write_is_named_in_the_log(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = HistoryRecorder(engine, "test-instance")
    first = recorder.planned("late", "default", utcnow(), attempt=1)
    recorder.close()
    with session_scope(engine) as session:
        assert session.get(JobExecution, first) is not None
    # A run that ends after the stop's last commit: nothing writes its end, and the log says so
    # once, not once a row.
    recorder.finished(first, "late", ExecutionStatus.SUCCEEDED, 1.0)
    recorder.finished(first, "late", ExecutionStatus.SUCCEEDED, 1.0)
    late = [r for r in caplog.records if "queued after the final write" in r.getMessage()]
    assert [r.levelname for r in late] == ["WARNING"]
