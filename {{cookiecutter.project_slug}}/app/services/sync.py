"""The external sync: fetch a JSON document from an upstream service and keep a snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.core.db import utcnow
from app.core.errors import JobError, error_text
from app.core.files import write_json_atomically
from app.core.redact import redact_urls
from app.core.settings import get_settings


class SyncError(JobError):
    """The upstream could not be reached or did not answer with JSON."""


@dataclass(frozen=True)
class SyncResult:
    """Where the snapshot went and what came back."""

    url: str
    status_code: int
    size_bytes: int
    snapshot: Path


async def sync_external_data(
    url: str | None = None,
    *,
    timeout: float | None = None,
    snapshot_dir: Path | None = None,
) -> SyncResult:
    """GET `url`, check the reply is JSON, and store it with the time it was fetched."""
    # Imported here: the CLI and the API load the job list, which names this function, on
    # every call, and httpx costs them about 40 ms they would not use.
    import httpx

    settings = get_settings()
    url = url or settings.sync_endpoint
    snapshot_dir = snapshot_dir or settings.data_dir / "sync"
    timeout = timeout or settings.sync_timeout_seconds
    async with httpx.AsyncClient(timeout=timeout) as http:
        try:
            response = await http.get(url)
            response.raise_for_status()
            payload = response.json()
        except httpx.HTTPStatusError as error:
            raise SyncError(f"{url} answered {error.response.status_code}") from None
        except httpx.HTTPError as error:
            raise SyncError(f"cannot reach {url}: {error_text(error)}") from None
        except ValueError:
            raise SyncError(f"{url} did not answer with JSON") from None
    snapshot = snapshot_dir / "latest.json"
    write_json_atomically(
        snapshot, {"url": redact_urls(url), "fetched_at": utcnow().isoformat(), "data": payload}
    )
    return SyncResult(
        url=url,
        status_code=response.status_code,
        size_bytes=len(response.content),
        snapshot=snapshot,
    )
