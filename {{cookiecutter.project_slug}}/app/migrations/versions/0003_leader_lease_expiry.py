"""Leadership becomes a lease: the lease row records when it ends and whether its holder locks.

Revision ID: 0003
Revises: 0002
Created: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scheduler_lease") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
        batch.add_column(
            sa.Column("holder_locked", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("scheduler_lease") as batch:
        batch.drop_column("holder_locked")
        batch.drop_column("expires_at")
