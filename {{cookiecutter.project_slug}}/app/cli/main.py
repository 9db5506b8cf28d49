"""The command-line interface, installed as `{{ cookiecutter.project_slug }}`."""

from __future__ import annotations

import gc
from typing import Annotated

import typer

from app import PROJECT_NAME, __version__
from app.cli import db, executions, health, jobs, scheduler

app = typer.Typer(
    help=f"Operate {PROJECT_NAME}: health, jobs, runs and the scheduler. Works on the "
    "database directly, or on a running API with --url.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(health.app, name="health")
app.add_typer(jobs.app, name="jobs")
app.add_typer(executions.app, name="executions")
app.add_typer(scheduler.app, name="scheduler")
app.add_typer(db.app, name="db")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"{PROJECT_NAME} {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Options that apply to every command."""


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    finally:
        # At exit the interpreter's last collections walk every object still alive, and the
        # database layer and pydantic leave many: 0.1-0.15 s of a short command. Frozen objects
        # are skipped; nothing here needs that collection (engines are disposed, and output is
        # flushed at exit as always).
        gc.freeze()
