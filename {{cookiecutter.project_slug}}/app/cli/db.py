"""`db`: the schema's revision, and migrations applied by hand (see app/core/migrations.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.output import (
    Command,
    YesAcceptedOption,
    YesOption,
    confirm,
    database,
    fail,
    load_settings,
    say,
    stdout,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

app = typer.Typer(help="The database schema and its migrations.", no_args_is_help=True)

RevisionArgument = Annotated[
    str, typer.Argument(help="A revision id, or head.", metavar="REVISION", show_default=False)
]


@contextmanager
def _engine(create_file: bool) -> Iterator[Engine]:
    from app.core.migrations import SchemaError

    with database(load_settings().database_url, create_file) as engine:
        try:
            yield engine
        except SchemaError as error:
            fail(str(error))


@app.command("upgrade", cls=Command)
def upgrade_command(revision: RevisionArgument = "head", yes: YesAcceptedOption = False) -> None:
    """Apply the migrations up to REVISION (creates the SQLite file if needed)."""
    from app.core.db import redacted_url
    from app.core.migrations import upgrade

    with _engine(create_file=True) as engine:
        before, after = upgrade(engine, revision)
    if before == after:
        say(f"Already at {after}: nothing to do.")
    else:
        say(f"Upgraded {redacted_url(engine.url)}: {before} -> {after}.")


@app.command("current", cls=Command)
def current_command() -> None:
    """Show the database's revision and whether it is the one this code needs."""
    from app.core.db import redacted_url
    from app.core.migrations import current_revision, head_revision, schema_problem

    with _engine(create_file=False) as engine, engine.connect() as connection:
        current = current_revision(connection)
        problem = schema_problem(connection)
    say(f"Database: {redacted_url(engine.url)}")
    stdout.print(f"Revision: {current or 'none'} (this code needs {head_revision()})")
    if problem:
        fail(problem)
    stdout.print("Up to date.")


@app.command("stamp", cls=Command)
def stamp_command(revision: RevisionArgument, yes: YesOption = False) -> None:
    """Record REVISION as applied without running it (a database made before migrations)."""
    from app.core.migrations import stamp

    confirm(f"Record {revision} as applied without running its migrations?", yes)
    with _engine(create_file=False) as engine:
        stamp(engine, revision)
    say(f"Recorded {revision} as applied.")
