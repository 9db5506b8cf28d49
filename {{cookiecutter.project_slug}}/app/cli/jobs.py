"""`jobs`: list, show, run, pause, resume, reschedule, history, add and delete jobs."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from app.cli.output import (
    EXIT_FAILED,
    EXIT_USAGE,
    Command,
    InsecureOption,
    JobIdArgument,
    JsonOption,
    LimitOption,
    PageOption,
    TokenOption,
    UrlOption,
    YesAcceptedOption,
    YesOption,
    add_row,
    cell_time,
    confirm,
    fail,
    handled,
    manager,
    page_footer,
    plain,
    print_json,
    say,
    stdout,
    utc_column,
    when,
)
from app.core.enums import CommandStatus, ExecutionStatus, JobState, Queue
from app.core.times import as_utc

if TYPE_CHECKING:
    from app.components.management.protocol import JobManager
    from app.components.management.schemas import CommandResult, ExecutionInfo, JobDetail
    from app.core.schedule_specs import Spec

app = typer.Typer(help="List, inspect and change the scheduled jobs.", no_args_is_help=True)

# How long `jobs run --wait` waits unless --timeout says otherwise.
DEFAULT_WAIT_SECONDS = 300.0
_PERIOD = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNITS = {"": "seconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

CronOption = Annotated[
    str | None, typer.Option("--cron", help='Crontab expression, e.g. "0 6 * * *".')
]
EveryOption = Annotated[
    str | None, typer.Option("--every", help="Interval: 90s, 15m, 2h or 1d.", metavar="PERIOD")
]
AtOption = Annotated[
    str | None,
    typer.Option("--at", help="One run at an ISO time with a zone.", metavar="TIME"),
]
ZoneOption = Annotated[
    str | None, typer.Option("--timezone", help="IANA time zone of the schedule.")
]


def _schedule(cron: str | None, every: str | None, at: str | None, zone: str | None) -> Spec:
    from pydantic import ValidationError

    from app.core.schedule_specs import SCHEDULE_SPEC

    given = [name for name, value in (("--cron", cron), ("--every", every), ("--at", at)) if value]
    if len(given) != 1:
        fail("give exactly one of --cron, --every and --at", EXIT_USAGE)
    spec: dict[str, Any] = {"timezone": zone}
    if cron:
        spec.update(kind="cron", expression=cron)
    elif every:
        match = _PERIOD.fullmatch(every.strip())
        if not match:
            fail(f"--every: {every!r} is not a period such as 90s, 15m, 2h or 1d", EXIT_USAGE)
        spec.update(kind="interval", **{_UNITS[match.group(2)]: float(match.group(1))})
    else:
        spec.update(kind="once", at=at)
    try:
        return SCHEDULE_SPEC.validate_python(spec)
    except ValidationError as error:
        problems = {
            str(issue["loc"][-1]) if issue["loc"] else "schedule": issue["msg"].removeprefix(
                "Value error, "
            )
            for issue in error.errors()
        }
        fail("invalid schedule", EXIT_USAGE, problems)


def _json_object(text: str | None, option: str) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as error:
        fail(f"{option}: not valid JSON: {error}", EXIT_USAGE)
    if not isinstance(value, dict):
        fail(f"{option}: give a JSON object of named arguments", EXIT_USAGE)
    return value


def report(result: CommandResult, as_json: bool) -> None:
    """Print what became of a change; a rejected one exits 1."""
    if as_json:
        print_json(result)
    else:
        label = {
            CommandStatus.APPLIED: Text("applied", style="green"),
            CommandStatus.PENDING: Text("stored", style="yellow"),
            CommandStatus.REJECTED: Text("rejected", style="red"),
        }[result.status]
        say(label, f": {result.detail}")
        if result.execution_id:
            say(f"execution id: {result.execution_id}")
    if result.status is CommandStatus.REJECTED:
        raise typer.Exit(EXIT_FAILED)


@app.command("list", cls=Command)
def list_jobs(
    state: Annotated[JobState | None, typer.Option(help="Only jobs in this state.")] = None,
    queue: Annotated[Queue | None, typer.Option(help="Only jobs with this queue label.")] = None,
    search: Annotated[
        str | None, typer.Option(help="Only jobs whose id or name contains this, in any case.")
    ] = None,
    limit: LimitOption = 20,
    page: PageOption = 1,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Jobs, soonest next run first."""
    with handled(), manager(url, token, insecure) as manage:
        jobs = manage.list_jobs(state, queue, limit, (page - 1) * limit, search)
    if as_json:
        print_json(jobs)
        return
    table = Table(title=f"Jobs ({jobs.total})", title_justify="left")
    columns = ("ID", "Name", "Trigger", utc_column("Next run"), "State", "Last run", "Success")
    for column in (*columns, "Queue", "Origin"):
        table.add_column(column, no_wrap=column in ("ID", utc_column("Next run")))
    for job in jobs.items:
        state_text = job.state.value + (f", {job.running} running" if job.running else "")
        add_row(
            table,
            job.id,
            job.name,
            job.trigger,
            cell_time(job.next_run_time),
            state_text,
            job.last_run.status.value if job.last_run else "-",
            f"{job.success_rate:.0%}" if job.success_rate is not None else "-",
            job.queue.value,
            job.origin,
        )
    stdout.print(table)
    page_footer(jobs.total, limit, page, len(jobs.items), "jobs list")


def _print_job(job: JobDetail) -> None:
    table = Table(title=plain(f"Job {job.id}"), title_justify="left", show_header=False)
    table.add_column("Field", style="bold")
    table.add_column("Value")
    rate = f"{job.success_rate:.0%} of the last {job.runs_counted}" if job.runs_counted else "-"
    last = (
        f"{job.last_run.status.value} at {when(job.last_run.finished_at)}"
        f" ({job.last_run.execution_id})"
        if job.last_run
        else "-"
    )
    rows = {
        "Name": job.name,
        "State": job.state.value + (f" ({job.problem})" if job.problem else ""),
        "Trigger": job.trigger + (" (changed through the API)" if job.schedule_overridden else ""),
        utc_column("Next run"): cell_time(job.next_run_time),
        "Last run": last,
        "Success rate": rate,
        "Running now": str(job.running),
        "Function": job.function,
        "Inputs": ", ".join(f"{k}: {v}" for k, v in job.inputs.items()) or "-",
        "Arguments": json.dumps(job.args) if job.args else "-",
        "Queue": job.queue.value,
        "Priority": str(job.priority),
        "Origin": job.origin,
        "Attempts": str(job.retry_attempts)
        + (
            f" (up to {job.retry_attempts - 1} retries)"
            if job.retry_attempts > 1
            else " (no retries)"
        ),
        "Timeout": f"{job.timeout_seconds:g} s" if job.timeout_seconds else "-",
        "Pending commands": str(job.pending_commands),
    }
    for field, value in rows.items():
        add_row(table, field, value)
    stdout.print(table)


@app.command("show", cls=Command)
def show(
    job_id: JobIdArgument,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    insecure: InsecureOption = False,
) -> None:
    """A job's definition, state, next and last run, and success rate."""
    with handled(), manager(url, token, insecure) as manage:
        job = manage.job(job_id)
    if as_json:
        print_json(job)
    else:
        _print_job(job)


def _wait_for_run(manage: JobManager, execution_id: str, timeout: float) -> ExecutionInfo:
    deadline = time.monotonic() + timeout
    while True:
        execution = manage.execution(execution_id)
        if execution.status.is_final or time.monotonic() > deadline:
            return execution
        time.sleep(0.2)


@app.command("run", cls=Command)
def run(
    job_id: JobIdArgument,
    input_json: Annotated[
        str | None,
        typer.Option("--input", help="Arguments as a JSON object (see the job's inputs)."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the run to end; exit 1 unless it succeeded.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            min=0.1, metavar="SECONDS", help="How long --wait waits before giving up (exit 1)."
        ),
    ] = DEFAULT_WAIT_SECONDS,
    yes: YesAcceptedOption = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Run a job now; its regular schedule is not moved. Prints the execution id."""
    arguments = _json_object(input_json, "--input")
    if timeout != DEFAULT_WAIT_SECONDS and not wait:
        fail("--timeout says how long --wait waits: pass --wait too", EXIT_USAGE)
    with handled(), manager(url, token, insecure) as manage:
        result = manage.run(job_id, arguments)
        if not wait or result.execution_id is None:
            report(result, as_json)
            return
        if not as_json:
            report(result, as_json)
        execution = _wait_for_run(manage, result.execution_id, timeout)
    if as_json:
        # One JSON document: the command's answer and the run as it ended (or stood).
        typer.echo(
            json.dumps(
                {
                    "command": result.model_dump(mode="json"),
                    "execution": execution.model_dump(mode="json"),
                },
                indent=2,
            )
        )
    elif execution.status.is_final:
        say(f"the run {execution.status.phrase}")
    else:
        say(f"the run {execution.status.phrase} still after {timeout:g} s (--timeout waits longer)")
    if execution.status is not ExecutionStatus.SUCCEEDED:
        if execution.error_message and not as_json:
            say(execution.error_message)
        raise typer.Exit(EXIT_FAILED)


@app.command("pause", cls=Command)
def pause(
    job_id: JobIdArgument,
    yes: YesOption = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Stop a job's schedule until it is resumed."""
    confirm(f"Pause job {job_id!r}? It will not run until resumed.", yes)
    with handled(), manager(url, token, insecure) as manage:
        report(manage.pause(job_id), as_json)


@app.command("resume", cls=Command)
def resume(
    job_id: JobIdArgument,
    yes: YesAcceptedOption = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Start a paused job's schedule again."""
    with handled(), manager(url, token, insecure) as manage:
        report(manage.resume(job_id), as_json)


@app.command("reschedule", cls=Command)
def reschedule(
    job_id: JobIdArgument,
    cron: CronOption = None,
    every: EveryOption = None,
    zone: ZoneOption = None,
    yes: YesOption = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Give a job a new cron or interval schedule (until the code changes its own)."""
    spec = _schedule(cron, every, None, zone)
    confirm(f"Change the schedule of job {job_id!r}?", yes)
    with handled(), manager(url, token, insecure) as manage:
        report(manage.reschedule(job_id, spec), as_json)


@app.command("history", cls=Command)
def history(
    job_id: JobIdArgument,
    status: Annotated[
        ExecutionStatus | None, typer.Option(help="Only runs with this status.")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Runs scheduled at or after (UTC unless given).")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(help="Runs scheduled before (UTC unless given).")
    ] = None,
    limit: LimitOption = 20,
    page: PageOption = 1,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    insecure: InsecureOption = False,
) -> None:
    """A job's runs, newest first."""
    since = as_utc(since) if since else None
    until = as_utc(until) if until else None
    with handled(), manager(url, token, insecure) as manage:
        runs = manage.executions(job_id, status, since, until, limit, (page - 1) * limit)
    if as_json:
        print_json(runs)
        return
    table = Table(title=plain(f"Runs of {job_id} ({runs.total})"), title_justify="left")
    for column in (
        "Execution",
        utc_column("Scheduled"),
        "Status",
        "Why",
        "Try",
        "Duration",
        "Error",
    ):
        table.add_column(column, no_wrap=column != "Error")
    for item in runs.items:
        add_row(
            table,
            item.id,
            cell_time(item.scheduled_at),
            item.status.value,
            item.trigger_kind.value,
            str(item.attempt),
            f"{item.duration_ms:.0f} ms" if item.duration_ms is not None else "-",
            item.error_message or "",
        )
    stdout.print(table)
    page_footer(runs.total, limit, page, len(runs.items), f"jobs history {job_id}")


@app.command("add", cls=Command)
def add(
    job_id: Annotated[
        str, typer.Argument(help="Id of the new job (a-z, 0-9, _).", metavar="JOB_ID")
    ],
    function: Annotated[str, typer.Option(help="A registered job function, by name.")],
    name: Annotated[str | None, typer.Option(help="A readable name; by default the id.")] = None,
    args_json: Annotated[
        str | None, typer.Option("--args", help="Arguments as a JSON object.")
    ] = None,
    cron: CronOption = None,
    every: EveryOption = None,
    at: AtOption = None,
    zone: ZoneOption = None,
    queue: Annotated[Queue, typer.Option(help="Queue label.")] = Queue.DEFAULT,
    priority: Annotated[
        int, typer.Option(help="Within its queue, higher runs first (-100 to 100).")
    ] = 0,
    yes: YesAcceptedOption = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Add a job that calls a registered function on a schedule."""
    from pydantic import ValidationError

    from app.components.management.schemas import AddJobRequest

    spec = _schedule(cron, every, at, zone)
    try:
        request = AddJobRequest(
            id=job_id,
            name=name or job_id,
            function=function,
            args=_json_object(args_json, "--args"),
            schedule=spec,
            queue=queue,
            priority=priority,
        )
    except ValidationError as error:
        problems = {
            ".".join(str(part) for part in issue["loc"]): issue["msg"] for issue in error.errors()
        }
        fail("invalid job", EXIT_USAGE, problems)
    with handled(), manager(url, token, insecure) as manage:
        report(manage.add(request), as_json)


@app.command("delete", cls=Command)
def delete(
    job_id: Annotated[str, typer.Argument(help="The runtime job's id.", metavar="JOB_ID")],
    yes: YesOption = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Delete a job added at runtime (a job defined in code can only be paused)."""
    confirm(f"Delete job {job_id!r}?", yes)
    with handled(), manager(url, token, insecure) as manage:
        report(manage.delete(job_id), as_json)
