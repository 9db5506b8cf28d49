"""The command-line interface, installed as `{{ cookiecutter.project_slug }}`."""

from __future__ import annotations

import typer

from app import PROJECT_NAME
from app.cli import health

app = typer.Typer(
    help=f"Operate {PROJECT_NAME}: check its health and inspect its jobs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(health.app, name="health")


def main() -> None:
    """Console-script entry point."""
    app()
