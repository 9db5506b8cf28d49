"""The command-line interface, installed as `{{ cookiecutter.project_slug }}`."""

from __future__ import annotations

from typing import Annotated

import typer

from app import PROJECT_NAME, __version__
from app.cli import health

app = typer.Typer(
    help=f"Operate {PROJECT_NAME}: check the database, the scheduler and its jobs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(health.app, name="health")


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
    app()
