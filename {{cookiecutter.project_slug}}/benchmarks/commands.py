"""Command latency: `make bench-commands` (or `python -m benchmarks.commands --rounds 200`).

Starts the real scheduler and API processes on a fresh database, then pauses and resumes a job
through the API, round after round. Each change is a row update; the answer comes once the
running scheduler reports it has applied that revision, so the answer's latency bounds the time
a change takes to reach the running scheduler. After every answer a GET must show the new
state. The target: p99 under 100 ms. `--database-url` measures PostgreSQL instead of a SQLite
file (a schema of its own is created and dropped).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from app import ENV_PREFIX
from benchmarks.databases import database, process_environment

TARGET_P99_MS = 100.0
JOB_ID = "cleanup_old_records"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_ready(client: httpx.Client, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/health/ready").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the scheduler and the API did not become ready")


def measure(client: httpx.Client, rounds: int) -> tuple[list[float], int]:
    """Pause and resume `rounds` times; the latencies in ms, and how many GETs disagreed."""
    latencies: list[float] = []
    disagreements = 0
    for i in range(rounds):
        action, state = ("pause", "paused") if i % 2 == 0 else ("resume", "scheduled")
        began = time.perf_counter()
        response = client.post(f"/api/jobs/{JOB_ID}/{action}")
        latencies.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200 or response.json()["status"] != "applied":
            raise SystemExit(f"{action} was not applied: {response.status_code} {response.text}")
        if client.get(f"/api/jobs/{JOB_ID}").json()["state"] != state:
            disagreements += 1
    return latencies, disagreements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="changes to send (pause/resume)")
    parser.add_argument("--database-url", help="a PostgreSQL URL; by default a SQLite file")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as scratch,
        database(args.database_url, Path(scratch)) as url,
    ):
        token = secrets.token_urlsafe(32)
        port = free_port()
        env = {
            **process_environment(),
            f"{ENV_PREFIX}DATABASE_URL": url,
            f"{ENV_PREFIX}DATA_DIR": str(Path(scratch) / "data"),
            f"{ENV_PREFIX}API_PORT": str(port),
            f"{ENV_PREFIX}API_TOKEN": token,
            f"{ENV_PREFIX}LOG_LEVEL": "WARNING",
            f"{ENV_PREFIX}HEARTBEAT_INTERVAL_SECONDS": "1",
            f"{ENV_PREFIX}HEARTBEAT_STALE_AFTER_SECONDS": "5",
            # Not the default port, which a scheduler of the developer's may hold.
            f"{ENV_PREFIX}SCHEDULER_METRICS_PORT": "0",
        }
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", f"app.entrypoints.{name}"], env=env, cwd=scratch
            )
            for name in ("scheduler", "api")
        ]
        try:
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            ) as client:
                wait_until_ready(client)
                measure(client, 10)  # warm-up: connections, first queries
                latencies, disagreements = measure(client, args.rounds)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=15)

    backend = make_url(url).get_backend_name()
    p99 = percentile(latencies, 0.99)
    print(f"Commands: {args.rounds} pause/resume changes through the API ({backend})")
    print(
        f"  answer (applied in the running scheduler): p50 {percentile(latencies, 0.5):.1f} ms, "
        f"p95 {percentile(latencies, 0.95):.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms, "
        f"mean {statistics.fmean(latencies):.1f} ms"
    )
    print(f"  next GET showed the change: {args.rounds - disagreements} of {args.rounds}")
    verdict = "met" if p99 <= TARGET_P99_MS else "MISSED"
    print(f"  target p99 <= {TARGET_P99_MS:g} ms: {verdict}")
    if disagreements:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
