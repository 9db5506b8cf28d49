"""What every command shares: consoles, the source option (database or --url), errors, pages.

Only the parser's needs are imported here: the database layer, the management models and the
HTTP client load inside the command that uses them, so `--help` and input errors answer at once.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand

from app import ENV_PREFIX
from app.core.redact import redact_urls
from app.core.text import first_line, one_line, printable_lines

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


class Command(TyperCommand):
    """A command whose usage line names its arguments plainly: `jobs show JOB_ID`.

    Typer writes a required argument as `{JOB_ID}`, which reads like a placeholder to fill in
    with braces. Every command passes `cls=Command`.
    """

    def collect_usage_pieces(self, ctx: Any) -> list[str]:  # click.Context, as Typer vendors it
        pieces = super().collect_usage_pieces(ctx)
        return [
            piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece
            for piece in pieces
        ]


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
InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure",
        help="Send the token over plain http to a host that is not this machine.",
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


class _Errors:
    """How errors are printed: lines on stderr, or with --json one JSON object on stdout."""

    as_json = False
    # --json on the command line, seen before parsing: a usage error can stop the parser
    # before it reaches the option.
    asked_on_command_line = False


def errors_as_json(argv: list[str]) -> None:
    """Note whether the command line asks for JSON, so that usage errors are JSON too."""
    arguments = argv[: argv.index("--")] if "--" in argv else argv
    _Errors.asked_on_command_line = "--json" in arguments
    reset_error_format()


def reset_error_format() -> None:
    """Start an invocation with the command line's choice (tests invoke many per process)."""
    _Errors.as_json = _Errors.asked_on_command_line


def errors_as_json_requested() -> bool:
    return _Errors.as_json


def _json_mode(value: bool) -> bool:
    _Errors.as_json = value or _Errors.asked_on_command_line
    return value


JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help='Print JSON instead of tables; errors too, as {"error": ...}.',
        callback=_json_mode,
    ),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
# Commands that change something but ask nothing take --yes too, so scripts can pass it alike.
YesAcceptedOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Accepted for scripts; this command asks nothing.")
]
JobIdArgument = Annotated[
    str, typer.Argument(help="The job's id.", metavar="JOB_ID", show_default=False)
]
ExecutionIdArgument = Annotated[
    str, typer.Argument(help="The execution id.", metavar="EXECUTION_ID", show_default=False)
]
LimitOption = Annotated[int, typer.Option(min=1, max=200, help="Rows per page.")]
PageOption = Annotated[int, typer.Option(min=1, help="Page to show, from 1.")]


def plain(value: object) -> Text:
    """A value that may come from input, shown exactly: no Rich markup, control characters
    escaped, so a job named `[red]x` or `a\nb` cannot restyle or break a table."""
    return Text(one_line(value))


def verdict(healthy: bool) -> Text:
    """ "healthy" in green or "unhealthy" in red."""
    return Text("healthy", style="green") if healthy else Text("unhealthy", style="red")


def add_row(table: Table, *cells: object) -> None:
    """A row whose every cell is `plain`, but for cells already made into Text."""
    table.add_row(*(cell if isinstance(cell, Text) else plain(cell) for cell in cells))


def say(*parts: object) -> None:
    """A line on stdout from its parts, joined as they are: strings are `plain` (no markup),
    Text keeps its style."""
    line = Text.assemble(*(part if isinstance(part, Text) else plain(part) for part in parts))
    stdout.print(line, soft_wrap=True)


def print_block(text: str) -> None:
    """Several lines that may come from input (a traceback), control characters escaped."""
    stdout.print(Text(printable_lines(text)), soft_wrap=True)


def print_error(
    message: str, code: int, problems: dict[str, str] | None = None, **fields: Any
) -> None:
    """An error on stderr, or as one JSON object on stdout under --json.

    `problems` are per-field messages (a line each); `fields` go into the JSON only.
    """
    if _Errors.as_json:
        body: dict[str, Any] = {**fields, "error": message, "exit_code": code}
        if problems:
            body["problems"] = problems
        typer.echo(json.dumps(body, indent=2))
    elif problems:
        for field, problem in problems.items():
            stderr.print(Text(f"error: {one_line(field)}: {one_line(problem)}"), soft_wrap=True)
    else:
        stderr.print(Text(f"error: {one_line(message)}"), soft_wrap=True)


def fail(
    message: str, code: int = EXIT_FAILED, problems: dict[str, str] | None = None, **fields: Any
) -> NoReturn:
    """Print the error (see `print_error`) and exit with `code`."""
    print_error(message, code, problems, **fields)
    raise typer.Exit(code)


def load_settings() -> Settings:
    """The validated settings; invalid ones exit 2 with one line per problem."""
    from app.core.settings import SettingsError, get_settings

    try:
        return get_settings()
    except SettingsError as error:
        fail(str(error), EXIT_USAGE)


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine: localhost, or an address in 127.0.0.0/8 or ::1."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        # Any other name resolves through DNS: it may be anywhere, 127.example.com included.
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def refuse_plain_http(url: str, insecure: bool) -> None:
    """Exit 2 before the token is sent in clear text across a network, unless --insecure."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "http" and not is_loopback(host) and not insecure:
        fail(
            f"--url {redact_urls(url)} is plain http to {host}, not this machine's loopback "
            "address: the token could cross a network readable. Use https://, or pass "
            "--insecure to send it anyway.",
            EXIT_USAGE,
        )


@contextmanager
def manager(url: str | None, token: str | None, insecure: bool = False) -> Iterator[JobManager]:
    """The database (by default) or a remote API; any failure exits with a clear message."""
    settings = load_settings()
    if url:
        refuse_plain_http(url, insecure)
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
        reason = first_line(error)
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
        fail(str(error), EXIT_USAGE, error.problems)
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


# The CLI's one rule for times: UTC, said once. A table says it in its column header
# (`utc_column`) and its cells leave it out (`cell_time`); a sentence says it (`when`).
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def cell_time(moment: datetime | None) -> str:
    """A moment in UTC for a table cell under a `utc_column` header, or '-'."""
    return moment.astimezone(UTC).strftime(_TIME_FORMAT) if moment else "-"


def utc_column(name: str) -> str:
    """A header for a column of `cell_time` values."""
    return f"{name} (UTC)"


def when(moment: datetime | None) -> str:
    """A moment in UTC within a sentence, or '-'."""
    return f"{cell_time(moment)} UTC" if moment else "-"


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
    say(line)
