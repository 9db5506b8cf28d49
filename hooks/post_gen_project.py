"""Removes the files the chosen options do not need, as the manifest says."""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any

ANSWERS_JSON = r"""{{ cookiecutter | tojson }}"""

# Each path is kept only when every option it names has the value given here. Paths are
# relative to the generated project; a folder goes with everything in it.
MANIFEST: dict[str, dict[str, str]] = {
    "Dockerfile": {"use_docker": "yes"},
    ".dockerignore": {"use_docker": "yes"},
    "docker-compose.yml": {"use_docker": "yes"},
    "app/core/files.py": {"include_example_jobs": "yes"},
    "app/services/reports.py": {"include_example_jobs": "yes"},
    "app/services/sync.py": {"include_example_jobs": "yes"},
    "app/services/temp_files.py": {"include_example_jobs": "yes"},
    "tests/services/test_reports.py": {"include_example_jobs": "yes"},
    "tests/services/test_sync.py": {"include_example_jobs": "yes"},
    "tests/services/test_temp_files.py": {"include_example_jobs": "yes"},
}


def paths_to_remove(manifest: dict[str, dict[str, str]], answers: dict[str, Any]) -> list[str]:
    """The manifest's paths whose conditions the answers do not meet."""
    return [
        path
        for path, conditions in manifest.items()
        if any(answers.get(option) != value for option, value in conditions.items())
    ]


def remove(project_dir: Path, relative_paths: list[str]) -> None:
    """Delete each path; a path missing from the template is a bug in the manifest."""
    for relative in relative_paths:
        path = project_dir / relative
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            raise FileNotFoundError(f"manifest names {relative}, which the template lacks")


def write_env_file(project_dir: Path, env_prefix: str, compose_postgres: bool) -> None:
    """A `.env` with fresh random secrets: `.gitignore` keeps it out of the repository."""
    lines = [
        "# Local settings; not tracked by git. .env.example lists every setting.",
        f"{env_prefix}API_TOKEN={secrets.token_urlsafe(32)}",
    ]
    if compose_postgres:
        lines += [
            "# The compose file's PostgreSQL password (for its containers, not for make run).",
            f"POSTGRES_PASSWORD={secrets.token_urlsafe(24)}",
        ]
    (project_dir / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (project_dir / ".env").chmod(0o600)


def main() -> int:
    """Apply the manifest to the project in the working directory, then write its `.env`."""
    answers = json.loads(ANSWERS_JSON)
    try:
        remove(Path.cwd(), paths_to_remove(MANIFEST, answers))
    except FileNotFoundError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    compose_postgres = answers["database"] == "postgresql" and answers["use_docker"] == "yes"
    write_env_file(Path.cwd(), answers["__env_prefix"], compose_postgres)
    return 0


if __name__ == "__main__":
    sys.exit(main())
