"""Validates the answers before cookiecutter writes anything.

Every option is a plain string checked here, rather than a cookiecutter choice list: an
unknown choice given on the command line makes cookiecutter itself fail with a traceback,
where this hook prints one line per problem.

The answers arrive as JSON text (rendered with `tojson`) and are parsed as data, so a value
with quotes or backslashes can neither break this file nor run as code.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ANSWERS_JSON = r"""{{ cookiecutter | tojson }}"""

SLUG_PATTERN = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
SLUG_MAX_LENGTH = 50
SUPPORTED_PYTHON = ("3.11", "3.12", "3.13")
CHOICES = {
    "database": ("sqlite", "postgresql"),
    "workers": ("none", "procrastinate"),
    "include_example_jobs": ("yes", "no"),
    "use_docker": ("yes", "no"),
}
# A project may not share a name with a package it depends on (the installer refuses), nor
# with its own Python package.
RESERVED_SLUGS = frozenset(
    {
        "app",
        "apscheduler",
        "fastapi",
        "fastapi-offline",
        "httpx",
        "mypy",
        "procrastinate",
        "psycopg",
        "pydantic",
        "pydantic-settings",
        "pytest",
        "pytest-asyncio",
        "rich",
        "ruff",
        "sqlalchemy",
        "typer",
        "tzdata",
        "uvicorn",
    }
)
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+")
# A title for the API's page and the CLI's help, not a paragraph.
NAME_MAX_LENGTH = 100


def check_slug(slug: str) -> str | None:
    """An error message for an unusable slug, else None."""
    if not SLUG_PATTERN.fullmatch(slug):
        return (
            f"project_slug {slug!r} is not usable as a package and command name: use lowercase "
            "letters, digits and single hyphens, starting with a letter (for example acme-billing)"
        )
    if len(slug) > SLUG_MAX_LENGTH:
        return f"project_slug {slug!r} is longer than {SLUG_MAX_LENGTH} characters"
    if slug in RESERVED_SLUGS:
        return f"project_slug {slug!r} is the name of a package the project uses; choose another"
    return None


def check_timezone(name: str) -> str | None:
    """An error message for a name that is not an IANA time zone, else None."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"timezone {name!r} is not an IANA time zone name (for example UTC or Europe/Paris)"
    return None


def check_answers(answers: dict[str, Any]) -> list[str]:
    """Every problem with the answers, one message each."""
    errors = []
    slug_error = check_slug(str(answers.get("project_slug", "")))
    if slug_error:
        errors.append(slug_error)
    name = str(answers.get("project_name", ""))
    if not name.strip():
        errors.append("project_name must not be empty")
    elif not name.isprintable():
        errors.append("project_name must be one line of printable characters")
    elif len(name) > NAME_MAX_LENGTH:
        errors.append(f"project_name is longer than {NAME_MAX_LENGTH} characters")
    python_version = str(answers.get("python_version", ""))
    if python_version not in SUPPORTED_PYTHON:
        errors.append(
            f"python_version {python_version!r} is not supported: use one of "
            + ", ".join(SUPPORTED_PYTHON)
        )
    timezone_error = check_timezone(str(answers.get("timezone", "")))
    if timezone_error:
        errors.append(timezone_error)
    for option, allowed in CHOICES.items():
        value = str(answers.get(option, ""))
        if value not in allowed:
            errors.append(f"{option} {value!r} is not one of: {', '.join(allowed)}")
    if answers.get("workers") == "procrastinate" and answers.get("database") != "postgresql":
        errors.append(
            "workers 'procrastinate' needs database 'postgresql': Procrastinate keeps its queue "
            "in PostgreSQL (answer database=postgresql, or workers=none)"
        )
    email = str(answers.get("author_email", ""))
    if not EMAIL_PATTERN.fullmatch(email):
        errors.append(f"author_email {email!r} is not an email address")
    return errors


def main() -> int:
    """Print each problem on its own line and fail, or succeed silently."""
    errors = check_answers(json.loads(ANSWERS_JSON))
    for error in errors:
        print(f"ERROR: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
