"""scripts/new_env_file.py: the `.env` that generation and `make .env` write."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

from app import ENV_PREFIX

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "new_env_file.py"


def new_env_file(directory: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    # Umask 0: whatever mode the file gets, it got from its creation, not from the umask.
    return subprocess.run(
        [sys.executable, str(SCRIPT), ENV_PREFIX, *arguments],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=lambda: os.umask(0),
    )


def test_the_file_is_created_owner_only_with_a_fresh_token(tmp_path: Path) -> None:
    result = new_env_file(tmp_path)
    assert result.returncode == 0, result.stderr
    env = tmp_path / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    [token] = re.findall(rf"^{ENV_PREFIX}API_TOKEN=(\S+)$", env.read_text(), re.MULTILINE)
    assert len(token) >= 32
    assert "POSTGRES_PASSWORD" not in env.read_text()


def test_compose_postgres_gets_two_passwords(tmp_path: Path) -> None:
    assert new_env_file(tmp_path, "--postgres").returncode == 0
    env = (tmp_path / ".env").read_text()
    superuser = re.findall(r"^POSTGRES_PASSWORD=(\S{24,})$", env, re.M)
    app_role = re.findall(r"^POSTGRES_APP_PASSWORD=(\S{24,})$", env, re.M)
    assert len(superuser) == len(app_role) == 1
    assert superuser != app_role


def test_an_existing_file_is_left_alone(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("MINE=1\n")
    result = new_env_file(tmp_path)
    assert result.returncode == 1
    assert ".env exists; left as it is" in result.stderr
    assert "Traceback" not in result.stderr
    assert env.read_text() == "MINE=1\n"
