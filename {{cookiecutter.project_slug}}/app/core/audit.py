"""The audit log: who changed which job or run, and the state before and after.

Every change goes through `Management`, whatever asked for it (the API or the CLI), and
`Management` records it here in the change's own transaction. The outcome is pending until
the scheduler applies the change's revision or answers its command, whenever that is: then
applied, or rejected with the reason.
"""

from __future__ import annotations

import getpass
import json
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, update
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.core.enums import ActorKind, AuditAction, CommandStatus
from app.core.models import AuditEntry, Job
from app.core.times import iso_utc


@dataclass(frozen=True)
class Actor:
    """Who makes the changes of one `Management`: a kind, and which one of that kind."""

    kind: ActorKind
    name: str

    @classmethod
    def local_user(cls) -> Actor:
        """The CLI working on the database: the user and host it runs as."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown user"
        return cls(ActorKind.CLI, f"{user}@{socket.gethostname()}")

    @classmethod
    def dashboard_session(cls, session_id: str) -> Actor:
        """A dashboard session, by the id its sign-in gave it (the log's own, not a secret)."""
        return cls(ActorKind.DASHBOARD, f"session {session_id}")


OPERATOR_TOKEN = Actor(ActorKind.API_TOKEN, "operator token")


def job_state(row: Job | None) -> dict[str, Any] | None:
    """A job's stored state as the audit log keeps it; None where no row is stored."""
    if row is None:
        return None
    return {
        "name": row.name,
        "function": row.function,
        "args": json.loads(row.args),
        "queue": row.queue,
        "schedule": json.loads(row.schedule),
        "paused": row.paused,
        "next_run_at": iso_utc(row.next_run_at) if row.next_run_at else None,
        "version": row.version,
    }


def record(
    session: Session,
    actor: Actor,
    action: AuditAction,
    *,
    job_id: str | None,
    execution_id: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    revision: int | None = None,
    command_id: str | None = None,
) -> str:
    """Add an entry in `session`'s transaction; its outcome is pending until settled."""
    entry_id = uuid.uuid4().hex
    session.add(
        AuditEntry(
            id=entry_id,
            at=utcnow(),
            actor_kind=actor.kind,
            actor=actor.name,
            action=action,
            job_id=job_id,
            execution_id=execution_id,
            before=_json(before),
            after=_json(after),
            outcome=CommandStatus.PENDING,
            revision=revision,
            command_id=command_id,
        )
    )
    return entry_id


def settle(engine: Engine, entry_id: str, outcome: CommandStatus, detail: str) -> None:
    """Write what the sender saw of the change: applied, still stored, or rejected.

    Only while the entry is pending: the scheduler may have settled it first
    (`settle_revision`, `settle_commands`), and what it wrote is the last word.
    """
    with engine.begin() as connection:
        connection.execute(
            update(AuditEntry)
            .where(AuditEntry.id == entry_id, AuditEntry.outcome == CommandStatus.PENDING)
            .values(outcome=outcome, detail=detail)
        )


def settle_revision(connection: Connection, revision: int) -> None:
    """The leader applied the job changes up to `revision`: their entries are applied."""
    connection.execute(
        update(AuditEntry)
        .where(
            AuditEntry.outcome == CommandStatus.PENDING,
            AuditEntry.revision.is_not(None),
            AuditEntry.revision <= revision,
        )
        .values(outcome=CommandStatus.APPLIED, detail="applied by the scheduler")
    )


def settle_commands(connection: Connection, answers: list[dict[str, Any]]) -> None:
    """The leader answered commands (`command_id`, `new_status`, `new_detail` each)."""
    if not answers:
        return
    connection.execute(
        update(AuditEntry)
        .where(
            AuditEntry.command_id == bindparam("answered"),
            AuditEntry.outcome == CommandStatus.PENDING,
        )
        .values(outcome=bindparam("new_status"), detail=bindparam("new_detail")),
        [
            {
                "answered": a["command_id"],
                "new_status": a["new_status"],
                "new_detail": a["new_detail"],
            }
            for a in answers
        ],
    )


def _json(state: dict[str, Any] | None) -> str | None:
    return None if state is None else json.dumps(state, sort_keys=True)


def summarize(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """What changed, in one line: `paused: false -> true; version: 3 -> 4`."""
    if before is None and after is None:
        return "-"
    if before is None or after is None:
        shown = after if before is None else before
        assert shown is not None
        verb = "now" if before is None else "was"
        return f"{verb} " + ", ".join(f"{key}: {_short(value)}" for key, value in shown.items())
    changed = [key for key in sorted({*before, *after}) if before.get(key) != after.get(key)]
    if not changed:
        return "no stored field changed"
    return "; ".join(
        f"{key}: {_short(before.get(key))} -> {_short(after.get(key))}" for key in changed
    )


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."
