"""`worker`: run a worker process, which runs the jobs the scheduler queues for it."""

from __future__ import annotations

from typing import Annotated

import typer

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
