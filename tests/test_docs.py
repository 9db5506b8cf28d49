"""Fast tier: both documentation sites build with `mkdocs build --strict`, every shell and
Python block carries a doc-test mark, the generated project records its answers for cruft,
and its CI workflow runs the Makefile's `check` targets."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import TEMPLATE, generate
from tests.doc_blocks import blocks, nav_pages, unmarked_code

VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {},
    "postgresql-workers-no-docker-no-examples": {
        "workers": "procrastinate",
        "database": "postgresql",
        "use_docker": "no",
        "include_example_jobs": "no",
    },
}
QUIET_MKDOCS = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}


@pytest.fixture(scope="module", params=list(VARIANTS))
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp(request.param), **VARIANTS[request.param])


def mkdocs_build(root: Path, site: Path, *uv_run: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*uv_run, "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=root,
        env=QUIET_MKDOCS,
        capture_output=True,
        text=True,
        check=False,
    )


def test_template_docs_build_strict(tmp_path: Path) -> None:
    result = mkdocs_build(TEMPLATE, tmp_path / "site", "uv", "run", "--frozen")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "options" / "index.html").exists()
    # The getting-started page includes the README's commands, not a copy of them.
    page = re.sub(r"<[^>]+>", "", (tmp_path / "site" / "index.html").read_text())
    assert "make demo" in page


def test_generated_docs_build_strict_with_the_settings_table(project: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    synced = subprocess.run(
        ["uv", "sync", "--frozen", "--quiet"], cwd=project, env=env, capture_output=True, text=True
    )
    assert synced.returncode == 0, synced.stderr
    result = mkdocs_build(project, tmp_path / "site", "uv", "run", "--frozen")
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "site" / "configuration" / "index.html").read_text()
    settings = (project / "app" / "core" / "settings.py").read_text()
    prefix = project.name.upper().replace("-", "_") + "_"
    fields = re.findall(r"^    (\w+): [^=\n]+ = Field\(", settings, re.M)
    assert len(fields) > 10
    for field in fields:
        assert f"{prefix}{field.upper()}" in page, field
    assert "<!-- settings-reference -->" not in page


def test_every_code_block_is_marked(project: Path) -> None:
    assert unmarked_code(nav_pages(TEMPLATE)) == []
    assert unmarked_code(nav_pages(project)) == []


def test_the_check_block_is_make_check(project: Path) -> None:
    """The slow tier runs this block in every variant; it must stay the README's one check."""
    [block] = [b for page in nav_pages(project) for b in blocks(page) if b.kind == "check"]
    assert block.page.name == "README.md"
    assert block.commands() == ["make check"]


def test_ci_blocks_are_what_ci_runs() -> None:
    ci_run = (TEMPLATE / ".ci" / "run").read_text()
    ci_blocks = [b for page in nav_pages(TEMPLATE) for b in blocks(page) if b.kind == "ci"]
    assert ci_blocks
    for block in ci_blocks:
        for command in block.commands():
            assert re.search(rf"^{re.escape(command)}$", ci_run, re.M), command


def test_answers_are_recorded_for_cruft(project: Path) -> None:
    state = json.loads((project / ".cruft.json").read_text())
    assert state["template"] == str(TEMPLATE)
    head = subprocess.run(
        ["git", "-C", str(TEMPLATE), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    assert state["commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    answers = state["context"]["cookiecutter"]
    assert answers["project_slug"] == project.name
    for name, value in VARIANTS[project.parent.name.rstrip("0123456789")].items():
        assert answers[name] == value
    pyproject = (project / "pyproject.toml").read_text()
    assert "[tool.cruft]\n# `cruft update` leaves these alone" in pyproject
    assert 'skip = [".env"]' in pyproject


def makefile_prerequisites(makefile: str, target: str) -> list[str]:
    match = re.search(rf"^{target}:([^#\n]*)", makefile, re.M)
    assert match, f"no {target} target"
    return match[1].split()


def test_ci_workflow_runs_the_makefile_check_targets(project: Path) -> None:
    workflow = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())
    makefile = (project / "Makefile").read_text()
    # Least privilege: a pull request's checks cannot push, tag or comment with the token.
    assert workflow["permissions"] == {"contents": "read"}
    [job] = workflow["jobs"].values()
    runs = [step["run"] for step in job["steps"] if "run" in step]
    targets = []
    for run in runs:
        assert re.fullmatch(r"make [\w-]+", run), f"a CI step that is not a make target: {run}"
        targets.append(run.split()[1])
    assert targets == makefile_prerequisites(makefile, "check")
    postgres = "postgresql" in project.parent.name
    assert ("services" in job) == postgres
    if postgres:
        assert "pg_isready" in job["services"]["postgres"]["options"]
        assert job["env"]["TEST_DATABASE_URL"].startswith("postgresql+psycopg://")


def test_the_documented_generate_command_gives_clear_errors_only(tmp_path: Path) -> None:
    """The README's own command, run with a bad answer: the hook's lines, no traceback."""
    [command] = [
        line
        for block in blocks(TEMPLATE / "README.md")
        for line in block.commands()
        if line.startswith("uvx cookiecutter")
    ]
    locked = re.search(
        r'name = "cookiecutter"\nversion = "([^"]+)"', (TEMPLATE / "uv.lock").read_text()
    )
    assert locked
    assert command.startswith(f"uvx cookiecutter=={locked[1]} "), (
        "the README pins the locked version"
    )
    bad = command.replace("build/example", str(tmp_path / "out")) + " project_slug=Not_Usable"
    result = subprocess.run(
        ["bash", "-c", bad], cwd=TEMPLATE, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "ERROR: project_slug 'Not_Usable' is not usable" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
