"""The audit log: who changed which job or run, and the state before and after.

Every change goes through `Management`, whatever asked for it (the API, the CLI, the
dashboard), and `Management` records it here in the change's own transaction. The outcome
(applied, stored for later, rejected) is added once the scheduler has answered.
"""

from __future__ import annotations

import getpass
import json
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, update
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
    detail: str | None = None,
) -> str:
    """Add an entry in `session`'s transaction; its outcome is pending until `settle`."""
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
            detail=detail,
        )
    )
    return entry_id


def settle(engine: Engine, entry_id: str, outcome: CommandStatus, detail: str) -> None:
    """Write what became of the change: applied, still stored, or rejected with the reason."""
    with engine.begin() as connection:
        connection.execute(
            update(AuditEntry)
            .where(AuditEntry.id == entry_id)
            .values(outcome=outcome, detail=detail)
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
