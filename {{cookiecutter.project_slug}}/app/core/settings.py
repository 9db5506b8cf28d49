"""Service settings: read once from the environment (and `.env`), validated at start-up.

Every variable carries the project prefix, for example
`{{ cookiecutter.__env_prefix }}DATABASE_URL`.
Relative paths (the SQLite file, the data directory) are relative to the working directory,
which is the project root for `make` targets and `/app` in the container.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app import ENV_PREFIX
from app.core.schedules import parse_timezone


class Settings(BaseSettings):
    """All configuration of the API, the scheduler and the CLI."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        # `NAME=` means "use the default", as for a line left commented out.
        env_ignore_empty=True,
        extra="ignore",
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Minimum level of log records."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: readable on a terminal, JSON lines otherwise."
    )
    database_url: str = Field(
        "{{ cookiecutter.__database_url }}",
        description="SQLAlchemy URL of the database shared by the API, the scheduler and the CLI.",
    )
    migrate_on_start: bool = Field(
        True,
        description="The scheduler applies database migrations when it starts; turn off to "
        "run `db upgrade` as a release step instead.",
    )
    timezone: str = Field(
        "{{ cookiecutter.timezone }}",
        description="IANA time zone in which cron schedules are read unless a job names its own.",
    )
    data_dir: Path = Field(Path("data"), description="Directory for the files jobs write.")

    api_host: str = Field("127.0.0.1", description="Interface the API listens on.")
    api_port: int = Field(8000, ge=1, le=65535, description="Port the API listens on.")

    api_token: SecretStr | None = Field(
        None,
        description="Bearer token of the management API (/api); without it /api answers 503. "
        "Project generation writes a random one into .env.",
    )
    api_read_token: SecretStr | None = Field(
        None,
        description="Optional read-only bearer token: it reads everything the API serves and "
        "is refused every change with 403. Must differ from API_TOKEN.",
    )
    dashboard_enabled: bool = Field(
        True,
        description="Serve the web dashboard at /dashboard; it signs in with API_TOKEN, or "
        "with API_READ_TOKEN for a session that may only watch.",
    )
    dashboard_session_hours: float = Field(
        12.0,
        gt=0,
        le=720,
        description="How long a dashboard sign-in lasts; then the dashboard asks for the "
        "token again.",
    )
    api_max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        le=64 * 1_048_576,
        description="Largest request body the API accepts; a larger one is refused with 413 "
        "as it arrives, before it is parsed or the token is checked.",
    )
    runtime_jobs_max: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="Most runtime jobs (added through the API or the CLI) stored at once; "
        "adding one more is refused with 422.",
    )
    runtime_job_min_interval_seconds: float = Field(
        1.0,
        gt=0,
        le=86_400,
        description="Shortest interval a runtime job may repeat at; a shorter one is refused "
        "with 422.",
    )
    metrics_enabled: bool = Field(
        True,
        description="Serve Prometheus metrics: the API at /metrics, the scheduler on a port of "
        "its own.",
    )
    scheduler_metrics_host: str = Field(
        "127.0.0.1", description="Interface the scheduler's metrics (/metrics) listen on."
    )
    scheduler_metrics_port: int = Field(
        9464,
        ge=0,
        le=65535,
        description="Port of the scheduler's metrics; each scheduler on one host needs its own "
        "(0 lets the system pick a free one, which the scheduler logs).",
    )
    command_poll_seconds: float = Field(
        0.025,
        gt=0,
        le=5,
        description="How often the scheduler looks for commands on SQLite (PostgreSQL "
        "notifies it at once).",
    )
    command_wait_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description="How long the API and the CLI wait for the scheduler to apply a change.",
    )

    heartbeat_interval_seconds: float = Field(
        5.0, gt=0, description="How often the scheduler records that it is alive."
    )
    heartbeat_stale_after_seconds: float = Field(
        15.0, gt=0, description="Heartbeat age after which the scheduler counts as down."
    )
    leader_lease_seconds: float = Field(
        10.0,
        ge=1,
        le=300,
        description="How long a scheduler leads without renewing; it renews every third of "
        "this. A standby takes over when it ends, or at once when the leader's process or "
        "database session ends.",
    )
    standby_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="How often a standby scheduler checks whether it can lead."
    )
    timer_horizon_seconds: float = Field(
        600.0,
        ge=60,
        le=86400,
        description="How far ahead the leader holds runtime jobs in memory. Jobs due later wait "
        "in the database until they come within it, so the leader's memory grows with the jobs "
        "due soon, not with every job stored.",
    )
    misfire_grace_time_seconds: int = Field(
        3600,
        ge=1,
        description="How late a run may still start after downtime; later ones are recorded as "
        "missed and not run.",
    )

    shutdown_timeout_seconds: float = Field(
        8.0,
        ge=0,
        description="How long a stop waits for running jobs; keep it below the container's "
        "stop grace period (10 s by default).",
    )
    record_retention_days: int = Field(
        30,
        ge=1,
        description="Execution history and heartbeats older than this are deleted by the "
        "cleanup job.",
    )
    alert_after_consecutive_failures: int = Field(
        3, ge=1, description="Alert when a job fails this many times in a row (and each multiple)."
    )
    alert_webhook_url: str | None = Field(
        None, description="POST alerts as JSON here; without it they are logged."
    )
    disk_free_warning_percent: float = Field(
        10.0, ge=0, le=100, description="Maintenance warns when free disk space drops below this."
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        parse_timezone(value)
        return value

    @field_validator("api_token", "api_read_token")
    @classmethod
    def _long_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError(
                "must be at least 16 characters; make one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        try:
            backend = make_url(value).get_backend_name()
        except ArgumentError:
            raise ValueError(f"{value!r} is not a database URL") from None
        if backend not in {"sqlite", "postgresql"}:
            raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
        return value

    @field_validator("alert_webhook_url"{% if cookiecutter.include_example_jobs == "yes" %}, "sync_url"{% endif %})
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _stale_after_exceeds_interval(self) -> Settings:
        if self.heartbeat_stale_after_seconds <= self.heartbeat_interval_seconds:
            raise ValueError(
                "heartbeat_stale_after_seconds must be larger than heartbeat_interval_seconds"
            )
        return self

    @model_validator(mode="after")
    def _read_token_differs(self) -> Settings:
        if (
            self.api_read_token is not None
            and self.api_token is not None
            and self.api_read_token.get_secret_value() == self.api_token.get_secret_value()
        ):
            raise ValueError(
                "api_read_token must differ from api_token: the same token cannot be both "
                "read-only and allowed to change"
            )
        return self

    @model_validator(mode="after")
    def _standby_polls_within_lease(self) -> Settings:
        if self.standby_poll_seconds >= self.leader_lease_seconds:
            raise ValueError("standby_poll_seconds must be smaller than leader_lease_seconds")
        return self

    @property
    def misfire_grace_time(self) -> timedelta:
        """The default misfire grace time of jobs."""
        return timedelta(seconds=self.misfire_grace_time_seconds)

    @property
    def zone(self) -> ZoneInfo:
        """The default time zone as an object."""
        return parse_timezone(self.timezone)
{%- if cookiecutter.include_example_jobs == "yes" %}

    # Settings of the example jobs.
    temp_dir: Path | None = Field(
        None, description="Directory the temp-file cleanup empties; by default DATA_DIR/tmp."
    )
    temp_file_max_age_hours: float = Field(
        24.0, gt=0, description="Temporary files older than this are deleted."
    )
    sync_url: str | None = Field(
        None,
        description="JSON endpoint the external sync job fetches; by default this service's "
        "own /health.",
    )
    sync_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one sync request.")

    @property
    def temp_path(self) -> Path:
        """The directory the temp-file cleanup empties."""
        return self.temp_dir or self.data_dir / "tmp"

    @property
    def sync_endpoint(self) -> str:
        """The URL the external sync job fetches."""
        return self.sync_url or f"http://127.0.0.1:{self.api_port}/health"
{%- endif %}
{%- if cookiecutter.workers == "procrastinate" %}

    # Worker processes (Procrastinate); see docs/workers.md.
    workers_enabled: bool = Field(
        True,
        description="Run jobs on worker processes (the worker command); off, the scheduler "
        "runs them itself.",
    )
    worker_concurrency_critical: int = Field(
        6, ge=1, description="Runs of the critical queue one worker process runs at once."
    )
    worker_concurrency_default: int = Field(
        3, ge=1, description="Runs of the default queue one worker process runs at once."
    )
    worker_concurrency_low: int = Field(
        1, ge=1, description="Runs of the low queue one worker process runs at once."
    )
    worker_poll_seconds: float = Field(
        1.0,
        gt=0,
        description="How often an idle worker looks for runs besides being notified of them "
        "(the notification is lost while the database restarts).",
    )
    worker_metrics_host: str = Field(
        "127.0.0.1", description="Interface a worker's metrics (/metrics) listen on."
    )
    worker_metrics_port: int = Field(
        9465,
        ge=0,
        le=65535,
        description="Port of a worker's metrics; each worker on one host needs its own (0 lets "
        "the system pick a free one, which the worker logs).",
    )

    @model_validator(mode="after")
    def _workers_need_postgresql(self) -> Settings:
        if self.workers_enabled and make_url(self.database_url).get_backend_name() != "postgresql":
            raise ValueError(
                "workers_enabled needs a PostgreSQL database_url: the workers' queue is kept "
                "there (set WORKERS_ENABLED=false to run the jobs in the scheduler)"
            )
        return self

    def worker_concurrency(self, queue: str) -> int:
        """How many runs of `queue` one worker process runs at once."""
        return int(getattr(self, f"worker_concurrency_{queue}"))
{%- endif %}

    @property
    def runs_on_workers(self) -> bool:
        """Whether the runs go to worker processes, so the workers' health is the service's."""
        return {% if cookiecutter.workers == "procrastinate" %}self.workers_enabled{% else %}False{% endif %}


class SettingsError(Exception):
    """Settings could not be loaded; the message lists every invalid variable."""


def describe_validation_error(error: ValidationError) -> str:
    """One line per invalid setting, named by its environment variable."""
    lines = ["invalid settings:"]
    for issue in error.errors():
        field = ".".join(str(part) for part in issue["loc"])
        variable = f"{ENV_PREFIX}{field.upper()}" if field else "(settings)"
        message = issue["msg"].removeprefix("Value error, ")
        lines.append(f"  {variable}: {message}")
    return "\n".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded on first use."""
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(describe_validation_error(error)) from None
