"""The worker process's connection pools: a connection that has just answered is not checked.

A pool that checks every connection it hands out (as Procrastinate's does by default) pays a
round trip for each check: under a backlog, one more round trip for every fetch and finish
of a job, and every batch of starts or ends. As for the engine's pool (`app.core.db`), a
connection is checked only when it has sat unused for `TRUSTED_FOR_SECONDS`.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from app.core.db import TRUSTED_FOR_SECONDS

# How long a worker's query waits for a connection before it fails, the database being away:
# Procrastinate's worker then stops, and the process starts its queues again
# (`process.run_worker`).
CONNECT_TIMEOUT_SECONDS = 10.0


class CheckIfIdle:
    """A pool's `check` and `reset`: the check of a connection given back within the last
    `TRUSTED_FOR_SECONDS` is skipped."""

    def __init__(self) -> None:
        # The pool calls `reset` on each connection it is given back in a working state.
        self._given_back: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = (
            weakref.WeakKeyDictionary()
        )

    async def check(self, connection: psycopg.AsyncConnection[Any]) -> None:
        given_back = self._given_back.get(connection)
        if given_back is None or time.monotonic() - given_back > TRUSTED_FOR_SECONDS:
            await AsyncConnectionPool.check_connection(connection)

    async def reset(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self._given_back[connection] = time.monotonic()


def worker_pool(**options: Any) -> AsyncConnectionPool:
    """An `AsyncConnectionPool` with `options`, not yet open, that checks idle connections
    only; a `check` among the options (Procrastinate passes its own) is replaced."""
    idle = CheckIfIdle()
    options.pop("check", None)
    options.setdefault("open", False)
    options.setdefault("timeout", CONNECT_TIMEOUT_SECONDS)
    return AsyncConnectionPool(check=idle.check, reset=idle.reset, **options)
