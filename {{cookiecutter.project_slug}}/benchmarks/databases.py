"""Where the benchmarks run: a scratch SQLite file, a schema of their own on PostgreSQL, or a
PostgreSQL server of their own (for what stops the server)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import ENV_PREFIX

# Every benchmark but bench-workers measures the scheduler running the jobs itself, so worker
# processes are off for them. In a project without workers the variable names no setting,
# and the settings ignore it.
SCHEDULER_RUNS_JOBS = {f"{ENV_PREFIX}WORKERS_ENABLED": "false"}


def scheduler_runs_jobs() -> None:
    """Turn the workers off for this benchmark's own settings."""
    os.environ.update(SCHEDULER_RUNS_JOBS)


def process_environment() -> dict[str, str]:
    """The environment of a process a benchmark starts: this one's without the developer's
    own settings, which would change what is measured, and with the scheduler running the
    jobs."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    return {**kept, **SCHEDULER_RUNS_JOBS}


@contextmanager
def database(url: str | None, scratch: Path) -> Iterator[str]:
    """A SQLite file in `scratch`, or a fresh schema on the PostgreSQL server at `url`."""
    if url is None:
        yield f"sqlite:///{scratch / 'bench.db'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


class OwnServer:
    """A PostgreSQL server of its own, on a free port, to stop and start; the shared one is
    never stopped."""

    def __init__(self, scratch: Path) -> None:
        bindir = self.programs()
        if bindir is None:
            raise RuntimeError(self.MISSING)
        self.initdb, self.pg_ctl = bindir / "initdb", bindir / "pg_ctl"
        self.data = scratch / "pgdata"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        # The server refuses to run as root; run its programs as `postgres` then.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        scratch.chmod(0o777)
        self._run(self.initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres")

    MISSING = (
        "a server of its own needs PostgreSQL's server programs (initdb, pg_ctl, in the folder "
        "`pg_config --bindir` names); this machine has only the client"
    )

    @staticmethod
    def programs() -> Path | None:
        """The folder of initdb and pg_ctl, or None where the server is not installed."""
        if shutil.which("pg_config") is None:
            return None
        bindir = Path(
            subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
        return bindir if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists() else None

    def _run(self, *command: object) -> None:
        subprocess.run(
            [*self.as_user, *map(str, command)], check=True, capture_output=True, text=True
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}"
        log = self.data / "server.log"
        self._run(self.pg_ctl, "-D", self.data, "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run(self.pg_ctl, "-D", self.data, "-m", "fast", "-w", "stop")
