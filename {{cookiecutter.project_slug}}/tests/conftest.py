"""Fixtures: every test gets its own database and data directory.

The database comes from `test_database_url` in pyproject.toml, or the TEST_DATABASE_URL
environment variable, which wins. Empty means a fresh SQLite file per test; a PostgreSQL URL
means a schema of its own per test on that server, dropped afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from app import ENV_PREFIX
from app.components.scheduler.execution import current_runtime
from app.components.scheduler.main import create_scheduler
from app.core.db import create_db_engine, get_engine
from app.core.migrations import upgrade
from app.core.settings import Settings, get_settings

if TYPE_CHECKING:
    # Imported where used: they import this module's `Launcher`.
    from tests.replicas import Cluster, Replica


def _postgres_schema_url(base_url: str) -> Iterator[str]:
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


TEST_TOKEN = "test-token-" + "x" * 24


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "test_database_url",
        "PostgreSQL server for the tests (a schema per test); empty: a SQLite file per test",
        default="",
    )


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database no other test uses."""
    base_url = os.environ.get("TEST_DATABASE_URL") or request.config.getini("test_database_url")
    if base_url:
        yield from _postgres_schema_url(base_url)
    else:
        yield f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def test_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """Environment variables that point the service at this test's database and folders."""
    return {
        f"{ENV_PREFIX}DATABASE_URL": database_url,
        f"{ENV_PREFIX}DATA_DIR": str(tmp_path / "data"),
        f"{ENV_PREFIX}HEARTBEAT_INTERVAL_SECONDS": "0.5",
        f"{ENV_PREFIX}HEARTBEAT_STALE_AFTER_SECONDS": "3",
        f"{ENV_PREFIX}LOG_FORMAT": "json",
        f"{ENV_PREFIX}API_TOKEN": TEST_TOKEN,
        # Several schedulers run at once across the tests: each gets a free port.
        f"{ENV_PREFIX}SCHEDULER_METRICS_PORT": "0",
{%- if cookiecutter.workers == "procrastinate" %}
        # The scheduler runs the jobs itself, as without workers; tests/worker turns them on.
        f"{ENV_PREFIX}WORKERS_ENABLED": "false",
        # As for the schedulers: every worker a test starts gets a free port.
        f"{ENV_PREFIX}WORKER_METRICS_PORT": "0",
{%- endif %}
    }


@pytest.fixture(autouse=True)
def settings(
    tmp_path: Path, test_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The settings every code path sees during the test, from a clean environment."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    for name, value in test_env.items():
        monkeypatch.setenv(name, value)
    # A developer's .env in the project root must not leak into the tests.
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    get_engine.cache_clear()
    yield get_settings()
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_settings.cache_clear()
    get_engine.cache_clear()


@pytest.fixture
def engine(settings: Settings) -> Engine:
    """The process-wide engine, with the schema migrated to head."""
    engine = get_engine()
    upgrade(engine)
    return engine


@pytest.fixture
def registered(settings: Settings, engine: Engine) -> list[str]:
    """The code's job ids, stored in the `jobs` table as a scheduler leaves them at start."""
    scheduler = create_scheduler(settings=settings, engine=engine)
    # Built, never started: it leads no more, as a scheduler that stopped.
    current_runtime().lease.give_up()
    return sorted(job.id for job in scheduler.get_jobs())


@pytest.fixture
def fresh_engine(settings: Settings) -> Iterator[Engine]:
    """A separate engine on the same database, as another process would have."""
    engine = create_db_engine(settings.database_url)
    yield engine
    engine.dispose()


class Launcher(Protocol):
    """Starts `python -m module` with the test's environment; stopped after the test."""

    def __call__(self, module: str, **extra_env: str) -> subprocess.Popen[str]: ...


@pytest.fixture
def env(test_env: dict[str, str]) -> dict[str, str]:
    """The environment of processes a test starts: this test's settings, a free API port."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    return {**clean, **test_env, f"{ENV_PREFIX}API_PORT": str(free_port())}


@pytest.fixture
def start(env: dict[str, str], tmp_path: Path) -> Iterator[Launcher]:
    """Launch processes whose output goes to `<module>.log` in the test's folder."""
    started: list[subprocess.Popen[str]] = []

    def launch(module: str, **extra_env: str) -> subprocess.Popen[str]:
        log = (tmp_path / f"{module}.log").open("a")
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            env={**env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        return process

    yield launch
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def replica(start: Launcher, settings: Settings) -> Replica:
    """Starts a scheduler replica with a once-a-second tick (`tests/replicas.py`)."""
    from tests.replicas import replica_launcher

    return replica_launcher(start, settings)


@pytest.fixture
def cluster(fresh_engine: Engine, settings: Settings) -> Cluster:
    """The replicas as their shared database reports them."""
    from tests.replicas import Cluster

    return Cluster(fresh_engine, settings)
