"""A limit of concurrent runs per job row, and the functions workers start and end runs with.

`max_instances` is the job's limit on runs going at once, kept on its row (from the code for
a code job) so that every worker process enforces the same one, whatever code it runs.

On PostgreSQL, `worker_start_runs` and `worker_end_runs` each take a batch of runs: a worker
writes every start (or end) that is ready in one call, one transaction, instead of one
transaction of several statements per run. PL/pgSQL, because each statement in a function
sees what committed before it began: a start counts the runs going with the job's row locked,
as other workers' starts committed them, which one statement's single snapshot would not.

Revision ID: 0010
Revises: 0009
Created: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "jobs", sa.Column("max_instances", sa.Integer(), nullable=False, server_default="1")
    )
    # What a start counts: the runs going of one job, found among the few running, not
    # among all the job's runs.
    op.create_index(
        "ix_job_executions_running",
        "job_executions",
        ["job_id"],
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_START_RUNS)
        op.execute(_END_RUNS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION worker_end_runs")
        op.execute("DROP FUNCTION worker_start_runs")
    op.drop_index("ix_job_executions_running", "job_executions")
    op.drop_column("jobs", "max_instances")


# Each run's outcome: 'started' (with its job's row, `id` on), 'gone' (its job was deleted),
# 'busy' (its job has max_instances runs going) or 'waits_no_more' (cancelled or ended
# meanwhile); `id` is the run's job's in each.
# The jobs' rows are locked first, in id order, so that two workers' batches never wait on
# each other in a circle; they stay locked until the batch commits.
_START_RUNS = """
CREATE FUNCTION worker_start_runs(p_ids text[], p_worker_id text, p_now timestamp)
RETURNS TABLE (
    execution_id text, outcome text, attempt integer, trigger_kind text, input text,
    id text, origin text, name text, function text, args text, queue text,
    priority integer, schedule text, code_schedule text, paused boolean,
    next_run_at timestamp, version integer
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_id text;
    v_job_id text;
    v_status text;
    v_limit integer;
    v_going integer;
    v_outcome text;
BEGIN
    PERFORM 1 FROM jobs j
        WHERE j.id IN (SELECT e.job_id FROM job_executions e WHERE e.id = ANY(p_ids))
        ORDER BY j.id FOR UPDATE OF j;
    FOREACH v_id IN ARRAY p_ids LOOP
        SELECT e.job_id::text, e.status::text INTO v_job_id, v_status
            FROM job_executions e WHERE e.id = v_id;
        SELECT j.max_instances INTO v_limit FROM jobs j WHERE j.id = v_job_id;
        -- Its own statement, so that the count sees the starts other workers committed
        -- while this batch waited for the job's row.
        SELECT count(*) INTO v_going FROM job_executions e
            WHERE e.job_id = v_job_id AND e.status = 'running';
        IF v_status IS DISTINCT FROM 'pending' THEN
            v_outcome := 'waits_no_more';
        ELSIF v_limit IS NULL THEN
            v_outcome := 'gone';
        ELSIF v_going >= v_limit THEN
            v_outcome := 'busy';
        ELSE
            v_outcome := 'started';
            UPDATE job_executions e
                SET status = 'running', started_at = p_now, worker_id = p_worker_id
                WHERE e.id = v_id;
        END IF;
        -- The run's and the job's columns only for a start; NULL otherwise.
        RETURN QUERY SELECT v_id, v_outcome, e.attempt, e.trigger_kind::text, e.input,
                v_job_id, j.origin::text, j.name::text, j.function::text, j.args,
                j.queue::text, j.priority, j.schedule, j.code_schedule, j.paused,
                j.next_run_at, j.version
            FROM (SELECT 1) AS one
            LEFT JOIN job_executions e ON e.id = v_id AND v_outcome = 'started'
            LEFT JOIN jobs j ON j.id = e.job_id;
    END LOOP;
END
$$
"""

# Each end is written only while the run is still in the status it is ended from ('running',
# or 'pending' for a run that never started); `streak` is the job's failure streak after a
# started run's end, NULL when the end was not written. Given in job id order by the caller,
# so the jobs' rows are locked in that order.
_END_RUNS = """
CREATE FUNCTION worker_end_runs(
    p_ids text[], p_from text[], p_statuses text[], p_finished timestamp[],
    p_durations double precision[], p_error_types text[], p_error_messages text[],
    p_tracebacks text[], p_worker_id text
)
RETURNS TABLE (execution_id text, streak integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_job_id text;
    v_streak integer;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        UPDATE job_executions e SET
                status = p_statuses[i], finished_at = p_finished[i],
                duration_ms = p_durations[i], error_type = p_error_types[i],
                error_message = p_error_messages[i], traceback = p_tracebacks[i],
                worker_id = p_worker_id
            WHERE e.id = p_ids[i] AND e.status = p_from[i]
            RETURNING e.job_id::text INTO v_job_id;
        IF NOT FOUND THEN
            RETURN QUERY SELECT p_ids[i], NULL::integer;
            CONTINUE;
        END IF;
        v_streak := 0;
        IF p_from[i] = 'running' AND p_statuses[i] = 'succeeded' THEN
            UPDATE jobs j SET consecutive_failures = 0
                WHERE j.id = v_job_id AND j.consecutive_failures <> 0;
        ELSIF p_from[i] = 'running' AND p_statuses[i] IN ('failed', 'timed_out') THEN
            UPDATE jobs j SET consecutive_failures = j.consecutive_failures + 1
                WHERE j.id = v_job_id RETURNING j.consecutive_failures INTO v_streak;
        END IF;
        RETURN QUERY SELECT p_ids[i], coalesce(v_streak, 0);
    END LOOP;
END
$$
"""
