"""`scheduler status`: instances and heartbeats, job counts, and runs per queue."""

from __future__ import annotations

import typer
from rich.table import Table

from app.cli.output import (
    Command,
    InsecureOption,
    JsonOption,
    TokenOption,
    UrlOption,
    add_row,
    handled,
    manager,
    print_json,
    say,
    stdout,
    verdict,
    when,
)

app = typer.Typer(help="The scheduler processes.", no_args_is_help=True)


@app.command("status", cls=Command)
def status(
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Scheduler instances and heartbeats, job counts, and runs per queue in the last day."""
    with handled(), manager(url, token, insecure) as manage:
        report = manage.status()
    if as_json:
        print_json(report)
        return
    say("Scheduler: ", verdict(report.healthy), f": {report.detail}")
    instances = Table(title="Instances", title_justify="left")
    for column in ("Instance", "Host", "PID", "State", "Leader", "Heartbeat", "In timer"):
        instances.add_column(column, no_wrap=True)
    for item in report.instances:
        age = f"{item.heartbeat_age_seconds:.1f} s ago" + ("" if item.fresh else " (stale)")
        add_row(
            instances,
            item.instance_id,
            item.hostname,
            str(item.pid),
            item.state.value,
            "yes" if item.leader else "",
            age,
            str(item.job_count),
        )
    stdout.print(instances)
    if report.leader is not None and report.lease_expires_at is not None:
        say(
            f"Lease: {report.leader} leads under epoch {report.epoch}, renewed until "
            f"{when(report.lease_expires_at)}"
        )
    else:
        say("Lease: no scheduler leads")
    jobs = report.jobs
    say(
        f"Jobs: {jobs.total} ({jobs.scheduled} scheduled, {jobs.paused} paused, "
        f"{jobs.unscheduled} unscheduled, {jobs.invalid} invalid); "
        f"{report.pending_commands} command(s) waiting for a scheduler"
    )
    waiting = report.applied_revision < report.job_revision
    say(
        f"Job revision {report.job_revision}: "
        + (
            f"changes since revision {report.applied_revision} wait for a scheduler"
            if waiting
            else "applied"
        )
    )
    queues = Table(title=f"Runs per queue since {when(report.counts_since)}", title_justify="left")
    for column in ("Queue", "Pending", "Running", "Succeeded", "Failed"):
        queues.add_column(column, justify="left" if column == "Queue" else "right")
    for queue in report.queues:
        add_row(
            queues,
            queue.queue,
            str(queue.pending),
            str(queue.running),
            str(queue.succeeded),
            str(queue.failed),
        )
    stdout.print(queues)
