"""The schema comes from the migrations, and the migrations match the models.

Every test here starts from an empty database (SQLite, or a PostgreSQL schema of its own).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, inspect, text
from typer.testing import CliRunner

from app import COMMAND, ENV_PREFIX
from app.cli.main import app
from app.core import migrations
from app.core.migrations import (
    PROCRASTINATE_PREFIX,
    SchemaError,
    alembic_config,
    current_revision,
    head_revision,
    include_object,
    revision_chain,
    schema_problem,
    target_metadata,
    upgrade,
)

PROJECT_TABLES = set(target_metadata().tables)


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def project_tables(engine: Engine) -> set[str]:
    """The tables but Procrastinate's (with worker processes), which are its schema."""
    return {name for name in table_names(engine) if not name.startswith(PROCRASTINATE_PREFIX)}


def differences(engine: Engine) -> list[Any]:
    """What `alembic check` would report: the models against the migrated database."""
    models = MetaData()
    for table in target_metadata().tables.values():
        table.to_metadata(models)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": include_object}
        )
        return list(compare_metadata(context, models))


def test_upgrade_creates_every_table_the_models_define(fresh_engine: Engine) -> None:
    assert table_names(fresh_engine) == set()
    assert upgrade(fresh_engine) == (None, head_revision())
    assert project_tables(fresh_engine) == PROJECT_TABLES
    assert differences(fresh_engine) == []


def test_upgrade_creates_the_indexes_on_expressions(fresh_engine: Engine) -> None:
    # The comparison above leaves these out (it cannot read them back): look them up by name.
    on_expressions = {
        index.name
        for table in target_metadata().tables.values()
        for index in table.indexes
        if not include_object(index, index.name, "index", False, None)
    }
    assert "ix_jobs_listing" in on_expressions
    upgrade(fresh_engine)
    listed = (
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        if fresh_engine.dialect.name == "postgresql"
        else "SELECT name FROM sqlite_master WHERE type = 'index'"
    )
    with fresh_engine.connect() as connection:
        present = set(connection.scalars(text(listed)))
    assert on_expressions <= present


def test_models_with_a_change_the_migrations_lack_are_caught(fresh_engine: Engine) -> None:
    # The check above must be able to fail: drop an index the models declare.
    upgrade(fresh_engine)
    with fresh_engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_job_executions_status_scheduled"))
    found = differences(fresh_engine)
    assert [difference[0] for difference in found] == ["add_index"]


def test_upgrade_twice_changes_nothing(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)
    assert upgrade(fresh_engine) == (head_revision(), head_revision())


def test_downgrade_to_base_then_up_again(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)
    with fresh_engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    # Procrastinate's tables too, where a migration made them.
    assert table_names(fresh_engine) == set()
    upgrade(fresh_engine)
    assert project_tables(fresh_engine) == PROJECT_TABLES


def test_tables_made_without_migrations_are_refused_until_stamped(fresh_engine: Engine) -> None:
    target_metadata().create_all(fresh_engine)
    with pytest.raises(SchemaError, match=r"no migration record.*db stamp head"):
        upgrade(fresh_engine)

    code, output = invoke("db", "stamp", "head", "--yes")
    assert code == 0, output
    assert upgrade(fresh_engine) == (head_revision(), head_revision())


def test_schema_problem_names_what_to_do(fresh_engine: Engine) -> None:
    with fresh_engine.connect() as connection:
        assert "no schema yet" in str(schema_problem(connection))
    upgrade(fresh_engine)
    with fresh_engine.begin() as connection:
        assert schema_problem(connection) is None
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    with fresh_engine.connect() as connection:
        assert "f00d, which this code does not know" in str(schema_problem(connection))


def test_revisions_read_from_the_files_are_alembics(fresh_engine: Engine) -> None:
    """The health checks read revision ids without Alembic; Alembic must agree with them."""
    script = ScriptDirectory.from_config(alembic_config())
    assert head_revision() == script.get_current_head()
    assert revision_chain() == {
        revision.revision: revision._normalized_down_revisions
        for revision in script.walk_revisions()
    }
    upgrade(fresh_engine)
    with fresh_engine.connect() as connection:
        assert (
            current_revision(connection)
            == MigrationContext.configure(connection).get_current_revision()
        )


def test_two_heads_are_refused_with_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "versions").mkdir()
    for name, parent in (("a1", None), ("b1", "a1"), ("b2", "a1")):
        (tmp_path / "versions" / f"{name}.py").write_text(
            f"revision: str = {name!r}\ndown_revision: str | None = {parent!r}\n"
        )
    monkeypatch.setattr(migrations, "MIGRATIONS_DIR", tmp_path)
    revision_chain.cache_clear()
    head_revision.cache_clear()
    try:
        assert revision_chain() == {"a1": (), "b1": ("a1",), "b2": ("a1",)}
        with pytest.raises(SchemaError, match=r"2 heads \(b1, b2\).*alembic merge heads"):
            head_revision()
    finally:
        revision_chain.cache_clear()
        head_revision.cache_clear()


def test_concurrent_upgrades_apply_the_migrations_once(fresh_engine: Engine) -> None:
    results: list[tuple[str | None, str | None]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(upgrade(fresh_engine))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    head = head_revision()
    assert sorted(results, key=str) == sorted([(None, head)] + [(head, head)] * 3, key=str)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_cli_reports_and_applies_the_schema(fresh_engine: Engine) -> None:
    assert table_names(fresh_engine) == set()
    code, output = invoke("db", "current")
    assert code == 1
    assert "Revision: none" in output
    assert f"run `{COMMAND} db upgrade`" in output

    code, output = invoke("db", "upgrade")
    assert code == 0, output
    assert f"None -> {head_revision()}" in output
    code, output = invoke("db", "current")
    assert code == 0
    assert "Up to date." in output
    code, output = invoke("db", "upgrade")
    assert "nothing to do" in output

    code, output = invoke("db", "upgrade", "nonesuch")
    assert code == 1
    assert "cannot upgrade" in output
    assert "Traceback" not in output


def test_scheduler_without_migrate_on_start_refuses_an_old_schema(
    env: dict[str, str], fresh_engine: Engine
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.entrypoints.scheduler"],
        env={**env, f"{ENV_PREFIX}MIGRATE_ON_START": "false"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot start: the database has no schema yet" in result.stderr
    assert "Traceback" not in result.stderr
    with fresh_engine.connect() as connection:
        assert current_revision(connection) is None
