"""Slow tier: the generated Dockerfile and compose file, built and run on this machine's engine.

For each database option, through the project's Makefile targets where it has one: build the
images; start the scheduler alone (it brings what it needs), then the whole dev profile, and
wait until every service is healthy; read `health check --detailed` inside the API container
and the logs; run the test profile; stop the scheduler with SIGTERM and time its clean
shutdown; start the prod profile from the runtime image; then remove everything (`down -v`).

Machines without a registry cannot pull the official postgres image, so the compose file's
POSTGRES_IMAGE points at a stand-in built from Debian's PostgreSQL (tests/docker/postgres).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import TEMPLATE, free_port, generate, record_figure, record_time, timed
from tests.doc_blocks import blocks

pytestmark = pytest.mark.slow

POSTGRES_STAND_IN = "scheduler-template/postgres:test"
STOP_GRACE_SECONDS = 10
VARIANTS: dict[str, dict[str, str]] = {
    # The most services: PostgreSQL and worker processes beside the API and the schedulers.
    "postgresql": {"database": "postgresql", "workers": "procrastinate"},
    "sqlite": {"project_name": "Docker Lite"},
}


def docker(
    *args: str, timeout: float = 600, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def require_engine() -> None:
    if shutil.which("docker") is None:
        pytest.fail("the docker command is missing: these tests need a Docker engine")
    info = docker("info", "--format", "{{.ServerVersion}}", timeout=60)
    if info.returncode != 0:
        pytest.fail(f"no Docker engine answers: {info.stderr.strip()}")


@dataclass
class Stack:
    """A generated project and the compose command line that drives it."""

    name: str
    path: Path
    env: dict[str, str]
    postgres: bool
    workers: bool
    ran: list[str] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return self.path.name

    def make(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """A Makefile target, as a user runs it; compose reads this stack's variables."""
        self.ran.append(shlex.join(["make", *args]))
        return subprocess.run(
            ["make", *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        self.ran.append(shlex.join(["docker", "compose", *args]))
        return docker("compose", *args, cwd=self.path, env=self.env, timeout=timeout)

    def container(self, profile: str, service: str) -> str:
        result = self.compose("--profile", profile, "ps", "-q", service)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def state(self, container: str) -> dict[str, object]:
        result = docker("inspect", "--format", "{{json .State}}", container)
        assert result.returncode == 0, result.stderr
        state: dict[str, object] = json.loads(result.stdout)
        return state

    def down(self) -> None:
        self.compose("--profile", "dev", "--profile", "prod", "--profile", "test", "down", "-v")


@pytest.fixture(scope="module", params=list(VARIANTS))
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    require_engine()
    answers = VARIANTS[request.param]
    path = generate(tmp_path_factory.mktemp(f"docker-{request.param}"), **answers)
    env = {
        **os.environ,
        # A project name of its own, so a run never touches another run's containers.
        "COMPOSE_PROJECT_NAME": f"tpl{uuid.uuid4().hex[:8]}",
        "API_PUBLISHED_PORT": str(free_port()),
    }
    postgres = answers.get("database") == "postgresql"
    if postgres:
        with timed("docker: build the postgres stand-in image"):
            built = docker(
                "build",
                "-q",
                "-t",
                POSTGRES_STAND_IN,
                str(TEMPLATE / "tests" / "docker" / "postgres"),
            )
        assert built.returncode == 0, built.stderr
        env["POSTGRES_IMAGE"] = POSTGRES_STAND_IN
    stack = Stack(request.param, path, env, postgres, answers.get("workers") == "procrastinate")
    try:
        yield stack
    finally:
        stack.down()


def test_images_build_small_and_run_as_a_user(stack: Stack) -> None:
    with timed(f"docker {stack.name}: build the dev and runtime images"):
        result = stack.make("docker-build")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    inspected = docker(
        "image", "inspect", "--format", "{{.Size}} {{.Config.User}}", f"{stack.slug}:latest"
    )
    size, user = inspected.stdout.split()
    base = docker("image", "inspect", "--format", "{{.Size}}", "python:3.11-slim").stdout
    added_mb = (int(size) - int(base)) / 1e6
    record_figure(
        f"docker {stack.name}: runtime image (python:3.11-slim is {int(base) / 1e6:.0f} MB)",
        f"{int(size) / 1e6:.0f} MB",
    )
    assert user == "app"
    # The dependencies and the app only: no uv, no build cache, no dev tools.
    assert added_mb < 150, f"the runtime image adds {added_mb:.0f} MB to its base"
    tools = docker(
        "run", "--rm", f"{stack.slug}:latest", "sh", "-c", "command -v uv pytest mypy; echo done"
    )
    assert tools.stdout.strip() == "done", tools.stdout


def test_scheduler_alone_starts_with_what_it_needs(stack: Stack) -> None:
    with timed(f"docker {stack.name}: up --wait scheduler"):
        up = stack.compose("--profile", "dev", "up", "-d", "--wait", "scheduler", timeout=300)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    health = stack.state(stack.container("dev", "scheduler"))["Health"]
    assert isinstance(health, dict)
    assert health["Status"] == "healthy", health
    assert stack.container("dev", "api") == ""
    if stack.postgres:
        assert stack.container("dev", "postgres") != ""


def test_dev_profile_starts_healthy_and_shows_the_jobs(stack: Stack) -> None:
    with timed(f"docker {stack.name}: dev profile up --wait"):
        up = stack.make("docker-up", timeout=300)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    services = ["api", "scheduler"]
    services += ["postgres"] if stack.postgres else []
    services += ["worker"] if stack.workers else []
    for service in services:
        health = stack.state(stack.container("dev", service))["Health"]
        assert isinstance(health, dict)
        assert health["Status"] == "healthy", (service, health)

    detailed = stack.compose(
        "--profile", "dev", "exec", "-T", "api", stack.slug, "health", "check", "--detailed"
    )
    assert detailed.returncode == 0, detailed.stdout + detailed.stderr
    assert "scheduler │ healthy" in detailed.stdout
    jobs = {
        "system_maintenance",
        "cleanup_old_records",
        "daily_report",
        "cleanup_temp_files",
        "sync_external_data",
    }
    for job_id in jobs:
        assert job_id in detailed.stdout
    # The API answers on the published port, on loopback only.
    port = stack.env["API_PUBLISHED_PORT"]
    ready = subprocess.run(
        ["curl", "-sf", f"http://127.0.0.1:{port}/health/ready"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert json.loads(ready.stdout)["status"] == "healthy"
    published = docker("port", stack.container("dev", "api"), "8000").stdout.split()
    assert published == [f"127.0.0.1:{port}"]


def test_logs_show_the_migration_and_the_start(stack: Stack) -> None:
    # `make docker-logs` follows until interrupted, as it does in a terminal.
    stack.ran.append("make docker-logs")
    follow = subprocess.Popen(
        ["make", "docker-logs"],
        cwd=stack.path,
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = follow.communicate(timeout=8)
    except subprocess.TimeoutExpired:
        os.killpg(follow.pid, signal.SIGINT)
        output, _ = follow.communicate(timeout=20)
    assert '"message": "database schema upgraded"' in output
    assert '"message": "scheduler started"' in output
    assert "Traceback" not in output


def test_test_profile_passes(stack: Stack) -> None:
    with timed(f"docker {stack.name}: the test profile (the project's suite in a container)"):
        result = stack.make("docker-test", timeout=900)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    assert " failed" not in result.stdout


def test_sigterm_stops_the_scheduler_cleanly_within_the_grace_period(stack: Stack) -> None:
    container = stack.container("dev", "scheduler")
    started = time.monotonic()
    stop = stack.compose("--profile", "dev", "stop", "-t", str(STOP_GRACE_SECONDS), "scheduler")
    seconds = time.monotonic() - started
    assert stop.returncode == 0, stop.stderr
    record_time(f"docker {stack.name}: scheduler stop (SIGTERM to exit)", seconds)
    state = stack.state(container)
    # 137 would mean the engine gave up waiting and killed it.
    assert state["ExitCode"] == 0, state
    assert seconds < STOP_GRACE_SECONDS
    logs = docker("logs", container).stdout + docker("logs", container).stderr
    assert '"message": "scheduler stopped"' in logs
    assert "Traceback" not in logs
    down = stack.make("docker-down")
    assert down.returncode == 0, down.stderr
    assert stack.container("dev", "api") == ""


# Run inside the API's container: every address of `scheduler`, and what each one's metrics
# say of its leadership.
SCRAPE_REPLICAS = """
import json, socket, httpx
from prometheus_client.parser import text_string_to_metric_families
addresses = sorted({info[4][0] for info in socket.getaddrinfo("scheduler", 9464)})
leaders = {}
for address in addresses:
    page = httpx.get(f"http://{address}:9464/metrics", timeout=5).text
    for family in text_string_to_metric_families(page):
        if family.name == "scheduler_leader":
            leaders[address] = family.samples[0].value
print(json.dumps(leaders))
"""


def test_prod_profile_runs_from_the_runtime_image(stack: Stack) -> None:
    """Three scheduler replicas: one leads, two wait on standby; with workers, two worker
    containers share the queues; every container healthy."""
    scale = "--scale=scheduler-prod=3" + (" --scale=worker-prod=2" if stack.workers else "")
    with timed(f"docker {stack.name}: prod profile up --wait, {scale}"):
        up = stack.make("docker-up", "PROFILE=prod", f"ARGS={scale}", timeout=300)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    listed = stack.compose("--profile", "prod", "ps", "-q", "scheduler-prod")
    schedulers = listed.stdout.split()
    assert len(schedulers) == 3, listed.stdout + listed.stderr
    workers = stack.compose("--profile", "prod", "ps", "-q", "worker-prod").stdout.split()
    assert len(workers) == (2 if stack.workers else 0), workers
    for container in [stack.container("prod", "api-prod"), *schedulers, *workers]:
        health = stack.state(container)["Health"]
        assert isinstance(health, dict)
        assert health["Status"] == "healthy", (container, health)
        inspected = docker(
            "inspect",
            "--format",
            "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.Memory}}",
            container,
        )
        policy, memory = inspected.stdout.split()
        assert policy == "unless-stopped"
        assert int(memory) > 0
    status = stack.compose(
        "--profile", "prod", "exec", "-T", "api-prod", stack.slug, "scheduler", "status", "--json"
    )
    assert status.returncode == 0, status.stdout + status.stderr
    report = json.loads(status.stdout)
    assert report["healthy"] is True, report["detail"]
    fresh = [i for i in report["instances"] if i["fresh"]]
    assert sorted(i["state"] for i in fresh) == ["running", "standby", "standby"], fresh
    assert [i["instance_id"] for i in fresh if i["leader"]] == [report["leader"]]
    assert len({i["hostname"] for i in fresh}) == 3
    if stack.workers:
        shown = stack.compose(
            "--profile", "prod", "exec", "-T", "api-prod", stack.slug, "worker", "status", "--json"
        )
        assert shown.returncode == 0, shown.stdout + shown.stderr
        pool = json.loads(shown.stdout)
        assert pool["healthy"] is True, pool["detail"]
        serving = [w for w in pool["workers"] if w["fresh"] and w["state"] == "running"]
        assert len({w["hostname"] for w in serving}) == 2, pool["workers"]
        # A run asked for now is carried out by one of them, and its record names which.
        ran = stack.compose(
            *("--profile", "prod", "exec", "-T", "api-prod", stack.slug, "jobs", "run"),
            *("system_maintenance", "--wait", "--timeout", "60", "--json"),
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        execution = json.loads(ran.stdout)["execution"]
        assert execution["status"] == "succeeded", execution
        assert execution["worker_id"] in {w["worker_id"] for w in serving}, execution

    # Prometheus on the compose network finds every replica under one name, as the shipped
    # scrape config asks (dns_sd_configs: scheduler, port 9464); exactly one says it leads.
    scrape = stack.compose(
        "--profile", "prod", "exec", "-T", "api-prod", "python", "-c", SCRAPE_REPLICAS
    )
    assert scrape.returncode == 0, scrape.stdout + scrape.stderr
    leaders = json.loads(scrape.stdout)
    assert sorted(leaders.values()) == [0.0, 0.0, 1.0], leaders
    for container in schedulers:
        # Reachable on the compose network only: nothing is published on the host.
        assert docker("port", container).stdout.strip() == ""

    down = stack.make("docker-down", "PROFILE=prod", "ARGS=-v")
    assert down.returncode == 0, down.stderr


def test_the_deployment_page_shows_only_what_these_tests_ran(stack: Stack) -> None:
    page = stack.path / "docs" / "deployment.md"
    documented = [c for b in blocks(page) if b.kind == "docker" for c in b.commands()]
    assert documented, "the deployment page shows no Docker commands"
    ran = [shlex.split(command) for command in stack.ran]
    assert [command for command in documented if shlex.split(command) not in ran] == []
