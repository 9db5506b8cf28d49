"""`executions`: inspect, retry and cancel single runs."""

from __future__ import annotations

import typer
from rich.table import Table

from app.cli.jobs import report
from app.cli.output import (
    Command,
    ExecutionIdArgument,
    InsecureOption,
    JsonOption,
    TokenOption,
    UrlOption,
    YesAcceptedOption,
    YesOption,
    add_row,
    cell_time,
    confirm,
    handled,
    manager,
    plain,
    print_block,
    print_json,
    stdout,
    utc_column,
)

app = typer.Typer(help="Inspect, retry and cancel runs of jobs.", no_args_is_help=True)


@app.command("show", cls=Command)
def show(
    execution_id: ExecutionIdArgument,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    insecure: InsecureOption = False,
) -> None:
    """One run, with its error and traceback."""
    with handled(), manager(url, token, insecure) as manage:
        run = manage.execution(execution_id)
    if as_json:
        print_json(run)
        return
    table = Table(title=plain(f"Execution {run.id}"), title_justify="left", show_header=False)
    table.add_column("Field", style="bold")
    table.add_column("Value")
    rows = {
        "Job": run.job_id,
        "Status": run.status.value,
        "Why": run.trigger_kind.value + (f" of {run.retry_of}" if run.retry_of else ""),
        "Attempt": str(run.attempt),
        utc_column("Scheduled"): cell_time(run.scheduled_at),
        utc_column("Started"): cell_time(run.started_at),
        utc_column("Finished"): cell_time(run.finished_at),
        "Duration": f"{run.duration_ms:.0f} ms" if run.duration_ms is not None else "-",
        "Input": str(run.input) if run.input else "-",
        "Error": f"{run.error_type}: {run.error_message}" if run.error_type else "-",
        "Queue": run.queue,
        "Instance": run.instance_id or "-",
        "Worker": run.worker_id or "-",
    }
    for field, value in rows.items():
        add_row(table, field, value)
    stdout.print(table)
    if run.traceback:
        print_block(run.traceback)


@app.command("retry", cls=Command)
def retry(
    execution_id: ExecutionIdArgument,
    yes: YesAcceptedOption = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Run a job again with the input of a run that ended without success."""
    with handled(), manager(url, token, insecure) as manage:
        report(manage.retry(execution_id), as_json)


@app.command("cancel", cls=Command)
def cancel(
    execution_id: ExecutionIdArgument,
    yes: YesOption = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Stop a pending or running run; it is recorded as cancelled."""
    confirm(f"Cancel execution {execution_id}?", yes)
    with handled(), manager(url, token, insecure) as manage:
        report(manage.cancel(execution_id), as_json)
