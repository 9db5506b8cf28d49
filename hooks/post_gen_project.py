"""Finishes a generated project: removes the files the chosen options do not need (the
manifest), writes `.env` with fresh secrets, and records the answers in `.cruft.json`."""

from __future__ import annotations

import json
import os
import shlex
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
    # The compose file's PostgreSQL creates the app's own role with it.
    "docker": {"use_docker": "yes", "database": "postgresql"},
    # Worker processes: the component, its process, its command and its tests.
    "app/components/worker": {"workers": "procrastinate"},
    "app/entrypoints/worker.py": {"workers": "procrastinate"},
    "app/cli/worker.py": {"workers": "procrastinate"},
    "tests/worker": {"workers": "procrastinate"},
    "docs/workers.md": {"workers": "procrastinate"},
    "benchmarks/workers.py": {"workers": "procrastinate"},
    "deploy/prometheus/worker-alerts.yml": {"workers": "procrastinate"},
    "deploy/prometheus/worker-alerts.test.yml": {"workers": "procrastinate"},
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
    """A `.env` with fresh secrets, written by the project's own script (as `make .env` is)."""
    command = [sys.executable, "scripts/new_env_file.py", env_prefix]
    if compose_postgres:
        command.append("--postgres")
    subprocess.run(command, cwd=project_dir, check=True, capture_output=True, text=True)


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


def next_steps(project_dir: Path, answers: dict[str, Any]) -> str:
    """What to type next, printed once the project is written."""
    started_in = Path(os.environ.get("PWD", ".")).resolve()
    try:
        where = str(project_dir.resolve().relative_to(started_in))
    except ValueError:
        where = str(project_dir.resolve())
    prefix = answers["__env_prefix"]
    processes = (
        "the API (http://127.0.0.1:8000), the scheduler and a worker"
        if answers["workers"] == "procrastinate"
        else "the API on http://127.0.0.1:8000 and the scheduler"
    )
    lines = [
        f"Generated {answers['project_slug']} in {project_dir.resolve()}",
        "",
        "Next:",
        f"  cd {shlex.quote(where)}",
        f"  make run     # {processes}; Ctrl-C stops them",
        "  make help    # every target: test, check, docs, migrations, benchmarks",
        "",
        f"The API token is {prefix}API_TOKEN in .env (never committed: git ignores .env).",
        f"Another port: {prefix}API_PORT=8080 in .env.",
    ]
    if answers["database"] == "postgresql":
        database = answers["project_slug"].replace("-", "_")
        lines.append(
            f"make run needs PostgreSQL on 127.0.0.1:5432 with a database {database} "
            f"(createdb -h 127.0.0.1 -U postgres {database}), or {prefix}DATABASE_URL in .env."
        )
    return "\n".join(lines)


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
    print(next_steps(Path.cwd(), answers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
