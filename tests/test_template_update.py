"""Slow tier: a project generated from an older commit of this template takes the current
template with the commands its docs give (docs/updating.md), and ends up file for file the
project the current template generates with the same answers.

That comparison is what this path adds: the generated-project tests already prove that such a
project installs, passes `make check` and runs, so its suite is not run a second time here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEMPLATE, generate, timed
from tests.doc_blocks import blocks

pytestmark = pytest.mark.slow

# Issue 4's landing: before the migrations, the Docker profiles and the docs sites.
OLDER_COMMIT = "efaa18263c06728b438a5eab9401a1be1158c111"
UPDATING_PAGE = TEMPLATE / "{{cookiecutter.project_slug}}" / "docs" / "updating.md"


def run(*command: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}
    }
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def git(*args: str, cwd: Path) -> str:
    result = run("git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_project_from_an_older_template_updates_to_what_the_template_generates_now(
    tmp_path: Path,
) -> None:
    known = run("git", "cat-file", "-e", f"{OLDER_COMMIT}^{{commit}}", cwd=TEMPLATE)
    assert known.returncode == 0, f"{OLDER_COMMIT} is not in this clone's history (shallow?)"
    cruft = str(Path(sys.executable).with_name("cruft"))
    with timed("update: cruft create at the older commit"):
        created = run(
            cruft,
            "create",
            str(TEMPLATE),
            "--checkout",
            OLDER_COMMIT,
            "--no-input",
            "--output-dir",
            str(tmp_path),
            cwd=tmp_path,
        )
    assert created.returncode == 0, created.stdout + created.stderr
    project = tmp_path / "my-scheduler-service"
    assert not (project / "alembic.ini").exists()  # truly the older template
    git("init", "-q", cwd=project)
    git("add", "-A", cwd=project)
    git("commit", "-qm", "generated", cwd=project)

    # The page's one-time step for projects generated before `[tool.cruft] skip` existed.
    state_file = project / ".cruft.json"
    state = json.loads(state_file.read_text())
    state["skip"] = [".env"]
    state_file.write_text(json.dumps(state, indent=2) + "\n")
    git("commit", "-qam", "skip .env in template updates", cwd=project)

    [update] = [block for block in blocks(UPDATING_PAGE) if block.kind == "update"]
    for command in update.commands():
        with timed(f"update: {command}"):
            result = run("bash", "-c", command, cwd=project)
        assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"

    assert list(project.rglob("*.rej")) == []
    head = git("rev-parse", "HEAD", cwd=TEMPLATE)
    assert json.loads(state_file.read_text())["commit"] == head
    assert (project / "alembic.ini").exists()
    assert (project / "docs" / "updating.md").exists()

    answers = {
        name: value
        for name, value in json.loads(state_file.read_text())["context"]["cookiecutter"].items()
        if not name.startswith("_")
    }
    fresh = generate(tmp_path / "fresh", **answers)
    updated, generated = tree(project), tree(fresh)
    assert "app/cli/main.py" in generated  # the comparison covers the project's files
    differing = sorted(
        p for p in updated.keys() | generated.keys() if updated.get(p) != generated.get(p)
    )
    assert differing == [], "the update left these files unlike a fresh project's"


# What differs between two generations by design: fresh secrets, and where each came from.
NOT_COMPARED = {".git", ".env", ".cruft.json"}


def tree(root: Path) -> dict[str, bytes]:
    """Every file below `root` with its content, but for NOT_COMPARED."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.relative_to(root).parts[0] not in NOT_COMPARED
    }
