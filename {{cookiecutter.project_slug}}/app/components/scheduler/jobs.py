"""The code-defined jobs: the one list `create_scheduler()` registers.

To add a job, write a plain function in `app/services/` and add one `ScheduledJob` here. The id
is the job's identity in the persistent store; keep it stable once deployed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.core.schedules import Cron, Interval, Schedule
from app.services.maintenance import run_system_maintenance
{%- if cookiecutter.include_example_jobs == "yes" %}
from app.services.reports import generate_daily_report
{%- endif %}
from app.services.retention import cleanup_old_records
{%- if cookiecutter.include_example_jobs == "yes" %}
from app.services.sync import sync_external_data
from app.services.temp_files import cleanup_temp_files
{%- endif %}


@dataclass(frozen=True)
class ScheduledJob:
    """A job defined in code: what runs, when, and under which stable id."""

    id: str
    name: str
    func: Callable[..., Any]
    schedule: Schedule


JOBS: tuple[ScheduledJob, ...] = (
    ScheduledJob(
        id="system_maintenance",
        name="System maintenance",
        func=run_system_maintenance,
        schedule=Interval(hours=6),
    ),
    ScheduledJob(
        id="cleanup_old_records",
        name="Prune old scheduler records",
        func=cleanup_old_records,
        schedule=Cron("30 3 * * *"),
    ),
{%- if cookiecutter.include_example_jobs == "yes" %}
    ScheduledJob(
        id="daily_report",
        name="Daily report",
        func=generate_daily_report,
        schedule=Cron("0 6 * * *"),
    ),
    ScheduledJob(
        id="cleanup_temp_files",
        name="Delete old temporary files",
        func=cleanup_temp_files,
        schedule=Interval(hours=1),
    ),
    ScheduledJob(
        id="sync_external_data",
        name="Sync external data",
        func=sync_external_data,
        schedule=Interval(minutes=15),
    ),
{%- endif %}
)
