"""`health check`: the same report as the API's readiness endpoint, read directly or over HTTP."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from app.core.db import create_db_engine, redacted_url
from app.core.errors import error_text
from app.core.health import HealthReport, check_health
from app.core.job_store import JobInfo
from app.core.settings import SettingsError, get_settings

app = typer.Typer(help="Check the database and the scheduler.", no_args_is_help=True)

# Piped output has no terminal width to follow; a wide table beats one that wraps every cell.
stdout = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
stderr = Console(stderr=True, highlight=False)

EXIT_UNHEALTHY = 1
EXIT_MISCONFIGURED = 2


class CheckFailed(Exception):
    """The check itself could not run; the message says why."""

    def __init__(self, message: str, exit_code: int = EXIT_UNHEALTHY) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _report_from_database(detailed: bool) -> HealthReport:
    try:
        settings = get_settings()
    except SettingsError as error:
        raise CheckFailed(str(error), EXIT_MISCONFIGURED) from None
    engine = create_db_engine(settings.database_url, create_file=False)
    try:
        return check_health(engine, settings.heartbeat_stale_after_seconds, include_jobs=detailed)
    finally:
        engine.dispose()


def _http_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{value!r} must start with http:// or https://")
    return value


def _report_from_api(url: str, detailed: bool, timeout: float) -> HealthReport:
    base = url.rstrip("/")
    try:
        with httpx.Client(timeout=timeout) as client:
            response = client.get(f"{base}/health/ready")
            if response.status_code not in (200, 503):
                raise CheckFailed(f"{base}/health/ready answered {response.status_code}")
            report = HealthReport.model_validate_json(response.content)
            if detailed and report.database.healthy:
                jobs = client.get(f"{base}/api/jobs")
                jobs.raise_for_status()
                report.jobs = [JobInfo.model_validate(item) for item in jobs.json()["items"]]
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        raise CheckFailed(f"cannot reach the API at {base}: {error_text(error)}") from None
    except (ValidationError, ValueError, KeyError):
        raise CheckFailed(f"{base} did not answer with a health report") from None
    return report


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def _status(healthy: bool) -> str:
    return "[green]healthy[/]" if healthy else "[red]unhealthy[/]"


def _print_report(report: HealthReport, detailed: bool, source: str) -> None:
    stdout.print(f"Status: {_status(report.healthy)}")
    if not detailed:
        for name, component in (("database", report.database), ("scheduler", report.scheduler)):
            if not component.healthy:
                stdout.print(f"  {name}: {component.detail}")
        return
    components = Table(title="Components", title_justify="left")
    for column in ("Component", "Status", "Detail"):
        components.add_column(column)
    components.add_row(
        "database", _status(report.database.healthy), f"{report.database.detail} ({source})"
    )
    scheduler = report.scheduler
    where = (
        f"; instance {scheduler.instance_id} on {scheduler.hostname}, pid {scheduler.pid}"
        if scheduler.instance_id
        else ""
    )
    components.add_row("scheduler", _status(scheduler.healthy), f"{scheduler.detail}{where}")
    stdout.print(components)
    jobs = Table(title=f"Jobs ({len(report.jobs or [])})", title_justify="left")
    jobs.add_column("ID", no_wrap=True)
    jobs.add_column("Name")
    jobs.add_column("Trigger")
    jobs.add_column("Next run", no_wrap=True)
    jobs.add_column("State", no_wrap=True)
    for job in report.jobs or []:
        jobs.add_row(
            job.id,
            job.name,
            job.trigger,
            _when(job.next_run_time),
            "paused" if job.paused else "scheduled",
        )
    stdout.print(jobs)


@app.command("check", short_help="Exit 0 when healthy, 1 when not.")
def check(
    detailed: Annotated[
        bool, typer.Option("--detailed", help="Show each component, the heartbeat and every job.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    url: Annotated[
        str | None,
        typer.Option(
            help="Ask a running API (for example http://127.0.0.1:8000) instead of the database.",
            callback=_http_url,
            metavar="URL",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0.1, metavar="SECONDS", help="How long to wait for the API.")
    ] = 5.0,
) -> None:
    """Exit 0 when the database answers and the scheduler's heartbeat is fresh, else 1.

    Reads the shared database directly, or asks a running API with --url. Exit status 2 means
    the settings are invalid.
    """
    try:
        if url:
            report, source = _report_from_api(url, detailed, timeout), f"via {url}"
        else:
            report = _report_from_database(detailed)
            source = redacted_url(get_settings().database_url)
    except CheckFailed as error:
        if as_json:
            typer.echo(json.dumps({"status": "unknown", "error": str(error)}, indent=2))
        else:
            stderr.print(f"error: {error}", markup=False, soft_wrap=True)
        raise typer.Exit(error.exit_code) from None
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _print_report(report, detailed, source)
    raise typer.Exit(0 if report.healthy else 1)
