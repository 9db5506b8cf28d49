"""Failover drills: `make bench-failover` (or `python -m benchmarks.failover --rounds 20`).

Scheduler replicas (`benchmarks/replica.py`) share a fresh database while a drill kills, cuts
off or freezes the leader, again and again. Afterwards every scheduled time of the replicas'
once-a-second job must have exactly one row: none twice, none missing. The drills:

- `kill`: kill -9 of the leader at a random moment, a replacement started each time; prints
  the failover times against the target (p99 within 3 s);
- `terminate` (PostgreSQL): the leader's database sessions ended, as a server restart, a managed
  failover or a proxy's idle timeout does;
- `freeze`: the leader stopped (SIGSTOP) past its lease, then continued: a standby must lead
  within the lease and 2 s, and the old leader stand down;
- `changes`: pause, add, reschedule and delete while the leadership moves twice and the first
  leader comes back: every change must hold;
- `burst`: kill -9 of the leader during a burst of one-off jobs: each gets exactly one row and
  runs at most once;
- `outage` (PostgreSQL, `initdb` and `pg_ctl` on the PATH or in `pg_config --bindir`): a server
  of the drill's own, on a free port, stopped for 30 s: the replicas recover without a restart.

`--database-url` runs on a schema of its own on that PostgreSQL server; without it, a SQLite
file. `--drill all` runs every drill the database allows.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url

from app import ENV_PREFIX
from app.core.db import create_db_engine
from app.core.enums import SchedulerState
from app.core.health import HealthReport, check_health
from app.core.models import JobExecution
from benchmarks.databases import OwnServer, database, process_environment, scheduler_runs_jobs
from benchmarks.replica import (
    MARK_FUNCTION,
    REPLICA_JOBS,
    RUNS_FILE_VARIABLE,
    Accounting,
    account_for,
    succeeded_since,
)

TARGET_P99_SECONDS = 3.0
STALE_AFTER_SECONDS = 3.0
PROJECT_ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ONLY = {"terminate", "outage"}
DRILLS = ("kill", "terminate", "freeze", "changes", "burst", "outage")


class DrillFailed(Exception):
    """The drill could not go on: what it waited for did not happen."""


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `condition` every 20 ms; the seconds it took. Raises `DrillFailed` on timeout."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise DrillFailed(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - started


class Replicas:
    """Scheduler replicas on one database, and what the database says about them."""

    def __init__(self, url: str, scratch: Path, lease: float) -> None:
        self.url = url
        self.scratch = scratch
        self.lease = lease
        self.processes: list[subprocess.Popen[str]] = []
        self.names: dict[int, str] = {}
        self.engine: Engine = create_db_engine(url)
        self.runs_file = scratch / "runs.txt"

    def start(self, count: int = 1) -> None:
        for _ in range(count):
            name = f"replica-{len(self.processes) + 1}"
            url = make_url(self.url)
            if url.get_backend_name() == "postgresql":
                # Names its sessions, so the drill can end exactly those.
                url = url.update_query_dict({"application_name": name})
            env = {
                **process_environment(),
                "PYTHONPATH": str(PROJECT_ROOT),
                RUNS_FILE_VARIABLE: str(self.runs_file),
                f"{ENV_PREFIX}DATABASE_URL": url.render_as_string(hide_password=False),
                f"{ENV_PREFIX}DATA_DIR": str(self.scratch / "data"),
                f"{ENV_PREFIX}LEADER_LEASE_SECONDS": str(self.lease),
                f"{ENV_PREFIX}HEARTBEAT_INTERVAL_SECONDS": "0.5",
                f"{ENV_PREFIX}HEARTBEAT_STALE_AFTER_SECONDS": str(STALE_AFTER_SECONDS),
                f"{ENV_PREFIX}SHUTDOWN_TIMEOUT_SECONDS": "2",
                f"{ENV_PREFIX}LOG_FORMAT": "json",
                # The replicas share this host: each serves its metrics on a free port.
                f"{ENV_PREFIX}SCHEDULER_METRICS_PORT": "0",
            }
            log = (self.scratch / f"{name}.log").open("a")
            process = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.replica"],
                env=env,
                cwd=self.scratch,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
            self.processes.append(process)
            self.names[process.pid] = name

    def alive(self) -> list[subprocess.Popen[str]]:
        return [process for process in self.processes if process.poll() is None]

    def report(self) -> HealthReport:
        return check_health(self.engine, STALE_AFTER_SECONDS)

    def leader(self) -> int | None:
        """The pid of the replica that holds the lease and beats as running, if any."""
        report = self.report()
        return report.scheduler.pid if report.healthy else None

    def wait_for_leader(self, timeout: float, other_than: int | None = None) -> tuple[int, float]:
        """The new leader's pid, and how long it took to lead."""
        alive = {process.pid for process in self.alive()}
        found: list[int] = []

        def leads() -> bool:
            pid = self.leader()
            if pid is not None and pid != other_than and pid in alive:
                found.append(pid)
            return bool(found)

        took = wait_for(leads, timeout, "a replica to lead")
        return found[0], took

    def state(self, pid: int) -> SchedulerState | None:
        instance = next((i for i in self.report().scheduler.instances if i.pid == pid), None)
        return instance.state if instance else None

    def wait_for_ticks(self, count: int, timeout: float = 30) -> None:
        """Wait until `count` more scheduled times of the tick have run."""
        since = self.report().checked_at
        wait_for(
            lambda: succeeded_since(self.engine, since) >= count, timeout, f"{count} more ticks"
        )

    def stop(self) -> None:
        for process in self.alive():
            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.engine.dispose()

    def tracebacks(self) -> int:
        return sum(log.read_text().count("Traceback") for log in self.scratch.glob("*.log"))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def accounting_text(accounting: Accounting) -> str:
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(accounting.statuses.items()))
    return (
        f"times {accounting.times}, duplicates {len(accounting.duplicates)}, "
        f"unaccounted {len(accounting.unaccounted)} ({statuses})"
    )


# The drills. Each gets running replicas on a fresh database and returns what it measured.


def drill_kill(replicas: Replicas, rounds: int, rng: random.Random) -> dict[str, Any]:
    failovers: list[float] = []
    kills: list[str] = []
    standbys = len(replicas.alive()) - 1
    for _ in range(rounds):
        # The replacement started last round is up: a leader and its standbys, as before.
        wait_for(
            lambda: replicas.report().scheduler.standby_instances >= standbys,
            30,
            f"{standbys} replicas on standby",
        )
        # Somewhere in the tick's second: the drill's input, not a wait for anything.
        time.sleep(rng.uniform(0.0, 1.0))
        victim, _ = replicas.wait_for_leader(30)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        kills.append(f"{datetime.now(UTC):%H:%M:%S.%f} (pid {victim})")
        replicas.start()  # the replacement an orchestrator starts
        replicas.wait_for_leader(30, other_than=victim)
        failovers.append(time.monotonic() - killed)
        replicas.wait_for_ticks(1)
    p99 = percentile(failovers, 0.99)
    slowest = max(range(len(failovers)), key=failovers.__getitem__)
    return {
        "figures": f"failover p50 {statistics.median(failovers):.2f} s, p99 {p99:.2f} s, "
        f"max {max(failovers):.2f} s (round {slowest + 1}, killed at {kills[slowest]})",
        "target": (f"failover p99 <= {TARGET_P99_SECONDS:g} s", p99 <= TARGET_P99_SECONDS),
    }


def drill_terminate(replicas: Replicas, rounds: int, rng: random.Random) -> dict[str, Any]:
    moved = 0
    for _ in range(rounds):
        time.sleep(rng.uniform(0.0, 1.0))
        victim, _ = replicas.wait_for_leader(30)
        with replicas.engine.connect() as connection:
            ended = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": replicas.names[victim]},
            ).scalar_one()
            connection.commit()
        if not ended:
            raise DrillFailed("the leader had no session to end")
        replicas.wait_for_ticks(2)
        moved += replicas.leader() != victim
    return {"figures": f"leadership moved {moved} of {rounds} times"}


def drill_freeze(replicas: Replicas, rounds: int, rng: random.Random) -> dict[str, Any]:
    takeovers = []
    for _ in range(max(1, rounds // 10)):
        victim, _ = replicas.wait_for_leader(30)
        os.kill(victim, signal.SIGSTOP)
        try:
            _, took = replicas.wait_for_leader(replicas.lease + 10, other_than=victim)
            takeovers.append(took)
            replicas.wait_for_ticks(2)
        finally:
            os.kill(victim, signal.SIGCONT)
        wait_for(
            lambda: replicas.state(victim) == SchedulerState.STANDBY,  # noqa: B023
            20,
            "the continued leader to stand down",
        )
        replicas.wait_for_ticks(2)
    limit = replicas.lease + 2
    return {
        "figures": f"standby led {max(takeovers):.2f} s after the freeze "
        f"(lease {replicas.lease:g} s)",
        "target": (f"takeover <= lease + 2 s ({limit:g} s)", max(takeovers) <= limit),
    }


def drill_changes(replicas: Replicas, rounds: int, rng: random.Random) -> dict[str, Any]:
    from app.components.management.schemas import AddJobRequest
    from app.components.management.service import Management
    from app.core.schedule_specs import IntervalSpec
    from app.core.settings import Settings

    settings = Settings(database_url=replicas.url, _env_file=None)
    manage = Management(replicas.engine, settings, jobs=REPLICA_JOBS)
    first, _ = replicas.wait_for_leader(30)

    def every(seconds: int) -> Any:
        return IntervalSpec(seconds=seconds)

    def added(job_id: str) -> AddJobRequest:
        return AddJobRequest(
            id=job_id,
            name=job_id,
            function=MARK_FUNCTION,
            args={"job": job_id},
            schedule=every(1),
        )

    # The first leader freezes; the changes are made under the next one.
    frozen_at = datetime.now(UTC)
    os.kill(first, signal.SIGSTOP)
    try:
        second, _ = replicas.wait_for_leader(replicas.lease + 10, other_than=first)
        # The tick goes on throughout: its times are counted across every leader.
        results = [
            manage.add(added("held")),
            manage.add(added("kept")),
            manage.add(added("dropped")),
        ]
        wait_for(
            lambda: succeeded_since(replicas.engine, frozen_at, "kept") >= 2,
            20,
            "the added job to run",
        )
        results += [
            manage.pause("held"),
            manage.reschedule("kept", every(2)),
            manage.delete("dropped"),
        ]
        changed_at = datetime.now(UTC)
    finally:
        os.kill(first, signal.SIGCONT)
    not_applied = [r.detail for r in results if r.status.value != "applied"]
    if not_applied:
        raise DrillFailed(f"changes not applied: {not_applied}")
    # The second leader dies, then the third: the first one leads again, from the tables.
    wait_for(lambda: replicas.state(first) == SchedulerState.STANDBY, 20, "the first to stand by")
    os.kill(second, signal.SIGKILL)
    third, _ = replicas.wait_for_leader(30, other_than=second)
    if third != first:
        os.kill(third, signal.SIGKILL)
        again, _ = replicas.wait_for_leader(30, other_than=third)
        if again != first:
            raise DrillFailed("the first leader did not lead again")
    held_from = datetime.now(UTC)
    wait_for(
        lambda: succeeded_since(replicas.engine, held_from, "kept") >= 3,
        30,
        "runs under the first leader again",
    )
    with replicas.engine.connect() as connection:

        def times(job_id: str, after: datetime) -> list[datetime]:
            return list(
                connection.scalars(
                    select(JobExecution.scheduled_at)
                    .where(JobExecution.job_id == job_id, JobExecution.scheduled_at > after)
                    .order_by(JobExecution.scheduled_at)
                )
            )

        # A time claimed just before a change may still run: allow one second.
        grace = changed_at + timedelta(seconds=1)
        problems = []
        if times("held", grace):
            problems.append("the paused job ran")
        if times("dropped", grace):
            problems.append("the deleted job ran")
        kept = times("kept", grace)
        if any(b - a != timedelta(seconds=2) for a, b in itertools.pairwise(kept)):
            problems.append(f"the rescheduled job did not run every 2 s: {kept}")
    if problems:
        raise DrillFailed("; ".join(problems))
    if manage.resume("held").status.value != "applied":
        raise DrillFailed("the returned leader did not apply a resume")
    wait_for(
        lambda: succeeded_since(replicas.engine, grace, "held") >= 1, 20, "the resumed job to run"
    )
    return {"figures": "pause, add, reschedule, delete and resume held across 3 leaders"}


BURST_JOBS = 2000
BURST_SECONDS = 3.0


def drill_burst(replicas: Replicas, rounds: int, rng: random.Random) -> dict[str, Any]:
    from benchmarks.scheduler import stored_one_off_jobs

    # Stored before the leader builds its timer, as the API would have: restart the replicas.
    replicas.stop()
    replicas.engine = create_db_engine(replicas.url)
    first_due = time.time() + 8
    stored_one_off_jobs(
        replicas.url,
        BURST_JOBS,
        first_due,
        BURST_SECONDS / BURST_JOBS,
        function=MARK_FUNCTION,
        arguments=lambda job_id, _due: {"job": job_id},
    )
    replicas.start(3)
    victim, _ = replicas.wait_for_leader(30)
    time.sleep(max(0.0, first_due + BURST_SECONDS / 2 - time.time()))
    os.kill(victim, signal.SIGKILL)
    replicas.start()
    replicas.wait_for_leader(30, other_than=victim)

    def settled() -> dict[str, str]:
        with replicas.engine.connect() as connection:
            rows = connection.execute(
                select(JobExecution.job_id, JobExecution.status).where(
                    JobExecution.job_id.like("one_off_%")
                )
            ).all()
        return {row.job_id: str(row.status) for row in rows}

    def final() -> bool:
        statuses = settled()
        return len(statuses) >= BURST_JOBS and not {"running", "pending"} & set(statuses.values())

    wait_for(final, 90, "every one-off job to end")
    with replicas.engine.connect() as connection:
        per_job = Counter(
            connection.scalars(
                select(JobExecution.job_id).where(JobExecution.job_id.like("one_off_%"))
            )
        )
    statuses = settled()
    runs = Counter(replicas.runs_file.read_text().split()) if replicas.runs_file.exists() else {}
    twice = [job for job, count in runs.items() if count > 1]
    unrecorded = [job for job in runs if statuses.get(job) not in {"succeeded", "interrupted"}]
    rows = Counter(per_job.values())
    problems = {
        "jobs without a row": BURST_JOBS - len(per_job),
        "jobs with two rows": sum(count for n, count in rows.items() if n > 1),
        "jobs run twice": len(twice),
        "runs without a run's row": len(unrecorded),
    }
    by_status = Counter(statuses.values())
    return {
        "figures": f"{BURST_JOBS} one-off jobs: "
        + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items()))
        + f"; ran {sum(runs.values())} times",
        "problems": problems,
    }


OUTAGE_SECONDS = 30.0


def drill_outage(replicas: Replicas, rounds: int, rng: random.Random) -> dict[str, Any]:
    server = OWN_SERVERS[replicas.url]
    replicas.wait_for_leader(30)
    replicas.wait_for_ticks(2)
    pids = {process.pid for process in replicas.alive()}
    server.stop()
    # The outage itself is the drill's input: the database is gone this long.
    time.sleep(OUTAGE_SECONDS)
    restarted = time.monotonic()
    server.start()
    replicas.wait_for_leader(60)
    recovered = time.monotonic() - restarted
    replicas.wait_for_ticks(3)
    if {process.pid for process in replicas.alive()} != pids:
        raise DrillFailed("a replica exited during the outage")
    return {
        "figures": f"database down {OUTAGE_SECONDS:g} s; a replica led again {recovered:.2f} s "
        "after the server was told to start, none restarted"
    }


OWN_SERVERS: dict[str, OwnServer] = {}


@contextmanager
def drill_database(drill: str, url: str | None, scratch: Path) -> Iterator[str]:
    if drill != "outage":
        with database(url, scratch) as scoped:
            yield scoped
        return
    server = OwnServer(scratch)
    server.start()
    OWN_SERVERS[server.url] = server
    try:
        yield server.url
    finally:
        server.stop()


RUNNERS = {
    "kill": drill_kill,
    "terminate": drill_terminate,
    "freeze": drill_freeze,
    "changes": drill_changes,
    "burst": drill_burst,
    "outage": drill_outage,
}


def run_drill(drill: str, url: str | None, count: int, rounds: int, lease: float) -> bool:
    """Run one drill on a fresh database; print its line; True if it met everything.

    The replicas' logs are kept, and their folder named, when it did not.
    """
    scratch = Path(tempfile.mkdtemp(prefix=f"drill-{drill}-"))
    ok = False
    try:
        ok = _drill(drill, url, count, rounds, lease, scratch)
    finally:
        if ok:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"drill {drill}: the replicas' logs are in {scratch}")
    return ok


def _drill(
    drill: str, url: str | None, count: int, rounds: int, lease: float, scratch: Path
) -> bool:
    rng = random.Random(f"{drill}-{rounds}")
    started = time.monotonic()
    with drill_database(drill, url, scratch) as scoped:
        replicas = Replicas(scoped, scratch, lease)
        try:
            replicas.start(count)
            replicas.wait_for_leader(60)
            replicas.wait_for_ticks(2)
            result = RUNNERS[drill](replicas, rounds, rng)
            replicas.wait_for_ticks(1)
        except DrillFailed as error:
            replicas.stop()
            print(f"drill {drill}: FAILED: {error}")
            return False
        replicas.stop()
        accounting = account_for(create_db_engine(scoped))
        tracebacks = replicas.tracebacks()
    problems = {
        "duplicates": len(accounting.duplicates),
        "unaccounted": len(accounting.unaccounted),
        "tracebacks": tracebacks,
        **result.get("problems", {}),
    }
    ok = not any(problems.values())
    target = result.get("target")
    if target is not None:
        ok = ok and target[1]
    print(
        f"drill {drill}: {len(replicas.processes)} replicas started, {rounds} rounds, "
        f"{time.monotonic() - started:.0f} s; {accounting_text(accounting)}; {result['figures']}"
        + "".join(f"; {name} {value}" for name, value in result.get("problems", {}).items())
        + (f"; tracebacks in logs {tracebacks}" if tracebacks else "")
        + (f"; target {target[0]}: {'met' if target[1] else 'NOT met'}" if target else "")
        + ("" if ok else " -- FAILED")
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drill", choices=[*DRILLS, "all"], default="kill")
    parser.add_argument("--rounds", type=int, default=20, help="kills (or cuts) per drill")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--lease", type=float, default=10.0, help="LEADER_LEASE_SECONDS")
    parser.add_argument(
        "--database-url", help="a PostgreSQL server to drill on (a schema of its own)"
    )
    args = parser.parse_args()
    scheduler_runs_jobs()
    postgres = args.database_url is not None
    drills = DRILLS if args.drill == "all" else (args.drill,)
    skipped = [d for d in drills if d in POSTGRES_ONLY and not postgres]
    if skipped and args.drill != "all":
        raise SystemExit(f"the {args.drill} drill needs PostgreSQL: pass --database-url")
    database_name = "PostgreSQL" if postgres else "SQLite"
    print(f"Failover drills on {database_name}, {args.replicas} replicas, lease {args.lease:g} s")
    results = [
        run_drill(drill, args.database_url, args.replicas, args.rounds, args.lease)
        for drill in drills
        if drill not in skipped
    ]
    for drill in skipped:
        print(f"drill {drill}: not run: it needs PostgreSQL")
    if not all(results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
