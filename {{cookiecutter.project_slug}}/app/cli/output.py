"""What every command shares: consoles, the source option (database or --url), errors, pages.

Only the parser's needs are imported here: the database layer, the management models and the
HTTP client load inside the command that uses them, so `--help` and input errors answer at once.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from app import ENV_PREFIX

if TYPE_CHECKING:
    from pydantic import BaseModel
    from sqlalchemy import Engine

    from app.components.management.protocol import JobManager
    from app.core.settings import Settings

# Piped output has no terminal width to follow; a wide table beats one that wraps every cell.
stdout = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
stderr = Console(stderr=True, highlight=False)

EXIT_FAILED = 1
EXIT_USAGE = 2


def _http_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{value!r} must start with http:// or https://")
    return value


UrlOption = Annotated[
    str | None,
    typer.Option(
        help="Ask a running API (for example http://127.0.0.1:8000) instead of the database.",
        callback=_http_url,
        metavar="URL",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        help=f"Bearer token for --url; by default {ENV_PREFIX}API_TOKEN.",
        metavar="TOKEN",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
LimitOption = Annotated[int, typer.Option(min=1, max=200, help="Rows per page.")]
PageOption = Annotated[int, typer.Option(min=1, help="Page to show, from 1.")]


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print `message` on stderr and exit with `code`."""
    stderr.print(f"error: {message}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    """The validated settings; invalid ones exit 2 with one line per problem."""
    from app.core.settings import SettingsError, get_settings

    try:
        return get_settings()
    except SettingsError as error:
        fail(str(error), EXIT_USAGE)


@contextmanager
def manager(url: str | None, token: str | None) -> Iterator[JobManager]:
    """The database (by default) or a remote API; any failure exits with a clear message."""
    settings = load_settings()
    if url:
        from app.components.management.remote import RemoteManagement

        secret = token or (settings.api_token.get_secret_value() if settings.api_token else None)
        remote = RemoteManagement(url, secret)
        try:
            yield remote
        finally:
            remote.close()
        return
    from app.components.management.service import Management

    with database(settings.database_url) as engine:
        yield Management(engine, settings)


@contextmanager
def database(url: str, create_file: bool = False) -> Iterator[Engine]:
    """An engine on the shared database; an unreachable database exits with one line."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.core.db import create_db_engine

    engine = create_db_engine(url, create_file=create_file)
    try:
        yield engine
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        fail(f"the database is unavailable: {reason}")
    finally:
        engine.dispose()


@contextmanager
def handled() -> Iterator[None]:
    """Turn the errors a command can meet into one line and an exit status."""
    from app.components.management.errors import InvalidInput, ManagementError

    try:
        yield
    except InvalidInput as error:
        for field, problem in error.problems.items():
            stderr.print(f"error: {field}: {problem}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    except ManagementError as error:
        fail(str(error))


def confirm(question: str, yes: bool) -> None:
    """Ask before a change others would notice; without a terminal, --yes is required."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question} Pass --yes to confirm (no terminal to ask on).", EXIT_USAGE)
    if not typer.confirm(question, default=False):
        fail("cancelled", EXIT_FAILED)


def print_json(model: BaseModel | list[BaseModel]) -> None:
    """A model as indented JSON."""
    if isinstance(model, list):
        typer.echo("[" + ",\n".join(item.model_dump_json(indent=2) for item in model) + "]")
    else:
        typer.echo(model.model_dump_json(indent=2))


def when(moment: datetime | None) -> str:
    """A moment in UTC, or '-'."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def page_footer(total: int, limit: int, page: int, shown: int, command: str) -> None:
    """Where this page sits, and how to see the next."""
    if total == 0:
        return
    first = (page - 1) * limit + 1
    pages = (total + limit - 1) // limit
    if shown == 0:
        stdout.print(f"Page {page} is past the end: {total} in {pages} page(s).")
        return
    line = f"Showing {first}-{first + shown - 1} of {total} (page {page} of {pages})"
    if page < pages:
        line += f"; next: {command} --page {page + 1}"
    stdout.print(line, markup=False, soft_wrap=True)
