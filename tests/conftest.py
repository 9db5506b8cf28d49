"""Shared helpers: generate a project from this template, and time the slow steps."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
DEFAULTS: dict[str, Any] = json.loads((TEMPLATE / "cookiecutter.json").read_text())

TIMINGS: list[tuple[str, float]] = []
FIGURES: list[tuple[str, str]] = []


def generate(output_dir: Path, **answers: str) -> Path:
    """Generate a project with `answers` over the defaults; returns its directory."""
    return Path(
        cookiecutter(
            str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(output_dir)
        )
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def interrupt_session(process: subprocess.Popen[Any], timeout: float = 30) -> None:
    """Ctrl-C to the process's whole session, as a terminal sends it; SIGKILL if it lingers."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def record_time(label: str, seconds: float) -> None:
    """Keep a measured figure; they are printed at the end of the run."""
    TIMINGS.append((label, seconds))


def record_figure(label: str, value: str) -> None:
    """Keep a measured figure that is not a time (a size, a count); printed at the end."""
    FIGURES.append((label, value))


@contextmanager
def timed(label: str) -> Iterator[None]:
    """Record how long the block took."""
    start = time.perf_counter()
    yield
    record_time(label, time.perf_counter() - start)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.section("measured times")
        for label, seconds in TIMINGS:
            terminalreporter.write_line(f"{seconds:8.1f} s  {label}")
    if FIGURES:
        terminalreporter.section("measured figures")
        for label, value in FIGURES:
            terminalreporter.write_line(f"{value:>12}  {label}")
