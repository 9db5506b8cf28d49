"""How the scheduler applies each command, on its event loop (see `commands.py`).

The sender checked the command against what it could read; these checks run again here,
against the scheduler's own state, which is the truth, and a command that no longer fits is
rejected with the reason.
"""

from __future__ import annotations

import json
from typing import Any

from apscheduler.job import Job

from app.components.scheduler.catalog import runtime_definition, with_schedule
from app.components.scheduler.commands import CommandKind
from app.components.scheduler.consumer import CommandRejected
from app.components.scheduler.execution import SKIP_REASON, JobRuntime
from app.components.scheduler.main import register_job
from app.components.scheduler.store_ids import planned_run_id
from app.core.db import utcnow
from app.core.enums import ExecutionStatus, TriggerKind
from app.core.models import SchedulerCommand
from app.core.schedule_specs import SCHEDULE_SPEC
from app.core.schedules import ScheduleError


def _when(job: Job) -> str:
    return job.next_run_time.isoformat() if job.next_run_time else "none (paused)"


class CommandHandler:
    """Applies commands to the runtime's scheduler; returns a sentence for the sender."""

    def __init__(self, runtime: JobRuntime) -> None:
        self.runtime = runtime
        self.scheduler = runtime.scheduler

    async def __call__(self, command: SchedulerCommand) -> str:
        payload: dict[str, Any] = json.loads(command.payload or "{}")
        kind = CommandKind(command.kind)
        if kind is CommandKind.ADD:
            return self._add(command.job_id or "", payload)
        job_id = command.job_id or ""
        if kind in (CommandKind.RUN, CommandKind.RETRY):
            return self._run(job_id, command.execution_id or "", payload)
        if kind is CommandKind.CANCEL:
            return self._cancel(job_id, command.execution_id or "")
        if kind is CommandKind.DELETE:
            return self._delete(job_id)
        job = self._job(job_id)
        if kind is CommandKind.PAUSE:
            if job.next_run_time is None:
                raise CommandRejected(f"job {job_id!r} is already paused")
            self.scheduler.pause_job(job_id)
            return "paused: it runs again once resumed"
        if kind is CommandKind.RESUME:
            if job.next_run_time is not None:
                raise CommandRejected(f"job {job_id!r} is not paused")
            resumed = self.scheduler.resume_job(job_id)
            return f"resumed: next run {_when(resumed)}"
        if kind is CommandKind.RESCHEDULE:
            return self._reschedule(job, payload)
        raise CommandRejected(f"unknown command {command.kind!r}")

    def _job(self, job_id: str) -> Job:
        job = self.scheduler.get_job(job_id)
        if job is None or job_id not in self.runtime.definitions:
            raise CommandRejected(f"the scheduler has no job {job_id!r}")
        return job

    def _reschedule(self, job: Job, payload: dict[str, Any]) -> str:
        spec = SCHEDULE_SPEC.validate_python(payload["schedule"])
        definition = with_schedule(self.runtime.definitions[job.id], spec)
        try:
            trigger = definition.trigger(self.runtime.settings.timezone)
        except ScheduleError as error:
            raise CommandRejected(f"schedule: {error}") from None
        if job.next_run_time is None:
            # Rescheduling computes a next run, which would quietly resume a paused job.
            job = self.scheduler.modify_job(job.id, trigger=trigger)
        else:
            job = self.scheduler.reschedule_job(job.id, trigger=trigger)
        self.runtime.definitions[job.id] = definition
        return f"rescheduled: next run {_when(job)}"

    def _run(self, job_id: str, execution_id: str, payload: dict[str, Any]) -> str:
        if job_id not in self.runtime.definitions:
            self.runtime.recorder.finished(
                execution_id,
                ExecutionStatus.CANCELLED,
                0.0,
                error=LookupError(f"the scheduler has no job {job_id!r}"),
            )
            raise CommandRejected(f"the scheduler has no job {job_id!r}")
        if self.runtime.at_capacity(job_id):
            limit = self.runtime.definitions[job_id].max_instances
            self.runtime.recorder.finished(
                execution_id, ExecutionStatus.SKIPPED, 0.0, reason=SKIP_REASON
            )
            raise CommandRejected(
                f"job {job_id!r} is running {limit} time(s) already, its max_instances: "
                "try again when a run ends"
            )
        self.runtime.plan_run(
            job_id,
            execution_id,
            utcnow(),
            trigger_kind=TriggerKind(payload.get("trigger_kind", TriggerKind.MANUAL)),
            arguments=payload.get("arguments") or {},
        )
        return f"run {execution_id} started"

    def _cancel(self, job_id: str, execution_id: str) -> str:
        try:
            return self.runtime.cancel(execution_id, job_id)
        except KeyError:
            raise CommandRejected(
                f"execution {execution_id} is neither pending nor running in the scheduler"
            ) from None

    def _add(self, job_id: str, payload: dict[str, Any]) -> str:
        if job_id in self.runtime.definitions:
            raise CommandRejected(f"a job with id {job_id!r} exists already")
        try:
            definition = runtime_definition(
                job_id,
                payload["name"],
                payload["function"],
                json.dumps(payload.get("args") or {}),
                json.dumps(payload["schedule"]),
                payload["queue"],
            )
            trigger = definition.trigger(self.runtime.settings.timezone)
        except ScheduleError as error:
            raise CommandRejected(str(error)) from None
        self.runtime.definitions[job_id] = definition
        if not register_job(self.scheduler, definition, trigger, self.runtime.settings):
            return "added; its one run is in the past, so it is not scheduled"
        return f"added: next run {_when(self._job(job_id))}"

    def _delete(self, job_id: str) -> str:
        definition = self.runtime.definitions.get(job_id)
        if definition is None:
            # A runtime job whose definition no longer loaded was never scheduled.
            return "deleted; it was not scheduled"
        if definition.origin == "code":
            raise CommandRejected(f"job {job_id!r} is defined in code: pause it instead")
        for job in self.scheduler.get_jobs():
            if job.id.startswith(planned_run_id(job_id, "")):
                self.runtime.cancel(job.kwargs["execution_id"], job_id)
        self.scheduler.remove_job(job_id)
        del self.runtime.definitions[job_id]
        return "deleted"
