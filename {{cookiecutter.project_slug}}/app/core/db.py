"""Database engine and sessions; the database is the only channel between the processes."""

from __future__ import annotations

import os
import sqlite3
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from app.core.settings import get_settings


class Base(DeclarativeBase):
    """Declarative base of the project's own tables."""


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as naive UTC and returns them aware.

    SQLite has no time zone support, so storing UTC everywhere keeps comparisons right on
    both databases.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; pass an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def sqlite_path(url: str | URL) -> Path | None:
    """The file behind a SQLite URL, or None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


_WRITE_INTENT = "write_intent"


def _enable_sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API and the CLI read while the scheduler writes; busy_timeout makes a
    # writer wait for the lock instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # SQLAlchemy, not the driver, begins transactions (see `_begin`).
    dbapi_connection.isolation_level = None


def _begin(connection: Connection) -> None:
    # A transaction that reads and then writes must take the write lock first: begun as a
    # reader, it fails at once (busy_timeout does not help) when another process committed
    # in between.
    immediate = connection.get_execution_options().get(_WRITE_INTENT, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# The database and what lies beside it hold every job's arguments and every run's errors:
# readable by the service's own user only, whatever the umask.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def open_private_file(path: Path) -> int:
    """A read-write descriptor of `path`, created owner-only (with its folder) if missing."""
    path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)


def create_db_engine(url: str, *, create_file: bool = True) -> Engine:
    """An engine for `url`.

    Only the scheduler creates a SQLite file (and its folder): the API and the CLI pass
    `create_file=False`, so started from the wrong folder they report a missing file instead
    of watching an empty database of their own.
    """
    path = sqlite_path(url)
    if path is None:
        engine = create_engine(url)
        _ping_when_idle(engine)
        return engine
    if create_file:
        # Created here rather than by SQLite, which would use the umask's mode; its WAL, SHM
        # and journal files take the database file's mode.
        os.close(open_private_file(path))
        engine = create_engine(url)
    else:
        read_write = f"{path.absolute().as_uri()}?mode=rw"
        engine = create_engine(
            url,
            creator=lambda: sqlite3.connect(read_write, uri=True, check_same_thread=False),
        )
    event.listen(engine, "connect", _enable_sqlite_wal)
    event.listen(engine, "begin", _begin)
    return engine


# How long after it was given back a pooled connection is handed out again without a ping: a
# database restart takes longer, and under load a ping per checkout is a round trip in every
# transaction.
TRUSTED_FOR_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only when it has sat idle: one the server dropped
    (a restart) is replaced, not handed out to fail."""

    def given_back(_: Any, entry: ConnectionPoolEntry) -> None:
        entry.info["given_back"] = time.monotonic()

    def before_use(connection: Any, entry: ConnectionPoolEntry, _: Any) -> None:
        given_back = entry.info.get("given_back")
        if given_back is not None and time.monotonic() - given_back <= TRUSTED_FOR_SECONDS:
            return
        try:
            engine.dialect.do_ping(connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool throws the connection away and hands out a new one instead.
            raise DisconnectionError(str(error)) from error

    event.listen(engine.pool, "connect", given_back)
    event.listen(engine.pool, "checkin", given_back)
    event.listen(engine.pool, "checkout", before_use)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it holds the write lock from its first read."""
    with engine.connect() as connection:
        connection.execution_options(**{_WRITE_INTENT: True})
        with connection.begin():
            yield connection


def database_now(connection: Connection) -> datetime:
    """The database server's clock on PostgreSQL, shared by every host; this host's on SQLite.

    The clock as it reads now, not `now()`, which is the transaction's start: a time compared
    with rows read earlier in the same transaction must not be older than they are.
    """
    if connection.dialect.name == "postgresql":
        server_time: datetime = connection.execute(text("SELECT clock_timestamp()")).scalar_one()
        return server_time.astimezone(UTC)
    return utcnow()


_tables_seen: weakref.WeakKeyDictionary[Engine, set[str]] = weakref.WeakKeyDictionary()


def tables_exist(engine: Engine, *names: str) -> bool:
    """Whether every table in `names` exists; a table once seen is not looked up again.

    Readers ask on every request, and on PostgreSQL each look-up is a catalog query.
    """
    seen = _tables_seen.setdefault(engine, set())
    missing = set(names) - seen
    if missing:
        seen.update(missing & set(inspect(engine).get_table_names()))
    return set(names) <= seen


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    return create_db_engine(get_settings().database_url)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to `engine`."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with session_factory(engine).begin() as session:
        yield session


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session for a change that reads first: see `write_transaction`."""
    with (
        write_transaction(engine) as connection,
        Session(bind=connection, expire_on_commit=False) as session,
    ):
        yield session
        session.flush()


def redacted_url(url: str | URL) -> str:
    """The URL with any password hidden, for logs and health output."""
    return make_url(url).render_as_string(hide_password=True)
