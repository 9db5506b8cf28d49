"""`audit`: who changed which job or run, when, and what became of it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from app.cli.output import (
    InsecureOption,
    JsonOption,
    LimitOption,
    PageOption,
    TokenOption,
    UrlOption,
    add_row,
    cell_time,
    handled,
    manager,
    page_footer,
    plain,
    print_json,
    stdout,
    utc_column,
)
from app.core.enums import AuditAction
from app.core.times import as_utc


def audit(
    job: Annotated[str | None, typer.Option(help="Only changes to this job.")] = None,
    action: Annotated[AuditAction | None, typer.Option(help="Only this kind of change.")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Changes at or after (UTC unless given).")
    ] = None,
    limit: LimitOption = 20,
    page: PageOption = 1,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Every change to a job or a run, newest first: when, who, what, before and after."""
    from app.core.audit import summarize

    since = as_utc(since) if since else None
    with handled(), manager(url, token, insecure) as manage:
        entries = manage.audit(job, action, since, limit, (page - 1) * limit)
    if as_json:
        print_json(entries)
        return
    table = Table(title=plain(f"Audit log ({entries.total})"), title_justify="left")
    for column in (utc_column("When"), "Who", "Action", "Job", "Run", "Outcome", "Change"):
        table.add_column(column, no_wrap=column not in ("Change", "Who"))
    for entry in entries.items:
        add_row(
            table,
            cell_time(entry.at),
            f"{entry.actor_kind.value}: {entry.actor}",
            entry.action.value,
            entry.job_id or "-",
            entry.execution_id or "-",
            entry.outcome.value,
            summarize(entry.before, entry.after),
        )
    stdout.print(table)
    page_footer(entries.total, limit, page, len(entries.items), "audit")
