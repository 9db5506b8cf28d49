"""Finishes a generated project: removes the files the chosen options do not need (the
manifest), writes `.env` with fresh secrets, and records the answers in `.cruft.json`."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
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
    # It ends PostgreSQL sessions; a SQLite project has none.
    "tests/test_postgres_sessions.py": {"database": "postgresql"},
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


def template_commit(repo_dir: str) -> str | None:
    """The template's git commit, or None when it is not a git checkout."""
    try:
        result = subprocess.run(
            ["git", "-C", repo_dir, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def template_location(given: str) -> str:
    """The template as given, made absolute when it is a local folder.

    Hooks run inside the new project, so a relative path is resolved from the folder
    cookiecutter was started in (the shell's PWD).
    """
    path = Path(given).expanduser()
    if "://" in given or given.startswith("git@") or path.is_absolute():
        return given
    started_in = Path(os.environ.get("PWD", "."))
    candidate = (started_in / path).resolve()
    return str(candidate) if candidate.is_dir() else given


def write_cruft_state(project_dir: Path, answers: dict[str, Any]) -> None:
    """The answers and the template's commit, in cruft's format, so `cruft update` works.

    `cruft create` writes this file itself (after this hook); a plain `cookiecutter` run gets
    the same record here.
    """
    template = template_location(str(answers.get("_template", "")))
    repo_dir = answers.get("_repo_dir", "")
    commit = template_commit(template_location(repo_dir) if repo_dir else template)
    context = {
        name: value
        for name, value in answers.items()
        if not name.startswith("_") or name.startswith("__") or name == "_template"
    }
    state = {
        "template": template,
        "commit": commit,
        "checkout": answers.get("_checkout"),
        "context": {"cookiecutter": {**context, "_template": template, "_commit": commit}},
        "directory": None,
    }
    (project_dir / ".cruft.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")


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
    write_cruft_state(Path.cwd(), answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
