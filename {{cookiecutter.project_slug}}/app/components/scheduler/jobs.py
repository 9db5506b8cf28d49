"""The code-defined jobs: the one list `create_scheduler()` registers.

To add a job, write a plain function in `app/services/` and add one `ScheduledJob` here. The id
is the job's identity in the `jobs` table; keep it stable once deployed. Every option is
described on `ScheduledJob` in `definition.py`.

The functions of these jobs are also the ones a job added at runtime (POST /api/jobs) may call,
by name; `inputs` lists the parameters such a job, or a manual run, may set.
"""

from __future__ import annotations

from datetime import timedelta

from app.components.scheduler.definition import (
{%- if cookiecutter.include_example_jobs == "yes" %}
    Delays,
    Exponential,
{%- endif %}
    Retry,
    ScheduledJob,
)
from app.core.enums import Queue
from app.core.schedules import Cron, Interval
from app.services.maintenance import run_system_maintenance
{%- if cookiecutter.include_example_jobs == "yes" %}
from app.services.reports import generate_daily_report
{%- endif %}
from app.services.retention import cleanup_old_records
{%- if cookiecutter.include_example_jobs == "yes" %}
from app.services.sync import sync_external_data
from app.services.temp_files import cleanup_temp_files
{%- endif %}

JOBS: tuple[ScheduledJob, ...] = (
    ScheduledJob(
        id="system_maintenance",
        name="System maintenance",
        func=run_system_maintenance,
        schedule=Interval(hours=6),
        timeout=timedelta(minutes=10),
        queue=Queue.LOW,
    ),
    ScheduledJob(
        id="cleanup_old_records",
        name="Prune old history and heartbeats",
        func=cleanup_old_records,
        schedule=Cron("30 3 * * *"),
        retry=Retry(attempts=3),
        queue=Queue.LOW,
    ),
{%- if cookiecutter.include_example_jobs == "yes" %}
    ScheduledJob(
        id="daily_report",
        name="Daily report",
        func=generate_daily_report,
        schedule=Cron("0 6 * * *"),
        retry=Retry(attempts=4, backoff=Delays([timedelta(minutes=m) for m in (1, 5, 30)])),
        timeout=timedelta(minutes=15),
        # A manual run may ask for another day: POST /api/jobs/daily_report/run
        # with {"input": {"day": "2026-11-23"}}.
        inputs=("day",),
    ),
    ScheduledJob(
        id="cleanup_temp_files",
        name="Delete old temporary files",
        func=cleanup_temp_files,
        schedule=Interval(hours=1),
        queue=Queue.LOW,
    ),
    ScheduledJob(
        id="sync_external_data",
        name="Sync external data",
        func=sync_external_data,
        schedule=Interval(minutes=15),
        retry=Retry(attempts=3, backoff=Exponential(base=timedelta(seconds=30))),
        timeout=timedelta(minutes=2),
        queue=Queue.CRITICAL,
    ),
{%- endif %}
)
