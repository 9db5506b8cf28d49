"""A worker's start of a run returns the run's scheduled and start times too.

A worker observes how late each scheduled run started (`scheduler_fire_lateness_seconds`),
as the scheduler does for the runs it runs itself; `worker_start_runs` (0010) returned
neither time. Its result changes, so the function is dropped and created again: 0010's text
with the two columns added (one copy of the body to read, and the change itself plain to
see); the downgrade brings 0010's back.

Revision ID: 0011
Revises: 0010
Created: 2026-12-06
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION worker_start_runs")
        op.execute(_with_times(_revision_0010()._START_RUNS))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION worker_start_runs")
        op.execute(_revision_0010()._START_RUNS)


def _revision_0010() -> ModuleType:
    """Revision 0010's module, whose function this one replaces (migrations are not a
    package: it is loaded from its file)."""
    path = Path(__file__).with_name("0010_worker_run_batches.py")
    spec = importlib.util.spec_from_file_location("revision_0010", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _with_times(start_runs: str) -> str:
    """0010's `worker_start_runs` returning the run's `scheduled_at` and `started_at` too
    (NULL unless it started)."""
    edits = (
        ("next_run_at timestamp, version integer\n)",
         "next_run_at timestamp, version integer, scheduled_at timestamp, started_at timestamp\n)"),
        ("j.next_run_at, j.version\n", "j.next_run_at, j.version, e.scheduled_at, e.started_at\n"),
    )  # fmt: skip
    for old, new in edits:
        assert start_runs.count(old) == 1, f"0010's worker_start_runs has no {old!r}"
        start_runs = start_runs.replace(old, new)
    return start_runs
