"""Slow tier: generated projects install, lint, typecheck, pass their own tests, and run.

Two projects: the defaults, and the most different set of answers. Each runs `make run` and is
checked through its own CLI, as a user would in a second terminal.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import (
    free_port,
    generate,
    interrupt_session,
    record_figure,
    record_time,
    timed,
)
from tests.doc_blocks import blocks

pytestmark = pytest.mark.slow

POSTGRES_URL = os.environ.get(
    "TEMPLATE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BUILT_IN_JOBS = {"system_maintenance", "cleanup_old_records"}
DRILLS = ("kill", "terminate", "freeze", "changes", "burst", "outage")
EXAMPLE_JOBS = {"daily_report", "cleanup_temp_files", "sync_external_data"}

VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {},
    "most-different": {
        "project_name": "Acme Billing",
        "database": "postgresql",
        "include_example_jobs": "no",
        "use_docker": "no",
        "timezone": "America/New_York",
    },
}


@dataclass
class Generated:
    """A generated project and the environment its commands run in."""

    name: str
    answers: dict[str, str]
    path: Path
    env: dict[str, str]

    @property
    def slug(self) -> str:
        return self.path.name

    @property
    def prefix(self) -> str:
        return self.slug.upper().replace("-", "_") + "_"

    @property
    def postgres(self) -> bool:
        return self.answers.get("database") == "postgresql"

    @property
    def expected_jobs(self) -> set[str]:
        examples = self.answers.get("include_example_jobs", "yes") == "yes"
        return BUILT_IN_JOBS | (EXAMPLE_JOBS if examples else set())

    def run(
        self, *command: str, timeout: float = 600, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            cwd=self.path,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def clean_environment() -> dict[str, str]:
    """This test run's environment without its own virtualenv, so uv uses the project's."""
    return {
        k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}
    }


def postgres_schema(base_url: str) -> tuple[str, Callable[[], None]]:
    """A fresh schema on the test server: its URL, and a function that drops it."""
    schema = f"template_{uuid.uuid4().hex[:10]}"
    database = base_url.rsplit("/", 1)[1]
    psql = [
        "psql",
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
        "-d",
        database,
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
    ]
    subprocess.run([*psql, f'CREATE SCHEMA "{schema}"'], check=True, capture_output=True)

    def drop() -> None:
        subprocess.run([*psql, f'DROP SCHEMA "{schema}" CASCADE'], check=True, capture_output=True)

    return f"{base_url}?options=-csearch_path%3D{schema}", drop


@pytest.fixture(scope="module", params=list(VARIANTS))
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Generated:
    answers = VARIANTS[request.param]
    with timed(f"{request.param}: generate"):
        path = generate(tmp_path_factory.mktemp(request.param), **answers)
    generated = Generated(request.param, answers, path, clean_environment())
    with timed(f"{request.param}: uv sync --locked"):
        # Compiled as `make install` compiles, so every process the tests start loads bytecode.
        result = generated.run("uv", "sync", "--locked", env={"UV_COMPILE_BYTECODE": "1"})
    assert result.returncode == 0, result.stderr
    return generated


def documented_check(project: Generated) -> list[str]:
    """The commands of the README's `check` block, which this test runs as written."""
    [block] = [block for block in blocks(project.path / "README.md") if block.kind == "check"]
    return block.commands()


def test_make_check_passes(project: Generated) -> None:
    """The README's `make check`: ruff, mypy (strict), the docs build, the project's own suite."""
    env = {"TEST_DATABASE_URL": POSTGRES_URL} if project.postgres else {}
    for command in documented_check(project):
        with timed(f"{project.name}: {command}"):
            result = project.run("bash", "-c", command, env=env, timeout=900)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{command}:\n{output[-6000:]}"
    tests = re.search(r"(\d+) passed([^\n]*) in ([\d.]+)s", result.stdout)
    assert tests is not None, result.stdout[-3000:]
    # Nothing failed, and nothing was skipped to get there.
    assert "failed" not in tests[2]
    assert "skipped" not in tests[2]
    record_figure(f"{project.name}: the project's own tests passed", tests[1])
    record_time(f"{project.name}: the project's own tests (within make check)", float(tests[3]))


def test_a_worker_project_lints_typechecks_and_passes_its_worker_tests(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """workers=procrastinate: ruff, mypy, and the worker tests against the real server."""
    answers = {"database": "postgresql", "workers": "procrastinate", "use_docker": "no"}
    path = generate(tmp_path_factory.mktemp("workers"), **answers)
    project = Generated("workers", answers, path, clean_environment())
    commands = [
        ("uv", "sync", "--locked"),
        ("uv", "run", "--frozen", "ruff", "check", "."),
        ("uv", "run", "--frozen", "ruff", "format", "--check", "."),
        ("uv", "run", "--frozen", "mypy", "app", "tests"),
        ("uv", "run", "--frozen", "pytest", "-n", "2", "tests/worker", "tests/core"),
    ]
    for command in commands:
        with timed(f"workers: {' '.join(command[:4])}"):
            result = project.run(
                *command, env={"TEST_DATABASE_URL": POSTGRES_URL, "UV_COMPILE_BYTECODE": "1"}
            )
        assert result.returncode == 0, f"{command}:\n{(result.stdout + result.stderr)[-6000:]}"
    tests = re.search(r"(\d+) passed([^\n]*) in", result.stdout)
    assert tests is not None, result.stdout[-3000:]
    assert "failed" not in tests[2]
    assert "skipped" not in tests[2]
    record_figure("workers: the worker and core tests passed", tests[1])

    # The benchmark runs, small: every path measured, its figures printed (met or not).
    args = f"--fires 200 --runs 500 --database-url {POSTGRES_URL}"
    with timed(f"workers: make bench-workers ({args.split(' --database-url')[0]})"):
        bench = project.run("make", "bench-workers", env={"WORKERS_BENCH_ARGS": args}, timeout=900)
    print(bench.stdout)
    assert bench.returncode == 0, bench.stdout[-6000:] + bench.stderr[-3000:]
    for measured in ("raw Procrastinate", "scheduler to workers (ours)", "scheduler runs it"):
        assert measured in bench.stdout, bench.stdout
    table_row = re.compile(r"\s+[124]\s+[\d.]+\s")
    drains = [line.split() for line in bench.stdout.splitlines() if table_row.match(line)]
    assert [row[0] for row in drains] == ["1", "2", "4"], bench.stdout
    target = bench.stdout.split("target: ", 1)[1].splitlines()[0]
    record_figure("workers: make bench-workers (200 fires, 500 runs)", target.rsplit(": ", 1)[1])


def empty_postgres_database(base_url: str) -> tuple[str, Callable[[], None]]:
    """A new, empty database on the test server: its URL, and a function that drops it."""
    name = f"template_{uuid.uuid4().hex[:10]}"
    server = base_url.rsplit("/", 1)[0]
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1"]
    subprocess.run([*psql, "-c", f'CREATE DATABASE "{name}"'], check=True, capture_output=True)

    def drop() -> None:
        subprocess.run(
            [*psql, "-c", f'DROP DATABASE "{name}" WITH (FORCE)'], check=True, capture_output=True
        )

    return f"{server}/{name}", drop


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_migrations_build_the_schema_the_models_describe(
    project: Generated, database: str, tmp_path: Path
) -> None:
    """`alembic upgrade head` on an empty database, then `alembic check`: nothing pending."""
    if database == "postgresql":
        url, drop = empty_postgres_database(POSTGRES_URL)
    else:
        url, drop = f"sqlite:///{tmp_path / 'empty.db'}", lambda: None
    env = {f"{project.prefix}DATABASE_URL": url}
    try:
        upgrade = project.run("uv", "run", "--frozen", "alembic", "upgrade", "head", env=env)
        assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
        assert "Running upgrade  -> 0001" in upgrade.stderr
        check = project.run("uv", "run", "--frozen", "alembic", "check", env=env)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "No new upgrade operations detected." in check.stdout + check.stderr
        current = project.run("uv", "run", "--frozen", project.slug, "db", "current", env=env)
        assert current.returncode == 0, current.stdout + current.stderr
        assert "Up to date." in current.stdout
    finally:
        drop()


def test_failover_drills(project: Generated) -> None:
    """`make bench-failover`: every drill on PostgreSQL; on SQLite, 2 replicas killed 10 times."""
    drills: tuple[str, ...] = DRILLS
    args = f"--drill all --rounds 20 --database-url {POSTGRES_URL}"
    if not project.postgres:
        drills, args = ("kill",), "--drill kill --replicas 2 --rounds 10"
    with timed(f"{project.name}: make bench-failover ({args.split(' --database-url')[0]})"):
        result = project.run("make", "bench-failover", env={"FAILOVER_ARGS": args}, timeout=900)
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    lines = {
        line.split(":", 1)[0].removeprefix("drill "): line
        for line in result.stdout.splitlines()
        if line.startswith("drill ")
    }
    assert set(lines) == set(drills), result.stdout
    for line in lines.values():
        assert "duplicates 0, unaccounted 0" in line, line
        assert "FAILED" not in line, line
    assert "target failover p99 <= 3 s: met" in lines["kill"]
    failover = lines["kill"].split("failover ", 1)[1].split(";")[0]
    database = "PostgreSQL" if project.postgres else "SQLite"
    record_figure(f"{project.name}: kill -9 of the leader on {database}", failover)


def test_benchmark_runs(project: Generated) -> None:
    server = f" --database-url {POSTGRES_URL}" if project.postgres else ""
    with timed(f"{project.name}: make bench (300 jobs, 1000 stored; 50 commands; CLI x3)"):
        result = project.run(
            "make",
            "bench",
            env={
                "BENCH_ARGS": f"--jobs 300 --stored 1000{server}",
                "COMMAND_BENCH_ARGS": f"--rounds 50{server}",
                "CLI_BENCH_ARGS": "--runs 3",
            },
            timeout=300,
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(result.stdout)
    rows = {
        tuple(line.split()[:2]): line.split()[2:]
        for line in result.stdout.splitlines()
        if line.startswith(("apscheduler-", "project "))
    }
    databases = ["SQLite", *(["PostgreSQL"] if project.postgres else [])]
    scenarios = ("apscheduler-sqlalchemy", "project")
    assert set(rows) == {
        ("apscheduler-memory", "-"),
        *((scenario, name) for scenario in scenarios for name in databases),
    }
    for name in databases:
        # Every job ran once, and the project's scheduler has one history row for each.
        ran, history, twice, _p50, p99, _max = rows[("project", name)]
        assert (ran, history, twice) == ("300", "300", "0")
        record_figure(f"{project.name}: burst of 300 on {name}, p99 lateness", f"{p99} ms")
    for name in databases:
        idle = result.stdout.split(f"Idle ({name}): 1000 jobs stored", 1)[1]
        # The timer holds the probe alone while the stored jobs are due beyond its horizon,
        # and every one of them once they are due within it.
        assert "due beyond the horizon (1 held in the timer)" in idle
        assert "due within the horizon (1001 held in the timer)" in idle
        assert "memory (RSS) at rest: no jobs stored" in idle
    database = "postgresql" if project.postgres else "sqlite"
    assert f"Commands: 50 pause/resume changes through the API ({database})" in result.stdout
    assert "next GET showed the change: 50 of 50" in result.stdout
    startup = {
        line.split("  ")[0]: line.split()[-3:]
        for line in result.stdout.split("CLI start-up:", 1)[1].splitlines()[2:]
        # make's own "Leaving directory" line follows the table.
        if line.strip() and not line.startswith("make")
    }
    assert {f"{project.slug} jobs list", f"{project.slug} health check"} <= set(startup)
    for label, (median, slowest, _over_the_floor) in startup.items():
        record_figure(
            f"{project.name}: {label.strip()}, median of 3 (slowest {slowest} s)", f"{median} s"
        )


@contextmanager
def make_run(
    project: Generated, env: dict[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`make run` in a session of its own; Ctrl-C to the whole group when done."""
    with log_path.open("w") as log:
        make = subprocess.Popen(
            ["make", "run"],
            cwd=project.path,
            env={**project.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield make
        finally:
            if make.poll() is None:
                interrupt_session(make, timeout=20)


@pytest.fixture
def run_env(project: Generated) -> Iterator[dict[str, str]]:
    env = {
        f"{project.prefix}API_PORT": str(free_port()),
        f"{project.prefix}HEARTBEAT_INTERVAL_SECONDS": "1",
        f"{project.prefix}HEARTBEAT_STALE_AFTER_SECONDS": "4",
    }
    if project.postgres:
        url, drop = postgres_schema(POSTGRES_URL)
        yield {**env, f"{project.prefix}DATABASE_URL": url}
        drop()
    else:
        yield env


def health_check(
    project: Generated, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return project.run(
        "uv",
        "run",
        "--frozen",
        project.slug,
        "health",
        "check",
        *args,
        timeout=60,
        env={**env, "COLUMNS": "200"},
    )


def readiness(env: dict[str, str], prefix: str) -> int | None:
    """The status `/health/ready` answers on the project's API port, or None if none answers."""
    url = f"http://127.0.0.1:{env[f'{prefix}API_PORT']}/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.25)
    return time.monotonic() - start


def test_make_run_is_healthy_and_stops_whole_when_the_scheduler_dies(
    project: Generated, run_env: dict[str, str], tmp_path: Path
) -> None:
    # A session of its own, so the test can send Ctrl-C to the whole group as a terminal does.
    with make_run(project, run_env, tmp_path / "make-run.log") as make:
        # Waiting reads readiness over HTTP; the CLI is started where it is what is checked.
        seconds = wait_for(lambda: readiness(run_env, project.prefix) == 200, 90, "healthy")
        record_time(f"{project.name}: make run, start to healthy", seconds)

        detailed = health_check(project, run_env, "--detailed")
        assert detailed.returncode == 0, detailed.stdout + detailed.stderr
        for job_id in project.expected_jobs:
            assert job_id in detailed.stdout
        report = json.loads(health_check(project, run_env, "--detailed", "--json").stdout)
        assert {job["id"] for job in report["jobs"]} == project.expected_jobs
        assert all(job["next_run_time"] for job in report["jobs"])

        # Half a service would keep serving: make run stops the API too and fails.
        os.kill(report["scheduler"]["pid"], signal.SIGKILL)
        assert make.wait(timeout=30) != 0
        assert readiness(run_env, project.prefix) is None
        # The database keeps the dead scheduler's last heartbeat, which goes stale.
        wait_for(
            lambda: health_check(project, run_env).returncode == 1, 30, "the heartbeat to go stale"
        )
        unhealthy = health_check(project, run_env, "--detailed")
        assert "stale after 4 s" in unhealthy.stdout
    output = (tmp_path / "make-run.log").read_text()
    assert "the scheduler was killed by signal 9, so the rest were stopped too" in output
    assert "Traceback" not in output
    # Nothing the project started is left.
    leftovers = subprocess.run(
        ["pgrep", "-af", str(project.path / ".venv")], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout == ""


def test_fuzzing_the_management_api_finds_no_failure(
    project: Generated, run_env: dict[str, str], tmp_path: Path
) -> None:
    """Schemathesis with every check, the token from the generated .env, against `make run`."""
    token = (project.path / ".env").read_text().split("API_TOKEN=", 1)[1].split()[0]
    url = f"http://127.0.0.1:{run_env[f'{project.prefix}API_PORT']}"
    with make_run(project, run_env, tmp_path / "make-run.log"):
        wait_for(lambda: readiness(run_env, project.prefix) == 200, 90, "healthy")
        with timed(f"{project.name}: schemathesis on the management API"):
            fuzz = subprocess.run(
                [
                    str(Path(sys.executable).with_name("schemathesis")),
                    "run",
                    f"{url}/openapi.json",
                    # Every check, status-code and schema conformance included; the
                    # project's schemathesis.toml says which answers valid data may get.
                    "--checks",
                    "all",
                    "--header",
                    f"Authorization: Bearer {token}",
                    "--max-examples",
                    "25",
                    "--seed",
                    "20261124",
                    "--request-timeout",
                    "30",
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
                cwd=project.path,
                env={**os.environ, "NO_COLOR": "1"},
            )
        assert fuzz.returncode == 0, fuzz.stdout[-6000:] + fuzz.stderr[-2000:]
        print(fuzz.stdout[-1500:])
        summary = re.search(r"(\d+) generated, (\d+) passed", fuzz.stdout)
        assert summary is not None, fuzz.stdout[-3000:]
        assert summary.group(1) == summary.group(2)
        assert int(summary.group(1)) > 300
    log = (tmp_path / "make-run.log").read_text()
    assert "Traceback" not in log
    assert token not in log
