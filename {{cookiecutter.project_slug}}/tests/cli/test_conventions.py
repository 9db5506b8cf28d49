"""What every command shares: --yes on every change, plain usage lines, JSON errors under
--json with the same exit statuses, and one rule for times."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from app.cli.main import app
from app.cli.output import is_loopback
from app.core.db import session_scope
from app.core.enums import ExecutionStatus
from app.core.models import Job
from tests.api.test_management import execution_row
from tests.conftest import free_port
from tests.helpers import store_runtime_row

# Every command that changes something, with the arguments it needs.
CHANGING_COMMANDS = [
    ["jobs", "run", "JOB"],
    ["jobs", "pause", "JOB"],
    ["jobs", "resume", "JOB"],
    ["jobs", "reschedule", "JOB"],
    ["jobs", "add", "JOB"],
    ["jobs", "delete", "JOB"],
    ["executions", "retry", "ID"],
    ["executions", "cancel", "ID"],
    ["db", "upgrade"],
    ["db", "stamp", "head"],
]
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The installed entry point, as a script calls it (usage errors go through `main`)."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", CHANGING_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_every_change_accepts_yes(command: list[str]) -> None:
    code, output = invoke(*command[:2], "--help")
    assert code == 0
    assert "-y, --yes" in output


def test_usage_lines_name_arguments_plainly() -> None:
    code, output = invoke("jobs", "show")
    assert code == 2
    assert "Usage: root jobs show [OPTIONS] JOB_ID" in output
    assert "Missing argument 'JOB_ID'" in output
    assert "{" not in output
    code, output = invoke("executions", "retry", "--help")
    assert "[OPTIONS] EXECUTION_ID" in output


def test_errors_are_json_under_json_with_the_same_exit_statuses(
    env: dict[str, str], registered: list[str]
) -> None:
    cases = [
        # (arguments, exit status, a part of the message)
        (["jobs", "show", "nope"], 1, "no job 'nope'"),
        (["jobs", "show"], 2, "Missing argument 'JOB_ID'"),
        (["jobs", "list", "--limit", "0"], 2, "--limit"),
        (["jobs", "pause", registered[0]], 2, "Pass --yes to confirm"),
        (["executions", "retry", "nope", "--yes"], 1, "no execution 'nope'"),
        (["jobs", "reschedule", registered[0], "--every", "soon", "--yes"], 2, "--every"),
    ]
    for arguments, status, message in cases:
        plain = cli(env, *arguments)
        assert plain.returncode == status, (arguments, plain.stderr)
        assert message in plain.stderr
        as_json = cli(env, *arguments, "--json")
        assert as_json.returncode == status, (arguments, as_json.stdout, as_json.stderr)
        body = json.loads(as_json.stdout)
        assert message in body["error"]
        assert body["exit_code"] == status
        assert "Traceback" not in as_json.stdout + as_json.stderr
    invalid = cli(env, "jobs", "add", "Bad", "--function", "nope", "--every", "1m", "--json")
    assert invalid.returncode == 2
    assert "id" in json.loads(invalid.stdout)["problems"]


def test_tables_say_utc_once_and_json_has_one_iso_form(registered: list[str]) -> None:
    code, output = invoke("jobs", "list")
    assert code == 0
    assert "Next run (UTC)" in output
    [cell] = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d( UTC)?", output)[:1]
    assert cell == "", "cells leave the zone to the header"
    code, output = invoke("jobs", "list", "--json")
    times = [job["next_run_time"] for job in json.loads(output)["items"] if job["next_run_time"]]
    assert times
    assert all(ISO_UTC.match(moment) for moment in times), times
    code, output = invoke("health", "check", "--json")
    assert code == 1  # no scheduler runs
    assert ISO_UTC.match(json.loads(output)["checked_at"])


def test_show_and_its_json_agree_on_attempts(registered: list[str]) -> None:
    code, output = invoke("jobs", "show", "cleanup_old_records", "--json")
    attempts = json.loads(output)["retry_attempts"]
    code, output = invoke("jobs", "show", "cleanup_old_records")
    assert code == 0
    [shown] = re.findall(r"Attempts\s+│?\s*(\d+) \(", output)
    assert int(shown) == attempts


def test_a_change_stored_without_a_scheduler_shows_in_the_list(registered: list[str]) -> None:
    assert invoke("jobs", "pause", "cleanup_old_records", "--yes")[0] == 0
    assert invoke("jobs", "reschedule", "system_maintenance", "--every", "5m", "--yes")[0] == 0
    code, output = invoke("jobs", "list", "--json")
    jobs = {job["id"]: job for job in json.loads(output)["items"]}
    assert jobs["cleanup_old_records"]["state"] == "paused"
    assert jobs["system_maintenance"]["trigger"] == "every 5m"
    code, output = invoke("jobs", "list")
    assert code == 0
    [paused_row] = [line for line in output.splitlines() if "cleanup_old_records" in line]
    assert "paused" in paused_row
    [rescheduled_row] = [line for line in output.splitlines() if "system_maintenance" in line]
    assert "every 5m" in rescheduled_row


def test_values_from_input_print_as_text_not_markup_or_control(
    engine: Engine, registered: list[str]
) -> None:
    # Stored as another writer might have: the API refuses control characters in a name,
    # but an error message is whatever the job's exception said.
    name = "[red]Evil[/] name\nFORGED row\x1b[2J"
    error = "[bold]boom[/]\n\x1b[31mred\x1b[0m"
    store_runtime_row(engine, "oddly_named", "cleanup_old_records")
    with session_scope(engine) as session:
        session.get_one(Job, "oddly_named").name = name
        row = execution_row("escaped", ExecutionStatus.FAILED)
        row.error_type = "RuntimeError"
        row.error_message = error
        row.traceback = f"Traceback (most recent call last):\n  {error}"
        session.add(row)
    for command in (
        ["jobs", "list"],
        ["jobs", "show", "oddly_named"],
        ["jobs", "history", "cleanup_old_records"],
        ["executions", "show", "escaped"],
    ):
        code, output = invoke(*command)
        assert code == 0, output
        assert "\x1b" not in output, command
        assert "FORGED row" not in output.replace("\\nFORGED row", ""), command
    code, output = invoke("jobs", "show", "oddly_named")
    assert "[red]Evil[/] name\\nFORGED row\\x1b[2J" in output
    code, output = invoke("executions", "show", "escaped")
    assert "[bold]boom[/]\\n\\x1b[31mred\\x1b[0m" in output
    # The traceback keeps its lines, escapes the rest.
    assert "\n  [bold]boom[/]\n\\x1b[31mred" in output
    code, output = invoke("jobs", "show", "[bold]nope\x1b[2J")
    assert code == 1
    assert "error: no job '[bold]nope\\x1b[2J'" in output


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("localhost.", True),
        ("[::1]", True),
        ("[0:0:0:0:0:0:0:1]", True),
        ("[::ffff:127.0.0.1]", True),
        ("127.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
    ],
)
def test_loopback_is_judged_by_address_not_by_prefix(host: str, loopback: bool) -> None:
    assert is_loopback(urlsplit(f"http://{host}:8000").hostname or "") is loopback


def test_the_token_never_crosses_a_network_in_clear_text_unless_told(
    registered: list[str],
) -> None:
    # 0.0.0.0 is not a loopback address, but connecting to it reaches this machine: with
    # --insecure the request is sent, and is refused at once.
    remote = f"http://0.0.0.0:{free_port()}"
    for command in (["jobs", "list"], ["scheduler", "status"], ["health", "check", "--detailed"]):
        code, output = invoke(*command, "--url", remote)
        assert code == 2, (command, output)
        assert f"--url {remote} is plain http to 0.0.0.0, not this machine's loopback" in output
        assert "pass --insecure" in output
        code, output = invoke(*command, "--url", remote, "--insecure")
        assert code == 1, (command, output)
        assert "plain http" not in output
    assert invoke("health", "check", "--url", remote)[1].startswith("error: cannot reach")
