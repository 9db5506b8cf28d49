"""A background writer: commits what other threads queue, in batches, retrying on failure.

The execution history uses it for the starts and ends of runs, so no run makes the event loop
wait for the database: the loop only queues; this thread commits everything queued so far in
one transaction (a group commit). If the database refuses, the batch goes back in the queue and
the writer retries with backoff, logging once when the outage starts and once when it ends.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.core.text import first_line

_RETRY_CAP_SECONDS = 30.0
# Let a burst gather: one commit per window instead of one per change keeps the writer from
# competing with the event loop for the interpreter.
_GATHER_SECONDS = 0.02


class BatchWriter(ABC):
    """Subclasses queue changes under `_lock`, call `_changed()`, and say how to write them.

    A batch is whatever the subclass's `_take` returns; the writer only passes it along. (Not
    a generic class: its syntax differs between Python 3.11 and the 3.12 that ruff targets
    when the project is generated for 3.12.)
    """

    def __init__(self, name: str, logger: logging.Logger, what: str) -> None:
        self._name = name
        self._logger = logger
        self._what = what
        # Reentrant: `together` holds it across several calls that each take it.
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        # Set by `flush`: someone waits, so commit at once instead of gathering a burst.
        self._urgent = threading.Event()
        self._closing = False
        # Set by the writer as it stops for good; `_late` once something came after that.
        self._stopped = self._late = False
        self._thread: threading.Thread | None = None
        self.healthy = True

    @abstractmethod
    def _take(self) -> Any:
        """Everything queued, emptying the queue; None when nothing is. Called under `_lock`."""

    @abstractmethod
    def _write(self, batch: Any) -> None:
        """Commit one batch."""

    @abstractmethod
    def _put_back(self, batch: Any) -> None:
        """Requeue a batch that failed, under anything queued since. Called under `_lock`."""

    @abstractmethod
    def _write_failed(self) -> None:
        """Called after each batch the database refused (the batch is queued again)."""

    @abstractmethod
    def pending(self) -> int:
        """How many changes wait to be written."""

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """Queue what is queued inside in one batch: the writer takes none of it alone."""
        with self._lock:
            yield

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued is committed; False if that took longer than `timeout`."""
        self._urgent.set()
        self._wake.set()
        return self._idle.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued (waiting up to `timeout`), then stop the thread."""
        flushed = self.flush(timeout)
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
        if not flushed:
            self._logger.error(
                f"{self._what} not fully written at shutdown", extra={"pending": self.pending()}
            )

    def _changed(self) -> None:
        """Note that something was queued (call with `_lock` held) and wake the writer."""
        if self._stopped and not self._late:
            # After the last commit, at shutdown: nothing writes it, so say so once.
            self._late = True
            self._logger.warning(
                f"{self._what} queued after the final write at shutdown is not written",
                extra={"pending": self.pending()},
            )
        self._idle.clear()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        # Setting an event takes its lock and notifies: a burst queues thousands of changes
        # before the writer wakes, and only the first needs to wake it.
        if not self._wake.is_set():
            self._wake.set()

    def _run(self) -> None:
        delay = 0.0
        just_wrote = False
        while True:
            self._wake.wait(timeout=1.0)
            # Right after a commit, what queued meanwhile has gathered already.
            if not (just_wrote or self._urgent.is_set()):
                time.sleep(_GATHER_SECONDS)
            just_wrote = False
            self._wake.clear()
            with self._lock:
                batch = self._take()
                if batch is None:
                    self._urgent.clear()
                    self._idle.set()
                    self._stopped = self._closing
            if batch is None:
                if self._stopped:
                    return
                continue
            try:
                self._write(batch)
            except SQLAlchemyError as error:
                self._write_failed()
                with self._lock:
                    self._put_back(batch)
                delay = min(max(delay * 2, 0.5), _RETRY_CAP_SECONDS)
                if self.healthy:
                    self._logger.error(
                        f"cannot write the {self._what}; keeping it in memory and retrying",
                        extra={"error": first_line(error), "retry_in_seconds": delay},
                    )
                self.healthy = False
                if self._closing:
                    return
                time.sleep(delay)
                self._wake.set()
                continue
            if not self.healthy:
                self._logger.info(f"{self._what} written again after an outage")
            self.healthy, delay = True, 0.0
            just_wrote = True
            self._wake.set()
