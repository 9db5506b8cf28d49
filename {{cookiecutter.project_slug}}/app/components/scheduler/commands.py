"""The command channel: what only the running scheduler can do, asked by the API or the CLI.

Job changes are row updates (see `changes.py`). Running a job now, retrying a run and
cancelling one act on the live process, so they are commands: the sender writes a row to
`scheduler_commands`; the leader reads it (woken by LISTEN/NOTIFY on PostgreSQL, by short
polling on SQLite), applies it on its event loop, and marks the row applied or rejected. The
sender waits for that answer while a scheduler is running; with none running the row waits,
and applies when one starts.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import Engine, Select, exists, select
from sqlalchemy.orm import Session

from app.components.scheduler.catalog import notify
from app.core.db import database_now, session_scope, utcnow
from app.core.enums import CommandStatus, SchedulerState
from app.core.models import SchedulerCommand, SchedulerInstance

_POLL_SECONDS = 0.01


class CommandKind(StrEnum):
    """What a command asks of the scheduler."""

    RUN = "run"
    RETRY = "retry"
    CANCEL = "cancel"


@dataclass(frozen=True)
class CommandOutcome:
    """What became of a command: applied, rejected (with why), or stored for later."""

    command_id: str
    status: CommandStatus
    detail: str


def scheduler_running(session: Session, stale_after_seconds: float) -> bool:
    """Whether a scheduler that runs jobs has a fresh heartbeat."""
    cutoff = database_now(session.connection()) - timedelta(seconds=stale_after_seconds)
    query: Select[tuple[bool]] = select(
        exists().where(
            SchedulerInstance.state == SchedulerState.RUNNING,
            SchedulerInstance.last_seen >= cutoff,
        )
    )
    return bool(session.scalar(query))


def new_command_id() -> str:
    return uuid.uuid4().hex


def send_command(
    engine: Engine,
    kind: CommandKind,
    *,
    command_id: str | None = None,
    job_id: str | None = None,
    execution_id: str | None = None,
    also: Callable[[Session], None] | None = None,
    stale_after_seconds: float,
    wait_seconds: float,
) -> CommandOutcome:
    """Write a command (with `also`'s rows, in one transaction) and wait for the answer."""
    command_id = command_id or new_command_id()
    with session_scope(engine) as session:
        if also is not None:
            also(session)
        session.add(
            SchedulerCommand(
                id=command_id,
                kind=kind.value,
                job_id=job_id,
                execution_id=execution_id,
                payload="{}",
                status=CommandStatus.PENDING,
                created_at=utcnow(),
            )
        )
        # Delivered at commit, so the scheduler never wakes before the row is visible.
        notify(session.connection())
        running = scheduler_running(session, stale_after_seconds)
    if not running:
        return CommandOutcome(
            command_id,
            CommandStatus.PENDING,
            "no scheduler is running: the change is stored and applies when it starts",
        )
    return wait_for_answer(engine, command_id, wait_seconds)


def wait_for_answer(engine: Engine, command_id: str, wait_seconds: float) -> CommandOutcome:
    """Poll the command's row until the scheduler answers or `wait_seconds` pass."""
    deadline = time.monotonic() + wait_seconds
    query = select(SchedulerCommand.status, SchedulerCommand.detail).where(
        SchedulerCommand.id == command_id
    )
    while True:
        with engine.connect() as connection:
            status, detail = connection.execute(query).one()
        if status != CommandStatus.PENDING:
            return CommandOutcome(command_id, CommandStatus(status), detail or "")
        if time.monotonic() >= deadline:
            return CommandOutcome(
                command_id,
                CommandStatus.PENDING,
                f"the scheduler did not confirm within {wait_seconds:g} s: the change is "
                "stored and applies when the scheduler reads it",
            )
        time.sleep(_POLL_SECONDS)
