"""Unit tests of the hooks' functions, imported from the hook files as they are."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import DEFAULTS, TEMPLATE


def load_hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, TEMPLATE / "hooks" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pre_gen = load_hook("pre_gen_project")
post_gen = load_hook("post_gen_project")


# A SQLite project has no PostgreSQL sessions to end, nor a compose PostgreSQL to set up.
SQLITE_LACKS = {"tests/test_postgres_sessions.py", "docker"}
# What a project without worker processes (the default) leaves out.
WORKERS_ONLY = {
    "app/components/worker",
    "app/entrypoints/worker.py",
    "app/cli/worker.py",
    "tests/worker",
    "docs/workers.md",
    "benchmarks/workers.py",
    "deploy/prometheus/worker-alerts.yml",
    "deploy/prometheus/worker-alerts.test.yml",
}


def valid_answers(**changes: str) -> dict[str, Any]:
    answers = {
        key: value[0] if isinstance(value, list) else value for key, value in DEFAULTS.items()
    }
    answers["project_slug"] = "my-scheduler-service"
    return {**answers, **changes}


@pytest.mark.parametrize("slug", ["a", "acme", "acme-billing", "a1-b2-c3", "x" * 50])
def test_usable_slugs(slug: str) -> None:
    assert pre_gen.check_slug(slug) is None


@pytest.mark.parametrize(
    ("slug", "message"),
    [
        ("", "not usable"),
        ("1acme", "not usable"),
        ("Acme", "not usable"),
        ("acme_billing", "not usable"),
        ("acme--billing", "not usable"),
        ("acme-", "not usable"),
        ("-acme", "not usable"),
        ("acme billing", "not usable"),
        ("x" * 51, "longer than 50"),
        ("fastapi", "name of a package the project uses"),
        ("app", "name of a package the project uses"),
    ],
)
def test_unusable_slugs(slug: str, message: str) -> None:
    error = pre_gen.check_slug(slug)
    assert error is not None
    assert message in error


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires"])
def test_real_timezones(zone: str) -> None:
    assert pre_gen.check_timezone(zone) is None


@pytest.mark.parametrize("zone", ["", "Mars/Base", "utc/", "../etc/passwd", "Europe/Paris "])
def test_unreal_timezones(zone: str) -> None:
    assert "is not an IANA time zone" in pre_gen.check_timezone(zone)


def test_defaults_are_valid() -> None:
    assert pre_gen.check_answers(valid_answers()) == []


def test_every_problem_is_reported_at_once() -> None:
    errors = pre_gen.check_answers(
        valid_answers(
            project_slug="Bad",
            timezone="Nowhere",
            python_version="3.9",
            database="mysql",
            author_email="nobody",
        )
    )
    assert [error.split()[0] for error in errors] == [
        "project_slug",
        "python_version",
        "timezone",
        "database",
        "author_email",
    ]


def test_workers_on_sqlite_are_refused_in_one_line() -> None:
    assert pre_gen.check_answers(valid_answers(workers="procrastinate")) == [
        "workers 'procrastinate' needs database 'postgresql': Procrastinate keeps its queue in "
        "PostgreSQL (answer database=postgresql, or workers=none)"
    ]
    on_postgresql = valid_answers(workers="procrastinate", database="postgresql")
    assert pre_gen.check_answers(on_postgresql) == []


def test_control_characters_in_the_name_are_refused() -> None:
    assert pre_gen.check_answers(valid_answers(project_name="Two\nLines")) == [
        "project_name must be one line of printable characters"
    ]


@pytest.mark.parametrize(
    ("changes", "removed"),
    [
        ({}, SQLITE_LACKS | WORKERS_ONLY),
        ({"database": "postgresql"}, WORKERS_ONLY),
        ({"database": "postgresql", "workers": "procrastinate"}, set()),
        (
            {"database": "postgresql", "use_docker": "no"},
            {"Dockerfile", ".dockerignore", "docker-compose.yml", "docker"} | WORKERS_ONLY,
        ),
        (
            {"use_docker": "no"},
            {"Dockerfile", ".dockerignore", "docker-compose.yml"} | SQLITE_LACKS | WORKERS_ONLY,
        ),
        (
            {"include_example_jobs": "no"},
            {
                p
                for p in post_gen.MANIFEST
                if any(part in p for part in ("reports", "sync", "temp_files", "files.py"))
            }
            | SQLITE_LACKS
            | WORKERS_ONLY,
        ),
    ],
)
def test_manifest_removes_what_the_options_exclude(
    changes: dict[str, str], removed: set[str]
) -> None:
    assert set(post_gen.paths_to_remove(post_gen.MANIFEST, valid_answers(**changes))) == removed


def test_every_manifest_path_exists_in_the_template() -> None:
    project_template = TEMPLATE / "{{cookiecutter.project_slug}}"
    for path in post_gen.MANIFEST:
        assert (project_template / path).exists(), path


def test_remove_refuses_a_path_the_template_lacks(tmp_path: Path) -> None:
    (tmp_path / "present.txt").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "inside.txt").write_text("x")
    post_gen.remove(tmp_path, ["present.txt", "folder"])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match=r"manifest names missing\.txt"):
        post_gen.remove(tmp_path, ["missing.txt"])


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_next_steps_say_where_to_go_and_where_the_token_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: str
) -> None:
    project = tmp_path / "out" / "acme-billing"
    project.mkdir(parents=True)
    monkeypatch.setenv("PWD", str(tmp_path))
    answers = valid_answers(
        project_slug="acme-billing", database=database, __env_prefix="ACME_BILLING_"
    )
    said = post_gen.next_steps(project, answers).splitlines()
    assert "  cd out/acme-billing" in said
    assert any(line.startswith("  make run ") for line in said)
    assert "The API token is ACME_BILLING_API_TOKEN in .env" in "\n".join(said)
    assert "ACME_BILLING_API_PORT=8080" in "\n".join(said)
    assert any("createdb" in line for line in said) == (database == "postgresql")
