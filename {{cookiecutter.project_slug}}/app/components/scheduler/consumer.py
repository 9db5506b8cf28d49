"""The leader's mailbox: job changes and commands, read by one thread, applied on the loop.

A thread waits (LISTEN/NOTIFY on PostgreSQL with a slow poll as a safety net, short polling
on SQLite). Each time it wakes it first brings the timer to the latest job revision (see
`changes.py`), then hands each pending command to the event loop, waits until the history has
committed the result, and marks the command applied or rejected. So when a sender reads
"applied", the next read shows it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.components.scheduler import metrics
from app.components.scheduler.catalog import NOTIFY_CHANNEL
from app.components.scheduler.changes import ChangeApplier
from app.core import audit
from app.core.db import utcnow
from app.core.enums import CommandStatus
from app.core.models import SchedulerCommand
from app.core.text import first_line

logger = logging.getLogger("app.scheduler.commands")

_BATCH = 100
_APPLY_TIMEOUT_SECONDS = 10.0
# Also bounds how long a stop waits for the listener on PostgreSQL.
_LISTEN_SAFETY_POLL_SECONDS = 0.5
_RETRY_CAP_SECONDS = 10.0


class CommandRejected(Exception):
    """The command cannot be applied; the message says why, for the sender."""


Apply = Callable[[SchedulerCommand], Coroutine[Any, Any, str]]


class _Listener:
    """A PostgreSQL connection that LISTENs on the command channel."""

    def __init__(self, engine: Engine) -> None:
        self._connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._connection.exec_driver_sql(f"LISTEN {NOTIFY_CHANNEL}")
        self._driver: Any = self._connection.connection.driver_connection

    def wait(self, timeout: float) -> None:
        """Return on the first notification, or after `timeout` seconds."""
        for _ in self._driver.notifies(timeout=timeout, stop_after=1):
            pass

    def close(self) -> None:
        self._connection.invalidate()
        self._connection.close()


class CommandConsumer:
    """Applies job changes, then pending commands through `apply` on `loop`.

    `flush` commits the commands' effects before they are answered.
    """

    def __init__(
        self,
        engine: Engine,
        loop: asyncio.AbstractEventLoop,
        changes: ChangeApplier,
        apply: Apply,
        flush: Callable[[], bool],
        poll_seconds: float,
    ) -> None:
        self._engine = engine
        self._loop = loop
        self._changes = changes
        self._apply = apply
        self._flush = flush
        self._poll_seconds = poll_seconds
        self._stop = threading.Event()
        # Cleared while this instance does not hold the leader lock: a standby must not apply.
        self._active = threading.Event()
        self._active.set()
        self._thread: threading.Thread | None = None

    def drain(self) -> int:
        """Apply changes and every pending command now (from a thread other than the loop's).

        Returns how many commands were applied.
        """
        self._changes.apply()
        total = 0
        while not self._stop.is_set():
            count = self._consume_once()
            total += count
            if count < _BATCH:
                return total
        return total

    def start(self) -> None:
        """Consume in a background thread until `stop()`."""
        self._thread = threading.Thread(target=self._run, name="command-consumer", daemon=True)
        self._thread.start()

    def suspend(self) -> None:
        """Stop applying commands (the leader lock was lost) until `resume()`."""
        self._active.clear()

    def resume(self) -> None:
        """Apply commands again."""
        self._active.set()

    def stop(self) -> None:
        """Stop the thread; a command being applied is finished first."""
        self._stop.set()
        self._active.set()
        if self._thread is not None:
            self._thread.join(timeout=_APPLY_TIMEOUT_SECONDS + 2)

    def _run(self) -> None:
        listener: _Listener | None = None
        delay = 0.0
        while not self._stop.is_set():
            self._active.wait()
            try:
                if listener is None and self._engine.dialect.name == "postgresql":
                    listener = _Listener(self._engine)
                self._changes.apply()
                if self._consume_once() == _BATCH:
                    continue
                if delay:
                    logger.info("job changes and commands readable again")
                delay = 0.0
            except SQLAlchemyError as error:
                metrics.write_failed("commands")
                if listener is not None:
                    listener.close()
                    listener = None
                if not delay:
                    logger.error(
                        "cannot read job changes and commands; retrying",
                        extra={"error": first_line(error)},
                    )
                delay = min(max(delay * 2, 0.5), _RETRY_CAP_SECONDS)
                self._stop.wait(delay)
                continue
            if listener is not None:
                try:
                    listener.wait(_LISTEN_SAFETY_POLL_SECONDS)
                except Exception as error:  # noqa: BLE001 - a broken listener is replaced
                    logger.warning("command listener lost", extra={"error": repr(error)})
                    listener.close()
                    listener = None
            else:
                self._stop.wait(self._poll_seconds)
        if listener is not None:
            listener.close()

    def _consume_once(self) -> int:
        # Detached rows, so they can be read on the loop's thread after the session closes.
        with Session(self._engine, expire_on_commit=False) as session:
            commands = list(
                session.scalars(
                    select(SchedulerCommand)
                    .where(SchedulerCommand.status == CommandStatus.PENDING)
                    .order_by(SchedulerCommand.created_at, SchedulerCommand.id)
                    .limit(_BATCH)
                )
            )
        return self._process(commands)

    def _process(self, commands: list[SchedulerCommand]) -> int:
        if not commands:
            return 0
        answers = []
        for command in commands:
            status, detail = self._apply_one(command)
            answers.append({"command_id": command.id, "new_status": status, "new_detail": detail})
        if not self._flush():
            logger.warning("command effects not yet committed; answering anyway")
        applied_at = utcnow()
        with self._engine.begin() as connection:
            connection.execute(
                update(SchedulerCommand)
                .where(SchedulerCommand.id == bindparam("command_id"))
                .values(
                    status=bindparam("new_status"),
                    detail=bindparam("new_detail"),
                    applied_at=applied_at,
                ),
                answers,
            )
            audit.settle_commands(connection, answers)
        for command in commands:
            metrics.change_applied(
                command.created_at, applied_at, "command", self._changes.started_at
            )
        return len(commands)

    def _apply_one(self, command: SchedulerCommand) -> tuple[CommandStatus, str]:
        context = {"command_id": command.id, "kind": command.kind, "job_id": command.job_id}
        future = asyncio.run_coroutine_threadsafe(self._apply(command), self._loop)
        try:
            detail = future.result(timeout=_APPLY_TIMEOUT_SECONDS)
        except CommandRejected as error:
            logger.warning("command rejected", extra={**context, "reason": str(error)})
            return CommandStatus.REJECTED, str(error)
        except Exception as error:
            logger.exception("command failed", extra=context)
            return CommandStatus.REJECTED, f"the scheduler could not apply it: {error!r}"
        logger.info("command applied", extra={**context, "detail": detail})
        return CommandStatus.APPLIED, detail
