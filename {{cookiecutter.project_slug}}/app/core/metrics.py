"""What the API's and the scheduler's metrics have in common: how a registry is made."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

# Each counter and histogram would also carry a `_created` sample per label set: one more
# series for every job and route that no alert, panel or query here reads.
disable_created_metrics()  # type: ignore[no-untyped-call]


def new_registry() -> CollectorRegistry:
    """A registry of the process's own metrics, with its CPU, memory and Python figures."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry
