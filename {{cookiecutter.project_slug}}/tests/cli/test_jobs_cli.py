"""The jobs, executions and scheduler commands on the database, without a scheduler running.

Changes are stored for the next scheduler; bad input and unknown ids are refused with one line
and exit status 2 or 1. `tests/test_management_processes.py` runs them against a scheduler.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app import ENV_PREFIX
from app.cli.main import app
from app.core.settings import get_settings


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_list_shows_a_table_and_pages(registered: list[str]) -> None:
    code, output = invoke("jobs", "list")
    assert code == 0
    for job_id in registered:
        assert job_id in output
    assert f"Jobs ({len(registered)})" in output

    code, output = invoke("jobs", "list", "--limit", "1")
    assert code == 0
    assert f"Showing 1-1 of {len(registered)} (page 1 of {len(registered)})" in output
    assert "next: jobs list --page 2" in output
    code, output = invoke("jobs", "list", "--limit", "1", "--page", str(len(registered)))
    assert code == 0
    assert "Showing" in output
    assert "next:" not in output
    code, output = invoke("jobs", "list", "--limit", "1", "--page", "99")
    assert f"Page 99 is past the end: {len(registered)} in" in output

    code, output = invoke("jobs", "list", "--json", "--state", "scheduled")
    assert {job["id"] for job in json.loads(output)["items"]} == set(registered)


def test_show_prints_the_definition(registered: list[str]) -> None:
    code, output = invoke("jobs", "show", "cleanup_old_records")
    assert code == 0
    assert "Function" in output
    assert "cleanup_old_records" in output
    assert "Success rate" in output


def test_a_change_without_a_scheduler_is_stored(registered: list[str]) -> None:
    code, output = invoke("jobs", "pause", "cleanup_old_records", "--yes")
    assert code == 0, output
    assert output.startswith("stored: no scheduler is running")
    code, output = invoke("jobs", "run", "cleanup_old_records")
    assert code == 0
    assert "execution id: " in output
    code, output = invoke("scheduler", "status")
    assert code == 0
    assert "1 command(s) waiting for a scheduler" in output
    assert "Job revision 2: changes since revision 0 wait for a scheduler" in output
    assert "Lease: no scheduler leads" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["jobs", "reschedule", "cleanup_old_records", "--cron", "* *", "--yes"], "expression:"),
        (["jobs", "reschedule", "cleanup_old_records", "--every", "soon", "--yes"], "--every:"),
        (
            ["jobs", "reschedule", "cleanup_old_records", "--every", "5m", "--cron", "* * * * *"],
            "exactly one of",
        ),
        (
            ["jobs", "reschedule", "cleanup_old_records", "--every", "5m", "--timezone", "X/Y"],
            "timezone:",
        ),
        (["jobs", "run", "cleanup_old_records", "--input", "{not json"], "--input: not valid JSON"),
        (["jobs", "run", "cleanup_old_records", "--input", "[1]"], "give a JSON object"),
        (["jobs", "run", "cleanup_old_records", "--input", '{"x": 1}'], "input.x: "),
        (["jobs", "pause", "cleanup_old_records"], "Pass --yes to confirm"),
        (["jobs", "add", "Bad", "--function", "tick", "--every", "1m"], "id:"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    registered: list[str], args: list[str], message: str
) -> None:
    code, output = invoke(*args)
    assert code == 2, output
    assert message in output
    assert "Traceback" not in output


def test_unknown_ids_exit_1(registered: list[str]) -> None:
    for args in (["jobs", "show", "nope"], ["executions", "show", "nope"]):
        code, output = invoke(*args)
        assert code == 1
        assert output.strip().startswith("error: no ")


def test_a_missing_database_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}DATABASE_URL", f"sqlite:///{tmp_path}/missing/app.db")
    get_settings.cache_clear()
    code, output = invoke("jobs", "list")
    assert code == 1
    assert output.strip() == "error: the database is unavailable: unable to open database file"
