"""Regenerates the two template files that are outputs of the generated project's own code.

- `uv.lock`: resolved by uv for the generated pyproject (every optional dependency included).
- `.env.example`: rendered from the generated settings class.

Both are produced in a project generated with marker answers, then the markers are turned back
into the template variables. The generated project's tests check `.env.example` again, and the
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


def main() -> None:
    """Generate, lock, render, and copy the results back into the template."""
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(
            cookiecutter(str(TEMPLATE), no_input=True, extra_context=MARKERS, output_dir=scratch)
        )
        subprocess.run(["uv", "lock"], cwd=project, check=True)
        subprocess.run(
            ["uv", "run", "--frozen", "python", "-m", "app.core.env_example"],
            cwd=project,
            check=True,
        )
        for name in ("uv.lock", ".env.example"):
            text = (project / name).read_text(encoding="utf-8")
            (PROJECT_TEMPLATE / name).write_text(templated(text), encoding="utf-8")
            print(f"refreshed {PROJECT_TEMPLATE.name}/{name}")


if __name__ == "__main__":
    main()
