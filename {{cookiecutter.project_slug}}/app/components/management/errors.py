"""What a management request can fail with, shared by the API, the CLI and both managers.

Kept apart from the managers so a caller can catch these without loading the database layer.
"""

from __future__ import annotations


class ManagementError(Exception):
    """A request that cannot be served; `status_code` is its HTTP meaning."""

    status_code = 400


class NotFound(ManagementError):
    """No such job or execution."""

    status_code = 404


class Conflict(ManagementError):
    """The request does not fit the current state; the message says why."""

    status_code = 409


class NotReady(ManagementError):
    """The database is not set up yet: no scheduler has started on it."""

    status_code = 503


class InvalidInput(ManagementError):
    """Input that failed validation; `problems` maps each field path to what is wrong."""

    status_code = 422

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in problems.items()))
        self.problems = problems
