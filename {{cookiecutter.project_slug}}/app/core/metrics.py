"""What the processes' metrics have in common: how a registry is made, and served."""

from __future__ import annotations

import logging

from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
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


class MetricsAddressUnusable(Exception):
    """The metrics server could not listen on its address; `error` says why."""

    def __init__(self, host: str, port: int, error: OSError) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {error}")
        self.host, self.port, self.error = host, port, error


def serve(registry: CollectorRegistry, host: str, port: int, log: logging.Logger) -> int:
    """Serve `registry` at `/metrics` from a thread of its own, and log where; returns the
    port (0 picks a free one)."""
    try:
        server, _ = start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        raise MetricsAddressUnusable(host, port, error) from None
    port = int(server.server_port)
    shown = f"[{host}]" if ":" in host else host
    log.info("metrics served", extra={"url": f"http://{shown}:{port}/metrics"})
    return port
