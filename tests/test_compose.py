"""Fast tier: `docker compose config` accepts every profile, and each profile has what it must.

These need the `docker compose` command (not a running engine); without it they fail and say
so, because a compose file nobody validated is not tested.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import generate

VARIANTS: dict[str, dict[str, str]] = {
    "sqlite": {},
    "postgresql": {"database": "postgresql"},
    "postgresql-no-examples": {"database": "postgresql", "include_example_jobs": "no"},
}
PROFILES = {
    "dev": {"api", "scheduler"},
    "prod": {"api-prod", "scheduler-prod"},
    "test": {"tests"},
}


@functools.cache
def compose_config(project: Path, profile: str) -> dict[str, Any]:
    if shutil.which("docker") is None:
        pytest.fail("the docker command is missing: install Docker to check the compose file")
    result = subprocess.run(
        ["docker", "compose", "--profile", profile, "config"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@pytest.fixture(scope="module", params=list(VARIANTS))
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp(request.param), **VARIANTS[request.param])


def in_profile(config: dict[str, Any], profile: str) -> dict[str, dict[str, Any]]:
    # Compose v1 prints every service whatever the profile; v2 only the profile's.
    return {
        name: service
        for name, service in config["services"].items()
        if profile in service.get("profiles", [])
    }


def published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host address, host port) of each published port, in v1's short or v2's long form."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, str):
            host_ip, host_port, _ = port.split(":", 2)
            ports.append((host_ip, host_port))
        else:
            ports.append((port.get("host_ip", ""), str(port.get("published", ""))))
    return ports


def command_line(service: dict[str, Any], key: str = "command") -> str:
    value = service.get(key, "")
    return " ".join(value) if isinstance(value, list) else str(value)


def bind_mounts(service: dict[str, Any]) -> list[str]:
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source = volume.split(":", 1)[0]
            if source.startswith(("/", ".")):
                mounts.append(source)
        elif volume.get("type") == "bind":
            mounts.append(volume["source"])
    return mounts


@pytest.mark.parametrize("profile", list(PROFILES))
def test_each_profile_has_its_services(project: Path, profile: str) -> None:
    postgres = "postgres" in (project / "docker-compose.yml").read_text()
    services = in_profile(compose_config(project, profile), profile)
    assert set(services) == PROFILES[profile] | ({"postgres"} if postgres else set())


@pytest.mark.parametrize("profile", ["dev", "prod"])
def test_services_are_healthchecked_and_wait_for_their_database(
    project: Path, profile: str
) -> None:
    slug = project.name
    services = in_profile(compose_config(project, profile), profile)
    api, scheduler = (services[name] for name in sorted(PROFILES[profile]))
    assert f"{slug} health check --url http://127.0.0.1:8000" in " ".join(
        api["healthcheck"]["test"]
    )
    # The scheduler's own heartbeat, never the API's endpoint.
    assert " ".join(scheduler["healthcheck"]["test"]).endswith(f"{slug} health scheduler")
    for service in (api, scheduler):
        # An init process, and the command in exec form: the process itself gets SIGTERM.
        assert service["init"] is True
        assert isinstance(service["command"], list)
    if "postgres" in services:
        assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
        for service in (api, scheduler):
            assert service["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_published_ports_bind_to_loopback(project: Path) -> None:
    for profile in PROFILES:
        for name, service in in_profile(compose_config(project, profile), profile).items():
            for host_ip, _ in published(service):
                assert host_ip == "127.0.0.1", f"{profile}/{name} publishes on {host_ip!r}"


def test_dev_mounts_the_code_and_reloads(project: Path) -> None:
    services = in_profile(compose_config(project, "dev"), "dev")
    for name in ("api", "scheduler"):
        service = services[name]
        assert service["build"]["target"] == "dev"
        assert any(mount.endswith("/app") for mount in bind_mounts(service)), name
        assert command_line(service).startswith("watchfiles")


def test_prod_runs_the_image_alone_with_restarts_and_limits(project: Path) -> None:
    services = in_profile(compose_config(project, "prod"), "prod")
    for name in ("api-prod", "scheduler-prod"):
        service = services[name]
        assert service["build"]["target"] == "runtime"
        assert bind_mounts(service) == [], name
        assert service["restart"] == "unless-stopped"
        assert service.get("mem_limit") or service.get("deploy", {}).get("resources")
        assert service.get("cpus") or service.get("deploy", {}).get("resources")
        assert command_line(service).startswith("python -m app.entrypoints.")


def test_test_profile_runs_the_suite(project: Path) -> None:
    services = in_profile(compose_config(project, "test"), "test")
    assert command_line(services["tests"]).startswith("pytest")
    if "postgres" in services:
        assert "@postgres:5432/" in services["tests"]["environment"]["TEST_DATABASE_URL"]


@pytest.mark.parametrize("profile", ["dev", "prod"])
def test_app_containers_run_without_privileges(project: Path, profile: str) -> None:
    services = in_profile(compose_config(project, profile), profile)
    for name in PROFILES[profile]:
        service = services[name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert any(str(mount).startswith("/tmp") for mount in service["tmpfs"]), name


def test_postgres_has_no_default_password_and_the_app_its_own_role(project: Path) -> None:
    compose = (project / "docker-compose.yml").read_text()
    if "postgres" not in compose:
        # A SQLite project: no database service, so no password and no init script at all.
        assert "POSTGRES" not in compose
        assert "POSTGRES" not in (project / ".env").read_text()
        assert not (project / "docker").exists()
        return
    assert ":-postgres}" not in compose
    config = compose_config(project, "prod")
    services = in_profile(config, "prod")
    env = dict(
        line.split("=", 1) for line in (project / ".env").read_text().splitlines() if "=" in line
    )
    url = next(
        value
        for key, value in services["api-prod"]["environment"].items()
        if key.endswith("DATABASE_URL")
    )
    assert url == f"postgresql+psycopg://app:{env['POSTGRES_APP_PASSWORD']}@postgres:5432/app"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == env["POSTGRES_PASSWORD"]
    # The superuser's password stays with the postgres service.
    for name in ("api-prod", "scheduler-prod"):
        environment = services[name]["environment"]
        assert environment.get("POSTGRES_PASSWORD") in ("", None), name
        assert env["POSTGRES_PASSWORD"] not in str(environment), name
    script = project / "docker" / "postgres-init" / "10-app-role.sh"
    assert "NOSUPERUSER" in script.read_text()
    # Without the passwords compose refuses, and says what to do.
    (project / ".env").rename(project / ".env.kept")
    try:
        result = subprocess.run(
            ["docker", "compose", "--profile", "prod", "config"],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        (project / ".env.kept").rename(project / ".env")
    assert result.returncode != 0
    assert "make .env writes one" in result.stderr
