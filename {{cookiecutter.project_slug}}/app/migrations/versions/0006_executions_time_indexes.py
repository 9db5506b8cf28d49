"""Index the runs by time, and by status then time: the newest runs, of any job, come first.

The status index gains the time, so the newest failures are read in order too; it still
serves the lookups by status alone.

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


def upgrade() -> None:
    op.create_index("ix_job_executions_scheduled", "job_executions", ["scheduled_at", "id"])
    op.create_index(
        "ix_job_executions_status_scheduled", "job_executions", ["status", "scheduled_at"]
    )
    op.drop_index("ix_job_executions_status", table_name="job_executions")


def downgrade() -> None:
    op.create_index("ix_job_executions_status", "job_executions", ["status"])
    op.drop_index("ix_job_executions_status_scheduled", table_name="job_executions")
    op.drop_index("ix_job_executions_scheduled", table_name="job_executions")
