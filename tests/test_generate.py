"""Fast tier: generate each option value and the pairs that interact, and inspect the output."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.conftest import TEMPLATE, generate
from tests.test_hooks import post_gen

VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {},
    "python-3.12": {"python_version": "3.12"},
    "python-3.13": {"python_version": "3.13"},
    "postgresql": {"database": "postgresql"},
    "no-examples": {"include_example_jobs": "no"},
    "no-docker": {"use_docker": "no"},
    "timezone": {"timezone": "America/New_York"},
    "named": {"project_name": "Acme Billing"},
    # Pairs whose files depend on both options.
    "postgresql-no-docker": {"database": "postgresql", "use_docker": "no"},
    "postgresql-no-examples": {"database": "postgresql", "include_example_jobs": "no"},
    "no-examples-no-docker": {"include_example_jobs": "no", "use_docker": "no"},
    "workers": {"database": "postgresql", "workers": "procrastinate"},
}
UNRENDERED = re.compile(r"\{\{|\{%|\{#")


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, str], Path]:
    answers = VARIANTS[request.param]
    return answers, generate(tmp_path_factory.mktemp(request.param), **answers)


def option(answers: dict[str, str], name: str) -> str:
    defaults = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    value = answers.get(name, defaults[name])
    return value[0] if isinstance(value, list) else str(value)


def copied_as_is(project: Path) -> set[Path]:
    """The files cookiecutter copies without rendering: their braces are Prometheus's."""
    patterns = json.loads((TEMPLATE / "cookiecutter.json").read_text())["_copy_without_render"]
    return {path for pattern in patterns for path in project.glob(pattern)}


PICTURES = {".jpg", ".png"}


def test_nothing_left_unrendered(variant: tuple[dict[str, str], Path]) -> None:
    _, project = variant
    as_is = copied_as_is(project)
    assert as_is, "no file is copied without rendering"
    for path in project.rglob("*"):
        assert not UNRENDERED.search(path.name), path
        if not path.is_file():
            continue
        if path in as_is and path.suffix in PICTURES:
            # The docs' screenshots: copied as is, with no text to render.
            continue
        text = path.read_text(encoding="utf-8")
        if path in as_is:
            assert "cookiecutter" not in text, f"{path} is copied as is, so not rendered"
        else:
            assert not UNRENDERED.search(text), path


@pytest.mark.parametrize("answers", [{}, VARIANTS["workers"]], ids=["default", "workers"])
def test_prometheus_files_pass_promtool(tmp_path: Path, answers: dict[str, str]) -> None:
    """The scrape config and the alert rules are valid, and the rules' own tests pass; with
    workers, their rules too, and the scrape config finds the workers."""
    assert shutil.which("promtool"), "promtool is missing: apt-get install prometheus"
    folder = generate(tmp_path, **answers) / "deploy" / "prometheus"
    rules = ["alerts"] + (["worker-alerts"] if answers else [])
    scraped = yaml.safe_load((folder / "prometheus.yml").read_text())
    assert scraped["rule_files"] == [f"{name}.yml" for name in rules]
    jobs = {job["job_name"] for job in scraped["scrape_configs"]}
    assert jobs == {"scheduler", "api"} | ({"worker"} if answers else set())
    for command in (
        ["check", "config", "prometheus.yml"],
        *(["check", "rules", f"{name}.yml"] for name in rules),
        *(["test", "rules", f"{name}.test.yml"] for name in rules),
    ):
        result = subprocess.run(
            ["promtool", *command], cwd=folder, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, (
            f"promtool {' '.join(command)}:\n{result.stdout}{result.stderr}"
        )


def test_grafana_dashboard_is_a_dashboard_of_prometheus_queries(tmp_path: Path) -> None:
    dashboard = json.loads((generate(tmp_path) / "deploy/grafana/dashboard.json").read_text())
    assert dashboard["uid"]
    panels = dashboard["panels"]
    assert len(panels) >= 10
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert re.search(r"\b(scheduler|api)_[a-z_]+", target["expr"]), target


def test_manifest_files_follow_the_options(variant: tuple[dict[str, str], Path]) -> None:
    answers, project = variant
    for path, conditions in post_gen.MANIFEST.items():
        wanted = all(option(answers, name) == value for name, value in conditions.items())
        assert (project / path).exists() == wanted, path


def test_toml_and_yaml_parse(variant: tuple[dict[str, str], Path]) -> None:
    answers, project = variant
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    lock = tomllib.loads((project / "uv.lock").read_text())
    slug = project.name
    assert pyproject["project"]["name"] == slug
    assert pyproject["project"]["scripts"] == {slug: "app.cli.main:main"}
    assert slug in {package["name"] for package in lock["package"]}
    python = option(answers, "python_version")
    assert pyproject["tool"]["mypy"]["python_version"] == python
    assert (project / ".python-version").read_text().strip() == python
    compose = project / "docker-compose.yml"
    if compose.exists():
        services = yaml.safe_load(compose.read_text())["services"]
        assert {"api", "scheduler"} <= set(services)
        assert ("postgres" in services) == (option(answers, "database") == "postgresql")


def test_generated_python_is_ruff_clean(variant: tuple[dict[str, str], Path]) -> None:
    _, project = variant
    for command in (
        ["ruff", "check", "--no-cache", "."],
        ["ruff", "format", "--check", "--no-cache", "."],
    ):
        result = subprocess.run(
            [sys.executable, "-m", *command],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_options_reach_the_settings(variant: tuple[dict[str, str], Path]) -> None:
    answers, project = variant
    settings = (project / "app" / "core" / "settings.py").read_text()
    assert f'"{option(answers, "timezone")}",' in settings
    database_url = (
        "postgresql+psycopg://"
        if option(answers, "database") == "postgresql"
        else "sqlite:///data/"
    )
    assert f'"{database_url}' in settings


def test_job_list_matches_the_example_option(variant: tuple[dict[str, str], Path]) -> None:
    answers, project = variant
    source = (project / "app" / "components" / "scheduler" / "jobs.py").read_text()
    ids = set(re.findall(r'id="([a-z_]+)"', source))
    examples = {"daily_report", "cleanup_temp_files", "sync_external_data"}
    assert {"system_maintenance", "cleanup_old_records"} <= ids
    assert (examples <= ids) == (option(answers, "include_example_jobs") == "yes")
    assert ids & examples in (set(), examples)


def project_name_in(project: Path) -> str:
    """PROJECT_NAME as Python reads it from the generated package."""
    init = ast.parse((project / "app" / "__init__.py").read_text())
    [name] = [
        ast.literal_eval(node.value)
        for node in init.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id == "PROJECT_NAME"
    ]
    return str(name)


def ruff_problems(project: Path) -> str:
    """What ruff check and ruff format --check say of the project; empty when it is clean."""
    said = ""
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--no-cache", "."],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            said += result.stdout + result.stderr
    return said


def test_quotes_and_backslashes_are_data(tmp_path: Path) -> None:
    name = "Acme \"Billing\" \\ 'quoted' \"\"\"triple\"\"\" '''more'''"
    description = 'Says "hi" \\ and \'bye\'; """ends"""'
    project = generate(
        tmp_path, project_name=name, project_slug="acme-billing", description=description
    )
    assert project_name_in(project) == name
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == description
    for path in project.rglob("*.py"):
        ast.parse(path.read_text(), filename=str(path))
    assert ruff_problems(project) == ""


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ('Say "Hi"', "say-hi"),
        ("Back\\slash", "back-slash"),
        ("Zoë's Billing", "zoes-billing"),
        # A typographic apostrophe (U+2019), the one phones type.
        ("Zoë\u2019s Café", "zoes-cafe"),
        ('"Quoted" at the start', "quoted-at-the-start"),
        ("Ünïcødé Биллинг 日本", "unicode-billing-ri-ben"),
        ("3D Printing", "project-3d-printing"),
        ("!!!", "project"),
        ("Zo\u2018s \u02bcQuoted\u00b4 `Ticks`", "zos-quoted-ticks"),
        # The slug is cut to the 50 characters allowed, never on a hyphen.
        ("A" * 30 + " " + "B" * 30, "a" * 30 + "-" + "b" * 19),
        ("Ab " * 30, "ab-" * 16 + "ab"),
    ],
)
def test_any_printable_name_generates_a_clean_project(tmp_path: Path, name: str, slug: str) -> None:
    project = generate(tmp_path, project_name=name)
    assert project.name == slug
    assert project_name_in(project) == name
    assert ruff_problems(project) == ""


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"project_slug": "1-service"}, "project_slug '1-service' is not usable"),
        ({"project_name": "x" * 101}, "project_name is longer than 100 characters"),
        ({"project_slug": "Acme_Billing"}, "project_slug 'Acme_Billing' is not usable"),
        ({"project_slug": "typer"}, "project_slug 'typer' is the name of a package"),
        (
            {"timezone": "Mars/Olympus_Mons"},
            "timezone 'Mars/Olympus_Mons' is not an IANA time zone",
        ),
        ({"author_email": "nobody"}, "author_email 'nobody' is not an email address"),
        ({"python_version": "3.9"}, "python_version '3.9' is not supported: use one of 3.11"),
        ({"database": "mysql"}, "database 'mysql' is not one of: sqlite, postgresql"),
        ({"use_docker": "maybe"}, "use_docker 'maybe' is not one of: yes, no"),
    ],
)
def test_invalid_answers_fail_in_the_hook(
    tmp_path: Path, answers: dict[str, str], message: str
) -> None:
    arguments = [f"{key}={value}" for key, value in answers.items()]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            str(TEMPLATE),
            "--no-input",
            "-o",
            str(tmp_path),
            *arguments,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert f"ERROR: {message}" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []


def test_env_file_holds_a_fresh_token_that_git_ignores(
    variant: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    _, project = variant
    prefix = project.name.upper().replace("-", "_")
    env = (project / ".env").read_text()
    [token] = re.findall(rf"^{prefix}_API_TOKEN=(\S+)$", env, re.MULTILINE)
    assert len(token) >= 32
    compose_postgres = option(variant[0], "database") == "postgresql" and (
        option(variant[0], "use_docker") == "yes"
    )
    passwords = re.findall(r"^POSTGRES(_APP)?_PASSWORD=(\S{24,})$", env, re.MULTILINE)
    assert len(passwords) == (2 if compose_postgres else 0)
    assert (project / ".env").stat().st_mode & 0o077 == 0
    ignored = (project / ".gitignore").read_text().splitlines()
    # .env and its variants (.env.production, ...), but not the example that documents them.
    assert {".env", ".env.*", "!.env.example"} <= set(ignored)
    if (project / ".dockerignore").exists():
        unsent = (project / ".dockerignore").read_text().splitlines()
        assert {".env", ".env.*", "!.env.example"} <= set(unsent)
    # No tracked file carries a token: the example leaves it empty.
    assert f"# {prefix}_API_TOKEN=\n" in (project / ".env.example").read_text()
    other = generate(tmp_path, project_name=option(variant[0], "project_name"))
    assert token not in (other / ".env").read_text()


def test_make_env_in_a_fresh_clone_writes_what_generation_wrote(
    variant: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    _, project = variant
    clone = tmp_path / "clone"
    shutil.copytree(project, clone, ignore=shutil.ignore_patterns(".env"))
    result = subprocess.run(
        ["make", ".env"], cwd=clone, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr

    def keys(path: Path) -> list[str]:
        text = path.read_text()
        return re.findall(r"^(\w+)=", text, re.MULTILINE)

    assert keys(clone / ".env") == keys(project / ".env")
    assert (clone / ".env").stat().st_mode & 0o077 == 0
    assert (clone / ".env").read_text() != (project / ".env").read_text()


def test_make_says_what_to_do_when_uv_does_not_run(
    variant: tuple[dict[str, str], Path],
) -> None:
    _, project = variant
    # `false` exists, as a pyenv shim does, but fails when run.
    result = subprocess.run(
        ["make", "run", "UV=false"], cwd=project, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "error: 'false --version' failed: uv cannot run in this folder." in result.stderr
    assert "python3 -m pip install uv" in result.stderr
    assert "make run UV=/path/to/uv" in result.stderr
