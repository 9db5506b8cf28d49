"""Runs on worker processes: each run's queue job and worker{% if cookiecutter.workers == "procrastinate" %}, and Procrastinate's tables{% endif %}.

`task_id` is the Procrastinate job that carries a run deferred to the workers, written in the
transaction that claims it; `worker_id` is the worker process that ran it. Both stay empty for
runs in the scheduler process.
{%- if cookiecutter.workers == "procrastinate" %}

On PostgreSQL, Procrastinate's tables, types and functions come from the installed package
(pinned to one minor version in pyproject.toml), in the schema the connection's search_path
names first.
A newer Procrastinate minor version ships SQL migrations of its own (in its `sql/migrations`);
apply them in a revision of this chain when you upgrade it.
{%- endif %}

Revision ID: 0008
Revises: 0007
Created: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_executions") as batch:
        batch.add_column(sa.Column("task_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("worker_id", sa.String(length=64), nullable=True))
{%- if cookiecutter.workers == "procrastinate" %}
    # Workers need PostgreSQL (the settings refuse them on another database); a SQLite file
    # of this project has no queue.
    if op.get_bind().dialect.name == "postgresql":
        from procrastinate.schema import SchemaManager

        op.execute(SchemaManager.get_schema())
{%- endif %}


def downgrade() -> None:
{%- if cookiecutter.workers == "procrastinate" %}
    # Procrastinate's objects all carry its prefix; CASCADE takes their indexes and triggers.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_DROP_PROCRASTINATE)
{%- endif %}
    with op.batch_alter_table("job_executions") as batch:
        batch.drop_column("worker_id")
        batch.drop_column("task_id")
{%- if cookiecutter.workers == "procrastinate" %}


_DROP_PROCRASTINATE = """
DO $$
DECLARE item record;
BEGIN
    FOR item IN SELECT p.oid::regprocedure AS signature FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace
        AND p.proname LIKE 'procrastinate%' LOOP
        EXECUTE 'DROP FUNCTION IF EXISTS ' || item.signature || ' CASCADE';
    END LOOP;
    FOR item IN SELECT tablename FROM pg_tables
        WHERE schemaname = current_schema() AND tablename LIKE 'procrastinate%' LOOP
        EXECUTE 'DROP TABLE IF EXISTS ' || quote_ident(item.tablename) || ' CASCADE';
    END LOOP;
    FOR item IN SELECT t.typname FROM pg_type t
        WHERE t.typnamespace = current_schema()::regnamespace
        AND t.typname LIKE 'procrastinate%' AND t.typtype IN ('e', 'c') LOOP
        EXECUTE 'DROP TYPE IF EXISTS ' || quote_ident(item.typname) || ' CASCADE';
    END LOOP;
END $$
"""
{%- endif %}
