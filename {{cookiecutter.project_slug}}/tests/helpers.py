"""Helpers shared by tests: heartbeats written as the scheduler writes them, and servers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI
from sqlalchemy import Engine, update

from app.components.scheduler.heartbeat import Heartbeat
from app.components.scheduler.lease import Candidate, new_instance_id
from app.core.db import session_scope, utcnow
from app.core.enums import JobOrigin, SchedulerState
from app.core.models import Job, SchedulerInstance
from app.core.schedule_specs import IntervalSpec, dump_spec


def write_heartbeat(
    engine: Engine,
    state: SchedulerState = SchedulerState.RUNNING,
    age_seconds: float = 0,
    started_at: datetime | None = None,
) -> Heartbeat:
    """Record a heartbeat through the scheduler's own writer, then backdate it if asked.

    A running instance takes the lease too, if it is free, as a leading scheduler does.
    """
    heartbeat = Heartbeat(engine, new_instance_id())
    heartbeat.beat(state, job_count=3)
    if state == SchedulerState.RUNNING:
        Candidate(engine, heartbeat.instance_id, 10.0).try_take()
    last_seen = utcnow() - timedelta(seconds=age_seconds)
    with session_scope(engine) as session:
        session.execute(
            update(SchedulerInstance)
            .where(SchedulerInstance.instance_id == heartbeat.instance_id)
            .values(last_seen=last_seen, started_at=started_at or last_seen)
        )
    return heartbeat


def store_runtime_row(
    engine: Engine, job_id: str, function: str, next_run_at: datetime | None = None
) -> None:
    """Store a runtime job's row directly, as the API would not: the tests make rows it refuses."""
    with session_scope(engine) as session:
        session.add(
            Job(
                id=job_id,
                origin=JobOrigin.RUNTIME,
                name=job_id,
                function=function,
                args="{}",
                queue="default",
                schedule=dump_spec(IntervalSpec(seconds=60)),
                paused=False,
                next_run_at=next_run_at,
                version=1,
                updated_at=utcnow(),
            )
        )


@contextmanager
def serve(app: FastAPI, port: int) -> Iterator[str]:
    """Serve `app` on 127.0.0.1:`port` in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def stop(scheduler: AsyncIOScheduler) -> None:
    """Shut a scheduler down and let it finish its turn of the loop."""
    # AsyncIOScheduler.shutdown runs on the loop's next turn; yielding once lets it run.
    scheduler.shutdown(wait=False)
    await asyncio.sleep(0)


def wait_for(condition: Callable[[], bool], timeout: float, what: str | Callable[[], str]) -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds.

    `what` names the condition in the failure; a callable is asked then, so the failure can
    say what was found instead.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            pytest.fail(f"timed out after {timeout} s waiting for {described}")
        time.sleep(0.1)


async def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Like `wait_for`, on the event loop: the scheduler under test keeps running meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


@contextmanager
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another process listens on, until the block ends."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]
