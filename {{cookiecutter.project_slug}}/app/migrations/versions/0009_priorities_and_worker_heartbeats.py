"""A priority and a failure streak per job, and a heartbeat row per worker process.

Within a queue, the workers take the runs of higher-priority jobs first; the priority is the
job's, read when a run is queued. `consecutive_failures` is the streak the workers keep as
they record each end, for alerts and the metrics. `worker_processes` is what each worker
process says of itself every heartbeat: its queues, their concurrency and the runs it has
going, for the health check, `worker status`, the API and the metrics.

Revision ID: 0009
Revises: 0008
Created: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTERs, SQLite's too (3.35 and later drop a column in place): a batch would copy
    # `jobs` and lose its expression index, which SQLite's reflection does not see.
    op.add_column("jobs", sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
    op.add_column(
        "jobs",
        sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "worker_processes",
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("concurrency", sa.Text(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("worker_id"),
    )
    op.create_index("ix_worker_processes_last_seen", "worker_processes", ["last_seen"])


def downgrade() -> None:
    op.drop_index("ix_worker_processes_last_seen", table_name="worker_processes")
    op.drop_table("worker_processes")
    op.drop_column("jobs", "consecutive_failures")
    op.drop_column("jobs", "priority")
