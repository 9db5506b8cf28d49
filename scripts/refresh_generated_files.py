"""Regenerates the two template files that are outputs of the generated project's own code.

- `uv.lock`: resolved by uv for the generated pyproject (every optional dependency included).
- `.env.example`: rendered from the generated settings class.

Both are produced in projects generated with marker answers, then the markers are turned back
into the template variables. The example jobs' settings exist only with include_example_jobs,
so `.env.example` is rendered with and without them and the difference is wrapped in a
condition. The generated project's tests check `.env.example` again, and the
slow template tests run `uv sync --locked`, so a stale copy fails there.

Usage: uv run python scripts/refresh_generated_files.py
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
PROJECT_TEMPLATE = TEMPLATE / "{{cookiecutter.project_slug}}"

MARKERS = {
    "project_name": "Marker Project",
    "timezone": "Pacific/Chatham",
}
# Replacements back to template variables, longest first so that no marker eats another.
BACK_TO_TEMPLATE = [
    ("sqlite:///data/marker_project.db", "{{ cookiecutter.__database_url }}"),
    (
        "postgresql+psycopg://postgres@127.0.0.1:5432/marker_project",
        "{{ cookiecutter.__database_url }}",
    ),
    ("MARKER_PROJECT_", "{{ cookiecutter.__env_prefix }}"),
    ('name = "marker-project"', 'name = "{{ cookiecutter.project_slug }}"'),
    ("Marker Project", "{{ cookiecutter.project_name }}"),
    ("Pacific/Chatham", "{{ cookiecutter.timezone }}"),
]


def templated(text: str) -> str:
    """`text` with every marker replaced by its template variable."""
    for marker, variable in BACK_TO_TEMPLATE:
        text = text.replace(marker, variable)
    return text


# The lock's only difference with worker processes: uv installs their group by default.
PROJECT_SOURCE = 'source = { editable = "." }\n'
WORKERS_DEFAULT_GROUPS = 'default-groups = ["dev", "workers"]\n'


def generate(scratch: str, examples: str, workers: bool = False) -> Path:
    """A project with the marker answers, installed from a fresh lock."""
    answers = {**MARKERS, "include_example_jobs": examples}
    if workers:
        answers |= {"database": "postgresql", "workers": "procrastinate"}
    output_dir = f"{scratch}/{examples}{'-workers' if workers else ''}"
    project = Path(
        cookiecutter(str(TEMPLATE), no_input=True, extra_context=answers, output_dir=output_dir)
    )
    subprocess.run(["uv", "lock", "--quiet"], cwd=project, check=True)
    subprocess.run(
        ["uv", "run", "--frozen", "--quiet", "python", "-m", "app.core.env_example"],
        cwd=project,
        check=True,
    )
    return project


def env_example_template(with_workers: str, with_examples: str, without_examples: str) -> str:
    """One template that renders to each text: the example settings, then the workers', each
    under its condition."""
    with_workers, with_examples = templated(with_workers), templated(with_examples)
    without_examples = templated(without_examples)
    if not with_examples.startswith(without_examples):
        raise SystemExit("the example jobs' settings must come after the others in Settings")
    if not with_workers.startswith(with_examples):
        raise SystemExit("the workers' settings must come last in the Settings class")
    return (
        without_examples
        + '{% if cookiecutter.include_example_jobs == "yes" %}'
        + with_examples[len(without_examples) :]
        + "{% endif %}"
        + '{% if cookiecutter.workers == "procrastinate" %}'
        + with_workers[len(with_examples) :]
        + "{% endif %}"
    )


def lock_template(without_workers: str, with_workers: str) -> str:
    """The lock of a project without workers, with the line workers add under a condition."""
    if with_workers.replace(PROJECT_SOURCE + WORKERS_DEFAULT_GROUPS, PROJECT_SOURCE) != (
        without_workers
    ):
        raise SystemExit("the locks with and without workers differ in more than default-groups")
    return without_workers.replace(
        PROJECT_SOURCE,
        PROJECT_SOURCE.rstrip("\n")
        + '{% if cookiecutter.workers == "procrastinate" %}\n'
        + WORKERS_DEFAULT_GROUPS.rstrip("\n")
        + "{% endif %}\n",
    )


def main() -> None:
    """Generate, lock, render, and copy the results back into the template."""
    with tempfile.TemporaryDirectory() as scratch:
        workers = generate(scratch, "yes", workers=True)
        full, minimal = generate(scratch, "yes"), generate(scratch, "no")
        lock = lock_template(
            templated((full / "uv.lock").read_text(encoding="utf-8")),
            templated((workers / "uv.lock").read_text(encoding="utf-8")),
        )
        (PROJECT_TEMPLATE / "uv.lock").write_text(lock, encoding="utf-8")
        env_example = env_example_template(
            (workers / ".env.example").read_text(encoding="utf-8"),
            (full / ".env.example").read_text(encoding="utf-8"),
            (minimal / ".env.example").read_text(encoding="utf-8"),
        )
        (PROJECT_TEMPLATE / ".env.example").write_text(env_example, encoding="utf-8")
    print(f"refreshed {PROJECT_TEMPLATE.name}/uv.lock and .env.example")


if __name__ == "__main__":
    main()
