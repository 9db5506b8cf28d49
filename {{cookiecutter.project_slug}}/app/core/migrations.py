"""The database schema belongs to Alembic: one chain of revisions in `app/migrations`.

The scheduler applies them when it starts (MIGRATE_ON_START, on by default), so a new version
needs no extra step; with it off, the scheduler refuses a database that is behind and the
operator runs `db upgrade` as a release step. Upgrades are serialized (an advisory lock on
PostgreSQL, a file lock beside a SQLite file), so replicas starting together migrate once.

Alembic is imported only by the functions that change the schema: it costs 0.2-0.4 s, and
the health checks, which only compare revisions, run every few seconds. They read the revision
ids from the revision files and the database's from Alembic's version table directly.
"""

from __future__ import annotations

import ast
import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Column, Connection, Engine, MetaData, inspect, text

from app import COMMAND
from app.core.db import Base, open_private_file, sqlite_path, tables_exist

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
VERSION_TABLE = "alembic_version"  # Alembic's default, which env.py keeps
# What every table, type and function of Procrastinate's schema is named with.
PROCRASTINATE_PREFIX = "procrastinate_"
# Any constant shared by every process of the project; it names the lock, nothing more.
_UPGRADE_LOCK_KEY = 0x5C4ED01E


class SchemaError(Exception):
    """The database's schema is not the one this code needs; the message says what to do."""


def target_metadata() -> MetaData:
    """Every table the migrations manage: the project's models."""
    # Importing the models registers their tables on Base.metadata.
    from app.core import models  # noqa: F401

    return Base.metadata


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, without an ini file, so it works from the installed package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _revision_ids(path: Path) -> tuple[str, tuple[str, ...]]:
    """A revision file's own id and the ids it revises, from its top-level assignments."""
    values: dict[str, object] = {}
    for node in ast.parse(path.read_text(), str(path)).body:
        target: ast.expr
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            values[target.id] = ast.literal_eval(value)
    revision, parents = values.get("revision"), values.get("down_revision")
    if not isinstance(revision, str):
        raise SchemaError(f"{path.name} sets no revision id")
    if parents is None:
        return revision, ()
    if isinstance(parents, str):
        return revision, (parents,)
    if isinstance(parents, tuple | list):
        return revision, tuple(str(parent) for parent in parents)
    raise SchemaError(f"{path.name}: down_revision is neither an id, a list of ids nor None")


# CPython 3.11's `ast` keeps recursion state per interpreter, not per thread: two threads
# parsing at once can fail with "AST constructor recursion depth mismatch".
_PARSING = threading.Lock()


@lru_cache(maxsize=1)
def revision_chain() -> dict[str, tuple[str, ...]]:
    """Every revision in app/migrations/versions, with the revisions it follows."""
    paths = sorted((MIGRATIONS_DIR / "versions").glob("*.py"))
    with _PARSING:
        return dict(_revision_ids(path) for path in paths)


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The revision this code's models match."""
    chain = revision_chain()
    followed = {parent for parents in chain.values() for parent in parents}
    heads = sorted(set(chain) - followed)
    if not heads:
        raise SchemaError(f"no migrations found in {MIGRATIONS_DIR}")
    if len(heads) > 1:
        raise SchemaError(
            f"the migrations have {len(heads)} heads ({', '.join(heads)}): "
            "join them with `alembic merge heads`"
        )
    return heads[0]


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, as `connection` sees it; None before the first
    migration."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return _stored_revision(connection)


def _stored_revision(connection: Connection) -> str | None:
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:
        raise SchemaError(f"the database records several revisions: {', '.join(sorted(rows))}")
    return rows[0] if rows else None


def lock_for_upgrade(connection: Connection) -> None:
    """Wait for any other process's upgrade; the lock ends with the transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK_KEY})


@contextmanager
def _sqlite_upgrade_lock(engine: Engine) -> Iterator[None]:
    """On SQLite, wait for any other process's upgrade: a lock on a file beside the database."""
    path = sqlite_path(engine.url)
    if path is None:
        yield
        return
    fd = open_private_file(path.with_name(f"{path.name}.migrate-lock"))
    try:
        # Released when the file closes, also when the process dies.
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _refuse_unversioned_tables(connection: Connection) -> None:
    if current_revision(connection) is not None:
        return
    existing = set(inspect(connection).get_table_names())
    known = set(target_metadata().tables)
    if existing & known:
        raise SchemaError(
            "the database has this project's tables but no migration record, so it was created "
            "before migrations were added. If its tables match this version, record that with "
            f"`{COMMAND} db stamp head`; otherwise start from an empty database."
        )


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to `revision`; returns the revisions before and after."""
    if revision == "head":
        # Nearly every start finds the schema current: say so without loading Alembic, which
        # costs about 0.4 s and 10 MB the scheduler process would keep for nothing.
        with engine.connect() as connection:
            if schema_problem(connection) is None:
                head = head_revision()
                return head, head
    from alembic import command
    from alembic.util import CommandError

    with _sqlite_upgrade_lock(engine), engine.begin() as connection:
        lock_for_upgrade(connection)
        _refuse_unversioned_tables(connection)
        before = current_revision(connection)
        try:
            command.upgrade(alembic_config(connection), revision)
        except CommandError as error:
            raise SchemaError(f"cannot upgrade from {before} to {revision}: {error}") from None
        return before, current_revision(connection)


def stamp(engine: Engine, revision: str) -> None:
    """Record `revision` as applied without running it (for databases made before migrations)."""
    from alembic import command
    from alembic.util import CommandError

    with _sqlite_upgrade_lock(engine), engine.begin() as connection:
        lock_for_upgrade(connection)
        try:
            command.stamp(alembic_config(connection), revision)
        except CommandError as error:
            raise SchemaError(f"cannot stamp {revision}: {error}") from None


def include_object(
    item: object, name: str | None, kind: str, reflected: bool, compare_to: object
) -> bool:
    """Autogenerate's filter: leave out indexes on expressions, and Procrastinate's tables.

    PostgreSQL stores an expression in its own words (casts added, parentheses moved), so
    the stored index never reads as the model's and every check would report a change; SQLite
    cannot report them at all. Their migrations are written by hand. Procrastinate's tables
    (with worker processes) are its schema, applied whole by a migration, not models.
    """
    if kind == "table" and reflected and (name or "").startswith(PROCRASTINATE_PREFIX):
        return False
    return not (kind == "index" and name in _expression_indexes())


def _expression_indexes() -> set[str]:
    return {
        str(index.name)
        for table in target_metadata().tables.values()
        for index in table.indexes
        if any(not isinstance(part, Column) for part in index.expressions)
    }


def schema_problem(connection: Connection) -> str | None:
    """Why the schema does not fit this code, or None when it is at head."""
    # Readiness asks on every probe: the version table, once seen committed, is not looked
    # up in the catalog again.
    versioned = tables_exist(connection.engine, VERSION_TABLE)
    current, head = _stored_revision(connection) if versioned else None, head_revision()
    if current == head:
        return None
    if current is None:
        return (
            "the database has no schema yet: the scheduler creates it when it starts, "
            f"or run `{COMMAND} db upgrade`"
        )
    if current not in revision_chain():
        return (
            f"the database is at revision {current}, which this code does not know: "
            "newer code has migrated it"
        )
    return (
        f"the database is at revision {current}, this code needs {head}: run `{COMMAND} db upgrade`"
    )


def require_current_schema(engine: Engine) -> None:
    """Raise SchemaError unless the database is at head."""
    with engine.connect() as connection:
        problem = schema_problem(connection)
    if problem:
        raise SchemaError(problem)
