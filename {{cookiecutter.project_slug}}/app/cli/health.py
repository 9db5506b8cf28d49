"""`health check`: the same report as the API's readiness endpoint, read directly or over HTTP."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.table import Table

from app.cli.output import EXIT_FAILED as EXIT_UNHEALTHY
from app.cli.output import EXIT_USAGE as EXIT_MISCONFIGURED
from app.cli.output import (
    Command,
    InsecureOption,
    JsonOption,
    TokenOption,
    UrlOption,
    add_row,
    cell_time,
    fail,
    load_settings,
    refuse_plain_http,
    say,
    stdout,
    utc_column,
    verdict,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from app.core.health import HealthReport
    from app.core.job_rows import JobInfo
    from app.core.settings import Settings

# (engine, stale after seconds, hostname) -> (alive, why)
HostCheck = Callable[["Engine", float, str], tuple[bool, str]]

app = typer.Typer(help="Check the database and the scheduler.", no_args_is_help=True)


class CheckFailed(Exception):
    """The check itself could not run; the message says why."""

    def __init__(self, message: str, exit_code: int = EXIT_UNHEALTHY) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _settings() -> Settings:
    from app.core.settings import SettingsError, get_settings

    try:
        return get_settings()
    except SettingsError as error:
        raise CheckFailed(str(error), EXIT_MISCONFIGURED) from None


def _report_from_database(settings: Settings, detailed: bool) -> HealthReport:
    from app.core.db import create_db_engine
    from app.core.health import check_health

    engine = create_db_engine(settings.database_url, create_file=False)
    try:
        return check_health(
            engine,
            settings.heartbeat_stale_after_seconds,
            include_jobs=detailed,
            workers=settings.runs_on_workers,
            timezone=settings.timezone,
        )
    finally:
        engine.dispose()


def _report_from_api(url: str, token: str | None, detailed: bool, timeout: float) -> HealthReport:
    import httpx
    from pydantic import ValidationError

    from app.core.errors import error_text
    from app.core.health import HealthReport

    base = url.rstrip("/")
    try:
        with httpx.Client(timeout=timeout) as client:
            response = client.get(f"{base}/health/ready")
            if response.status_code not in (200, 503):
                raise CheckFailed(f"{base}/health/ready answered {response.status_code}")
            report = HealthReport.model_validate_json(response.content)
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        raise CheckFailed(f"cannot reach the API at {base}: {error_text(error)}") from None
    except (ValidationError, ValueError):
        raise CheckFailed(f"{base} did not answer with a health report") from None
    if detailed and report.database.healthy:
        report.jobs = _jobs_from_api(base, token, timeout)
    return report


def _jobs_from_api(base: str, token: str | None, timeout: float) -> list[JobInfo]:
    """Every job, page by page, from the management API (which needs the token)."""
    from app.components.management.errors import ManagementError
    from app.components.management.remote import RemoteManagement
    from app.core.job_rows import JobInfo

    if token is None:
        configured = _settings().api_token
        token = configured.get_secret_value() if configured else None
    remote = RemoteManagement(base, token, timeout)
    jobs: list[JobInfo] = []
    try:
        while True:
            page = remote.list_jobs(limit=200, offset=len(jobs))
            jobs.extend(JobInfo.model_validate(job.model_dump()) for job in page.items)
            if not page.items or len(jobs) >= page.total:
                return jobs
    except ManagementError as error:
        raise CheckFailed(f"cannot list the jobs: {error}") from None
    finally:
        remote.close()


def _verdicts(report: HealthReport) -> list[tuple[str, bool, str]]:
    """Each part of the report that has a verdict: its name, whether healthy, and why."""
    database, scheduler = report.database, report.scheduler
    verdicts = [
        ("database", database.healthy, database.detail),
        ("scheduler", scheduler.healthy, scheduler.detail),
    ]
    if report.workers is not None:
        verdicts.append(("workers", report.workers.healthy, report.workers.detail))
    return verdicts


def _print_report(report: HealthReport, detailed: bool, source: str) -> None:
    say("Status: ", verdict(report.healthy))
    if not detailed:
        for name, healthy, detail in _verdicts(report):
            if not healthy:
                say(f"  {name}: {detail}")
        return
    components = Table(title="Components", title_justify="left")
    for column in ("Component", "Status", "Detail"):
        components.add_column(column)
    add_row(
        components,
        "database",
        verdict(report.database.healthy),
        f"{report.database.detail} ({source})",
    )
    scheduler = report.scheduler
    where = (
        f"; instance {scheduler.instance_id} on {scheduler.hostname}, pid {scheduler.pid}"
        if scheduler.instance_id
        else ""
    )
    add_row(components, "scheduler", verdict(scheduler.healthy), f"{scheduler.detail}{where}")
    if report.workers is not None:
        add_row(components, "workers", verdict(report.workers.healthy), report.workers.detail)
    stdout.print(components)
    jobs = Table(title=f"Jobs ({len(report.jobs or [])})", title_justify="left")
    jobs.add_column("ID", no_wrap=True)
    jobs.add_column("Name")
    jobs.add_column("Trigger")
    jobs.add_column(utc_column("Next run"), no_wrap=True)
    jobs.add_column("State", no_wrap=True)
    for job in report.jobs or []:
        add_row(
            jobs,
            job.id,
            job.name,
            job.trigger,
            cell_time(job.next_run_time),
            "paused" if job.paused else "scheduled",
        )
    stdout.print(jobs)


@app.command("check", cls=Command, short_help="Exit 0 when healthy, 1 when not.")
def check(
    detailed: Annotated[
        bool, typer.Option("--detailed", help="Show each component, the heartbeat and every job.")
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    insecure: InsecureOption = False,
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
            if detailed:
                # The jobs' list needs the token; readiness alone does not.
                refuse_plain_http(url, insecure)
            report, source = _report_from_api(url, token, detailed, timeout), f"via {url}"
        else:
            from app.core.db import redacted_url

            settings = _settings()
            report = _report_from_database(settings, detailed)
            source = redacted_url(settings.database_url)
    except CheckFailed as error:
        fail(str(error), error.exit_code, status="unknown")
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _print_report(report, detailed, source)
    raise typer.Exit(0 if report.healthy else 1)


@app.command(
    "scheduler", cls=Command, short_help="Exit 0 when this host's scheduler is alive, 1 when not."
)
def scheduler() -> None:
    """Exit 0 when the scheduler process on this host has a fresh heartbeat, else 1.

    Running or on standby both count: this is the scheduler container's health check, which
    judges each replica by its own heartbeat (readiness judges the service as a whole).
    """
    from app.core.health import check_host_scheduler

    judge_this_host(check_host_scheduler)


def judge_this_host(check: HostCheck) -> NoReturn:
    """Say what `check` finds of this host's process by its own heartbeat, and exit 0 when it
    is alive, else 1: what a container's health check needs."""
    from app.core.db import create_db_engine

    settings = load_settings()
    engine = create_db_engine(settings.database_url, create_file=False)
    try:
        stale_after = settings.heartbeat_stale_after_seconds
        healthy, detail = check(engine, stale_after, socket.gethostname())
    finally:
        engine.dispose()
    say(verdict(healthy), f": {detail}")
    raise typer.Exit(0 if healthy else EXIT_UNHEALTHY)
