"""Invalid settings are refused at start-up with one line per variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app import ENV_PREFIX
from app.core.env_example import render
from app.core.settings import SettingsError, get_settings


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TIMEZONE", "Mars/Base", "'Mars/Base' is not an IANA time zone"),
        ("DATABASE_URL", "mysql://db/x", "unsupported database 'mysql'"),
        ("DATABASE_URL", "not a url", "is not a database URL"),
        ("API_PORT", "70000", "less than or equal to 65535"),
{%- if cookiecutter.include_example_jobs == "yes" %}
        ("SYNC_URL", "ftp://example.com", "must start with http:// or https://"),
{%- endif %}
        ("HEARTBEAT_STALE_AFTER_SECONDS", "0.1", "must be larger than heartbeat_interval_seconds"),
        ("STANDBY_POLL_SECONDS", "20", "must be smaller than leader_lease_seconds"),
    ],
)
def test_invalid_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}{variable}", value)
    get_settings.cache_clear()
    with pytest.raises(SettingsError) as caught:
        get_settings()
    assert message in str(caught.value)
    if variable not in {"HEARTBEAT_STALE_AFTER_SECONDS", "STANDBY_POLL_SECONDS"}:
        assert f"{ENV_PREFIX}{variable}:" in str(caught.value)


def test_process_with_invalid_settings_exits_2_without_traceback() -> None:
    env = {**os.environ, f"{ENV_PREFIX}TIMEZONE": "Nowhere/City"}
    result = subprocess.run(
        [sys.executable, "-m", "app.entrypoints.scheduler"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"{ENV_PREFIX}TIMEZONE: 'Nowhere/City' is not an IANA time zone" in result.stderr
    assert "Traceback" not in result.stderr


def test_env_example_lists_every_setting_with_its_default() -> None:
    from pathlib import Path

    project_root = Path(__file__).resolve().parents[2]
    assert (project_root / ".env.example").read_text(encoding="utf-8") == render(), (
        ".env.example is out of date: run `make env-example`"
    )
