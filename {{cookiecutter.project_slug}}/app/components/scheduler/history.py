"""Execution history, queued by the event loop and committed by a `BatchWriter` thread.

A run that starts and ends between two commits is written once, final.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, update

from app.components.scheduler.writer import BatchWriter
from app.core.db import utcnow
from app.core.enums import ExecutionStatus, TriggerKind
from app.core.models import JobExecution

logger = logging.getLogger("app.scheduler.history")

MAX_TRACEBACK_CHARS = 8000
MAX_MESSAGE_CHARS = 2000


def _clip(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    # Keep both ends: the start says where it began, the end where it failed.
    half = limit // 2
    return f"{text[:half]}\n... {len(text) - limit} characters cut ...\n{text[-half:]}"


_Batch = tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]


class HistoryRecorder(BatchWriter):
    """Queues execution rows; a writer thread commits them."""

    def __init__(self, engine: Engine, instance_id: str) -> None:
        super().__init__("history-writer", logger, "execution history")
        self.engine = engine
        self.instance_id = instance_id
        self._inserts: dict[str, dict[str, Any]] = {}
        self._updates: dict[str, dict[str, Any]] = {}

    def started(
        self,
        job_id: str,
        queue: str,
        scheduled_at: datetime,
        attempt: int,
        trigger_kind: TriggerKind,
    ) -> str:
        """Queue a `running` row for a run that starts now; returns its execution id."""
        return self._queue_row(
            job_id,
            queue,
            scheduled_at,
            status=ExecutionStatus.RUNNING,
            attempt=attempt,
            trigger_kind=trigger_kind,
            started_at=utcnow(),
        )

    def planned(
        self,
        job_id: str,
        queue: str,
        run_at: datetime,
        *,
        attempt: int,
        trigger_kind: TriggerKind,
        arguments: Mapping[str, Any] | None = None,
    ) -> str:
        """Queue a `pending` row for a run planned at `run_at`; returns its execution id."""
        return self._queue_row(
            job_id,
            queue,
            run_at,
            status=ExecutionStatus.PENDING,
            attempt=attempt,
            trigger_kind=trigger_kind,
            arguments=arguments,
        )

    def started_planned(self, execution_id: str) -> None:
        """Queue the start of a run whose pending row exists (a retry, a manual run)."""
        self._queue_update(
            execution_id,
            {
                "status": ExecutionStatus.RUNNING,
                "started_at": utcnow(),
                "instance_id": self.instance_id,
            },
        )

    def finished(
        self,
        execution_id: str,
        status: ExecutionStatus,
        duration_ms: float,
        error: BaseException | None = None,
        traceback: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Queue the end of a run; `reason` explains an outcome that is not an error."""
        message = str(error) if error else reason
        fields = {
            "finished_at": utcnow(),
            "duration_ms": round(duration_ms, 3),
            "status": status,
            "error_type": type(error).__name__ if error else None,
            "error_message": _clip(message, MAX_MESSAGE_CHARS) if message else None,
            "traceback": _clip(traceback, MAX_TRACEBACK_CHARS),
        }
        self._queue_update(execution_id, fields)

    def _queue_update(self, execution_id: str, fields: dict[str, Any]) -> None:
        with self._lock:
            pending = self._inserts.get(execution_id)
            if pending is not None:
                pending.update(fields)
            else:
                self._updates.setdefault(execution_id, {}).update(fields)
            self._changed()

    def outcome_without_run(
        self,
        job_id: str,
        queue: str,
        scheduled_at: datetime,
        status: ExecutionStatus,
        reason: str,
    ) -> str:
        """Queue a run that never started (missed, skipped); returns its execution id."""
        return self._queue_row(
            job_id,
            queue,
            scheduled_at,
            status=status,
            finished_at=utcnow(),
            error_message=reason,
        )

    def pending(self) -> int:
        """How many rows wait to be written."""
        with self._lock:
            return len(self._inserts) + len(self._updates)

    def _queue_row(
        self,
        job_id: str,
        queue: str,
        scheduled_at: datetime,
        *,
        status: ExecutionStatus,
        attempt: int = 1,
        trigger_kind: TriggerKind = TriggerKind.SCHEDULE,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        error_message: str | None = None,
        arguments: Mapping[str, Any] | None = None,
    ) -> str:
        execution_id = uuid.uuid4().hex
        row = {
            "id": execution_id,
            "job_id": job_id,
            "queue": queue,
            "scheduled_at": scheduled_at,
            "started_at": started_at,
            "finished_at": finished_at,
            "duration_ms": None,
            "status": status,
            "attempt": attempt,
            "trigger_kind": trigger_kind,
            "error_type": None,
            "error_message": error_message,
            "traceback": None,
            "instance_id": self.instance_id,
            "input": json.dumps(arguments) if arguments else None,
            "retry_of": None,
        }
        with self._lock:
            self._inserts[execution_id] = row
            self._changed()
        return execution_id

    def _take(self) -> _Batch | None:
        if not self._inserts and not self._updates:
            return None
        batch = (list(self._inserts.values()), self._updates)
        self._inserts, self._updates = {}, {}
        return batch

    def _put_back(self, batch: _Batch) -> None:
        inserts, updates = batch
        for row in inserts:
            row.update(self._updates.pop(row["id"], {}))
            self._inserts.setdefault(row["id"], row)
        for execution_id, fields in updates.items():
            # What was queued since is newer than what failed.
            self._updates[execution_id] = {**fields, **self._updates.get(execution_id, {})}

    def _write(self, batch: _Batch) -> None:
        inserts, updates = batch
        with self.engine.begin() as connection:
            if inserts:
                # The driver's own executemany: SQLAlchemy's per-value processing of thousands
                # of rows would hold the interpreter lock the event loop needs to fire jobs.
                to_db = _datetime_for(connection.dialect.name)
                marks = ", ".join(_placeholders(connection.dialect.paramstyle))
                connection.exec_driver_sql(
                    f"INSERT INTO {JobExecution.__tablename__} ({', '.join(_INSERT_COLUMNS)}) "
                    f"VALUES ({marks})",
                    [
                        tuple(
                            to_db(value) if isinstance(value, datetime) else value
                            for value in (row[column] for column in _INSERT_COLUMNS)
                        )
                        for row in inserts
                    ],
                )
            # One executemany per set of fields: a start and an end differ in what they set,
            # and an update must not blank the fields it does not carry.
            by_fields: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for execution_id, fields in updates.items():
                names = tuple(sorted(fields))
                by_fields.setdefault(names, []).append(
                    {"execution_id": execution_id, **{f"new_{n}": fields[n] for n in names}}
                )
            for names, rows in by_fields.items():
                # Bound names must differ from column names in an executemany UPDATE.
                statement = (
                    update(JobExecution)
                    .where(JobExecution.id == bindparam("execution_id"))
                    .values({name: bindparam(f"new_{name}") for name in names})
                )
                connection.execute(statement, rows)


_INSERT_COLUMNS = (
    "id",
    "job_id",
    "queue",
    "scheduled_at",
    "started_at",
    "finished_at",
    "duration_ms",
    "status",
    "attempt",
    "trigger_kind",
    "error_type",
    "error_message",
    "traceback",
    "instance_id",
    "input",
    "retry_of",
)


def _placeholders(paramstyle: str) -> list[str]:
    return ["?" if paramstyle == "qmark" else "%s"] * len(_INSERT_COLUMNS)


def _datetime_for(dialect: str) -> Any:
    """How UTCDateTime stores a value: naive UTC, as text on SQLite (SQLAlchemy's format)."""

    def naive_utc(value: datetime) -> datetime:
        return value.astimezone(UTC).replace(tzinfo=None)

    if dialect == "sqlite":
        return lambda value: naive_utc(value).isoformat(" ", "microseconds")
    return naive_utc
