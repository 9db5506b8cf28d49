"""The CLI answers at once: each command loads only what it uses.

Each case runs in a fresh interpreter, since this test process has loaded everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import Engine

# What the parser never needs; a command that does need one imports it where it runs.
HEAVY = ("sqlalchemy", "httpx", "alembic", "pydantic_settings", "apscheduler", "fastapi")

# Runs the CLI with the given arguments, then prints the top-level modules it loaded.
PROBE = """
import json, sys
from app.cli.main import main
sys.argv = ["cli", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})), file=sys.stderr)
"""


def loaded_by(env: dict[str, str], *args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    modules: list[str] = json.loads(result.stderr.strip().splitlines()[-1])
    return set(modules)


def test_importing_the_cli_loads_no_heavy_module(env: dict[str, str]) -> None:
    assert loaded_by(env, "--version").isdisjoint(HEAVY)


@pytest.mark.parametrize("args", [["--help"], ["jobs", "list", "--help"], ["jobs", "add"]])
def test_help_and_usage_errors_load_no_heavy_module(env: dict[str, str], args: list[str]) -> None:
    assert loaded_by(env, *args).isdisjoint(HEAVY)


def test_health_check_does_not_load_the_migrations_tool_or_http(
    env: dict[str, str], engine: Engine
) -> None:
    loaded = loaded_by(env, "health", "check")
    assert "sqlalchemy" in loaded  # it did read the database
    assert loaded.isdisjoint({"alembic", "httpx", "fastapi"})


def test_listing_jobs_does_not_load_the_migrations_tool(
    env: dict[str, str], engine: Engine
) -> None:
    loaded = loaded_by(env, "jobs", "list")
    assert "sqlalchemy" in loaded
    assert loaded.isdisjoint({"alembic", "fastapi"})
