"""Index the jobs by next run: the leader reads the runtime jobs coming within its horizon.

Revision ID: 0004
Revises: 0003
Created: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_next_run_at", "jobs", ["next_run_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_next_run_at", table_name="jobs")
