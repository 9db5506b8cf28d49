"""CLI start-up: `make bench-cli` (or `python -m benchmarks.cli --runs 20`).

Runs each command as a user types it, a fresh process every time, on a migrated SQLite file
in a scratch folder, and prints the median and the slowest run. Beside them, measured in the
same run: the bare interpreter, and importing the libraries a database command cannot do
without (SQLAlchemy's ORM, pydantic-settings, Typer, Rich). What a command takes beyond that
floor is this project's own code. Targets on an idle machine: `--help` 0.3 s, `jobs list` and
`health check` 0.6 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app import COMMAND, ENV_PREFIX
from benchmarks.databases import process_environment

ANCHORS = {
    "python (the bare interpreter)": [sys.executable, "-c", "pass"],
    # Frozen at exit as the CLI does (app/cli/main.py), so the two pay the same to stop.
    "the libraries' floor (import only)": [
        sys.executable,
        "-c",
        "import gc, sqlalchemy.orm, pydantic_settings, typer, rich.console; gc.freeze()",
    ],
}
COMMANDS = [["--help"], ["jobs", "list"], ["health", "check"], ["scheduler", "status"]]


def seconds(command: list[str], env: dict[str, str], runs: int) -> list[float]:
    """Wall time of `runs` runs of `command`; any exit status but a crash counts."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        if "Traceback" in result.stderr:
            raise SystemExit(f"{' '.join(command)} crashed:\n{result.stderr}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="processes per command")
    args = parser.parse_args()
    cli = str(Path(sys.executable).with_name(COMMAND))
    with tempfile.TemporaryDirectory() as scratch:
        env = {
            **process_environment(),
            f"{ENV_PREFIX}DATABASE_URL": f"sqlite:///{scratch}/bench.db",
            f"{ENV_PREFIX}DATA_DIR": f"{scratch}/data",
            "COLUMNS": "160",
        }
        subprocess.run([cli, "db", "upgrade"], env=env, capture_output=True, check=True)
        rows = [(label, seconds(command, env, args.runs)) for label, command in ANCHORS.items()]
        rows += [
            (f"{COMMAND} {' '.join(command)}", seconds([cli, *command], env, args.runs))
            for command in COMMANDS
        ]
    floor = statistics.median(rows[1][1])
    print(f"CLI start-up: {args.runs} fresh processes each (wall time, seconds)")
    print(f"{'':44} {'median':>8} {'slowest':>8} {'over the floor':>15}")
    for label, times in rows:
        median = statistics.median(times)
        print(f"{label:44} {median:8.3f} {max(times):8.3f} {median - floor:+15.3f}")


if __name__ == "__main__":
    main()
