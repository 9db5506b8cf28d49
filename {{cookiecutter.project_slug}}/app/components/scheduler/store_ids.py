"""How planned one-time runs (run now, retries) are named in APScheduler's store.

A planned run is stored beside its job under the job's id, a mark, and the execution's id, so
the regular schedule stays where it is. Readers that only list jobs import this alone.
"""

from __future__ import annotations

RUN_MARK = "@run-"


def base_job_id(store_id: str) -> str:
    """The job a stored APScheduler job belongs to (planned runs carry a suffix)."""
    return store_id.split(RUN_MARK, 1)[0]


def planned_run_id(job_id: str, execution_id: str) -> str:
    """The store id of a one-time run planned for `execution_id` (a retry, a manual run)."""
    return f"{job_id}{RUN_MARK}{execution_id}"
