"""What logs and statuses show of an error: one line, never nothing."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from app.core.text import first_line


def test_an_error_without_a_message_shows_its_type() -> None:
    assert first_line(TimeoutError()) == "TimeoutError"
    assert first_line(ValueError("\n  \n")) == "ValueError"


def test_the_first_line_that_says_something_is_shown() -> None:
    assert first_line(RuntimeError("\n  upstream is down  \nretry later")) == "upstream is down"


def test_a_database_error_shows_the_driver_message_not_the_statement() -> None:
    engine = create_engine("sqlite://")
    with pytest.raises(OperationalError) as caught, engine.connect() as connection:
        connection.execute(text("SELECT * FROM no_such_table"))
    engine.dispose()
    assert isinstance(caught.value.orig, sqlite3.OperationalError)
    assert "[SQL:" in str(caught.value)
    assert first_line(caught.value) == "no such table: no_such_table"
