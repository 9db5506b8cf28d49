"""The command-line interface, installed as `{{ cookiecutter.project_slug }}`."""

from __future__ import annotations

import gc
import sys
from typing import Annotated

import typer

from app import PROJECT_NAME, __version__
from app.cli import audit, db, executions, health, jobs, scheduler{% if cookiecutter.workers == "procrastinate" %}, worker{% endif %}
from app.cli.output import (
    EXIT_FAILED,
    Command,
    errors_as_json,
    errors_as_json_requested,
    print_error,
    reset_error_format,
)

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
{%- if cookiecutter.workers == "procrastinate" %}
app.add_typer(worker.app, name="worker")
{%- endif %}
app.command("audit", cls=Command)(audit.audit)


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
    reset_error_format()


def main() -> None:
    """Console-script entry point: exit statuses 0 (done), 1 (failed), 2 (usage)."""
    errors_as_json(sys.argv[1:])
    try:
        # Not standalone: usage errors come back here, to be printed as JSON under --json.
        status = app(standalone_mode=False)
    except typer.TyperException as error:
        # Typer's usage and parameter errors (its own copy of click's).
        status = error.exit_code
        show = getattr(error, "show", None)
        if errors_as_json_requested() or show is None:
            print_error(error.format_message(), status)
        else:
            show()
    except typer.Abort:
        status = EXIT_FAILED
        print_error("cancelled", status)
    finally:
        # At exit the interpreter's last collections walk every object still alive, and the
        # database layer and pydantic leave many: 0.1-0.15 s of a short command. Frozen objects
        # are skipped; nothing here needs that collection (engines are disposed, and output is
        # flushed at exit as always).
        gc.freeze()
    raise SystemExit(status if isinstance(status, int) else 0)
