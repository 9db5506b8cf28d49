"""Write a new `.env` with fresh secrets: `python3 scripts/new_env_file.py PREFIX [--postgres]`.

Generation runs it, and so does `make .env` in a fresh clone (git ignores `.env`). It needs
only the standard library, so it runs before anything is installed. The file is created
owner-only (0600) in one step and never overwritten: an existing `.env` holds settings and
secrets someone chose.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path


def env_lines(prefix: str, *, postgres: bool) -> list[str]:
    lines = [
        "# Local settings; not tracked by git. .env.example lists every setting.",
        f"{prefix}API_TOKEN={secrets.token_urlsafe(32)}",
    ]
    if postgres:
        lines += [
            "# The compose file's PostgreSQL passwords (for its containers, not for make run):",
            "# the superuser's, and the app's own role's.",
            f"POSTGRES_PASSWORD={secrets.token_urlsafe(24)}",
            f"POSTGRES_APP_PASSWORD={secrets.token_urlsafe(24)}",
        ]
    return lines


def write_private(path: Path, text: str) -> None:
    """Create `path` readable by its owner only; FileExistsError if it exists."""
    # The mode is given at creation: a chmod afterwards would leave a moment in which the
    # secrets are readable by anyone the umask lets in.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("prefix", help="the settings' environment prefix, such as ACME_")
    parser.add_argument(
        "--postgres", action="store_true", help="also passwords for the compose file's PostgreSQL"
    )
    args = parser.parse_args(argv)
    path = Path(".env")
    try:
        write_private(path, "\n".join(env_lines(args.prefix, postgres=args.postgres)) + "\n")
    except FileExistsError:
        print(f"{path} exists; left as it is (delete it to get new secrets)", file=sys.stderr)
        return 1
    print(f"wrote {path} with a new API token (mode 0600)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
