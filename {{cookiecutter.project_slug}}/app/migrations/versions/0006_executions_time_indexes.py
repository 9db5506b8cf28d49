"""Index the runs in the order pages show them: newest first, of all, of a job, of a status.

Each index holds the id, the order's tie-break, so a page is read from the index in order and
stops at its limit. The status index gains the time and the id; it still serves the lookups
by status alone. The job index gains the id and the status, and the time index the queue and
the status: a job's success rate and a day's counts per queue are read from them alone.

Revision ID: 0006
Revises: 0005
Created: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "job_executions"


def upgrade() -> None:
    op.create_index("ix_job_executions_scheduled", TABLE, ["scheduled_at", "id", "queue", "status"])
    op.create_index("ix_job_executions_status_scheduled", TABLE, ["status", "scheduled_at", "id"])
    op.drop_index("ix_job_executions_status", table_name=TABLE)
    op.create_index("ix_job_executions_job_runs", TABLE, ["job_id", "scheduled_at", "id", "status"])
    op.drop_index("ix_job_executions_job_scheduled", table_name=TABLE)


def downgrade() -> None:
    op.create_index("ix_job_executions_job_scheduled", TABLE, ["job_id", "scheduled_at"])
    op.drop_index("ix_job_executions_job_runs", table_name=TABLE)
    op.create_index("ix_job_executions_status", TABLE, ["status"])
    op.drop_index("ix_job_executions_status_scheduled", table_name=TABLE)
    op.drop_index("ix_job_executions_scheduled", table_name=TABLE)
