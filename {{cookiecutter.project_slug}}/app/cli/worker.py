"""`worker`: run a worker process, which runs the jobs the scheduler queues for it; `worker
status` and `worker health` tell how the workers are doing."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from app.cli.output import (
    EXIT_FAILED,
    Command,
    InsecureOption,
    JsonOption,
    TokenOption,
    UrlOption,
    add_row,
    fail,
    handled,
    manager,
    print_json,
    say,
    stdout,
    verdict,
)

app = typer.Typer(help="Worker processes.")


@app.callback(invoke_without_command=True)
def worker(
    context: typer.Context,
    queues: Annotated[
        str | None,
        typer.Option(
            "--queues",
            help="Comma-separated queues to serve: critical, default, low (all by default).",
        ),
    ] = None,
) -> None:
    """Run a worker until Ctrl-C or SIGTERM: it runs the runs the scheduler queues."""
    if context.invoked_subcommand is not None:
        return
    # Imported here: the worker's libraries are not needed by the other commands.
    from app.entrypoints.worker import serve

    serve(queues)


@app.command("status", cls=Command)
def status(
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    insecure: InsecureOption = False,
) -> None:
    """The worker processes and their heartbeats, and each queue's workers, load and wait."""
    with handled(), manager(url, token, insecure) as manage:
        report = manage.status().workers
    if report is None:
        fail(
            "the runs are not on workers: WORKERS_ENABLED is off, so the scheduler runs them",
            EXIT_FAILED,
        )
    if as_json:
        print_json(report)
        return
    say("Workers: ", verdict(report.healthy), f": {report.detail}")
    workers = Table(title="Worker processes", title_justify="left")
    for column in (
        "Worker",
        "Host",
        "PID",
        "State",
        "Queues (concurrency)",
        "Running",
        "Heartbeat",
    ):
        workers.add_column(column, no_wrap=True)
    for item in report.workers:
        age = f"{item.heartbeat_age_seconds:.1f} s ago" + ("" if item.fresh else " (stale)")
        served = ", ".join(f"{queue} ({limit})" for queue, limit in item.concurrency.items())
        add_row(
            workers,
            item.worker_id,
            item.hostname,
            str(item.pid),
            item.state.value,
            served,
            str(item.running),
            age,
        )
    stdout.print(workers)
    queues = Table(title="Queues", title_justify="left")
    for column in ("Queue", "Workers", "Capacity", "Running", "Waiting", "Oldest wait", "Later"):
        queues.add_column(column, justify="left" if column == "Queue" else "right")
    for load in report.queues:
        wait = "-" if load.oldest_wait_seconds is None else f"{load.oldest_wait_seconds:.1f} s"
        add_row(
            queues,
            load.queue,
            str(load.workers),
            str(load.capacity),
            str(load.running),
            str(load.waiting),
            wait,
            str(load.later),
        )
    stdout.print(queues)


@app.command("health", cls=Command, short_help="Exit 0 when this host's worker serves, 1 when not.")
def health() -> None:
    """Exit 0 when the worker process on this host has a fresh heartbeat and serves its
    queues, else 1: the worker container's health check, judged by its own heartbeat."""
    from app.cli.health import judge_this_host
    from app.core.health import check_host_worker

    judge_this_host(check_host_worker)
