"""How the leader applies each command, on its event loop (see `commands.py`).

The sender checked the command against what it could read; these checks run again here,
against the leader's own state, which is the truth, and a command that no longer fits is
rejected with the reason.
"""

from __future__ import annotations

import asyncio

from app.components.scheduler.changes import ChangeApplier
from app.components.scheduler.claims import SKIP_REASON
from app.components.scheduler.commands import CommandKind
from app.components.scheduler.consumer import CommandConsumer, CommandRejected
from app.components.scheduler.execution import JobRuntime
from app.components.scheduler.history import cancel_queued
from app.core.db import utcnow
from app.core.enums import ExecutionStatus
from app.core.models import SchedulerCommand


class CommandHandler:
    """Applies commands to the runtime; returns a sentence for the sender."""

    def __init__(self, runtime: JobRuntime) -> None:
        self.runtime = runtime

    async def __call__(self, command: SchedulerCommand) -> str:
        kind = CommandKind(command.kind)
        job_id, execution_id = command.job_id or "", command.execution_id or ""
        if kind in (CommandKind.RUN, CommandKind.RETRY):
            return await self._run(job_id, execution_id)
        if kind is CommandKind.CANCEL:
            return await self._cancel(execution_id)
        raise CommandRejected(f"unknown command {command.kind!r}")

    async def _run(self, job_id: str, execution_id: str) -> str:
        runtime = self.runtime
        if execution_id in runtime.planned or execution_id in runtime.running:
            # Its pending row was found when the timer was built, before this command was read.
            return f"run {execution_id} was planned already"
        # The timer holds only the jobs due within its horizon: a later one is read here.
        definition = await runtime.load(job_id)
        if definition is None:
            runtime.recorder.finished(
                execution_id,
                job_id,
                ExecutionStatus.CANCELLED,
                0.0,
                error=LookupError(f"the scheduler has no job {job_id!r}"),
            )
            raise CommandRejected(f"the scheduler has no job {job_id!r}")
        if runtime.at_capacity(job_id):
            runtime.recorder.finished(
                execution_id, job_id, ExecutionStatus.SKIPPED, 0.0, reason=SKIP_REASON
            )
            raise CommandRejected(
                f"job {job_id!r} is running {definition.max_instances} time(s) already, its "
                "max_instances: try again when a run ends"
            )
        if not runtime.plan(execution_id, job_id, utcnow()):
            return f"run {execution_id} was planned already"
        return f"run {execution_id} started"

    async def _cancel(self, execution_id: str) -> str:
        runtime = self.runtime
        try:
            return runtime.cancel(execution_id)
        except KeyError:
            if runtime.dispatch is None:
                raise CommandRejected(
                    f"execution {execution_id} is neither pending nor running in the scheduler"
                ) from None
        try:
            return await asyncio.to_thread(
                cancel_queued, runtime.engine, runtime.dispatch, execution_id
            )
        except KeyError:
            raise CommandRejected(
                f"execution {execution_id} is neither pending nor running in the scheduler, nor "
                "queued or running on a worker"
            ) from None


def command_consumer(runtime: JobRuntime, loop: asyncio.AbstractEventLoop) -> CommandConsumer:
    """What applies the changes and commands sent to the leader, to `runtime` on `loop`."""
    return CommandConsumer(
        runtime.engine,
        loop,
        ChangeApplier(runtime.engine, loop, runtime),
        CommandHandler(runtime),
        runtime.flush,
        runtime.settings.command_poll_seconds,
    )
