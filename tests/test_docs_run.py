"""Slow tier: the commands and code in both documentation sites run as written.

Blocks marked `service` start in the background (`make run`, `make demo`) and the check waits
until the service is healthy; blocks marked `run` then run in page order, shell blocks in
bash with `set -euo pipefail`, Python blocks in the project's environment. The API listens on
a free port, written into the commands in place of 8000, and the scheduler's metrics on another,
in place of 9464. Blocks marked `docker` and `update` are run by tests/test_docker.py and
tests/test_template_update.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import TEMPLATE, free_port, generate, interrupt_session, timed
from tests.doc_blocks import Block, blocks, nav_pages

pytestmark = pytest.mark.slow

DEMO_SLUG = "my-scheduler-service"


# The documented ports, and the settings that move them.
DOCUMENTED_PORTS = {8000: "API_PORT", 9464: "SCHEDULER_METRICS_PORT"}


def environment(ports: dict[int, int], slugs: list[str]) -> dict[str, str]:
    """This run's environment without its virtualenv; each project's ports as `ports` moves
    the documented ones."""
    env = {
        k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}
    }
    settings = {
        f"{slug.upper().replace('-', '_')}_{DOCUMENTED_PORTS[documented]}": str(port)
        for slug in slugs
        for documented, port in ports.items()
    }
    return {**env, "COLUMNS": "200", "NO_MKDOCS_2_WARNING": "1", **settings}


@contextmanager
def service(block: Block, cwd: Path, env: dict[str, str], port: int) -> Iterator[None]:
    """Start the block in a session of its own, wait until the API on `port` answers ready
    (the API and the scheduler are up); stop it with Ctrl-C as a terminal would."""
    log = (Path(tempfile.mkdtemp()) / f"service-{block.page.stem}-{block.line}.log").open("w")
    process = subprocess.Popen(
        ["bash", "-c", block.code],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not ready(port):
            assert process.poll() is None, f"{block.where} exited: {Path(log.name).read_text()}"
            assert time.monotonic() < deadline, f"{block.where} never became healthy"
            time.sleep(0.25)
        yield
    finally:
        interrupt_session(process)
        log.close()


def ready(port: int) -> bool:
    """Whether `/health/ready` answers 200 on `port`."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:  # refused, or an HTTP error status such as 503
        return False


def run_block(block: Block, cwd: Path, env: dict[str, str], ports: dict[int, int]) -> None:
    code = block.code
    for documented, port in ports.items():
        code = code.replace(f"127.0.0.1:{documented}", f"127.0.0.1:{port}")
    if block.language in {"python", "py"}:
        command = ["uv", "run", "--frozen", "python", "-"]
    else:
        command = ["bash", "-euo", "pipefail", "-s"]
    with timed(f"docs: {block.where}"):
        result = subprocess.run(
            command, input=code, cwd=cwd, env=env, capture_output=True, text=True, timeout=900
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{block.where} failed:\n{code}\n{output[-4000:]}"
    assert "Traceback" not in output, f"{block.where}:\n{output[-4000:]}"


def run_pages(root: Path, slugs: list[str]) -> int:
    """Run the `service` and `run` blocks of the site at `root` in order; returns how many
    `run` blocks ran. Each service runs until the next one starts, or to the end."""
    ports = {documented: free_port() for documented in DOCUMENTED_PORTS}
    env = environment(ports, slugs)
    ran = 0
    with contextlib.ExitStack() as running:
        for block in (b for page in nav_pages(root) for b in blocks(page)):
            if block.kind == "service":
                running.close()
                running.enter_context(service(block, root, env, ports[8000]))
            elif block.kind == "run":
                run_block(block, root, env, ports)
                ran += 1
    return ran


def test_generated_project_docs_run_as_written(tmp_path_factory: pytest.TempPathFactory) -> None:
    project = generate(tmp_path_factory.mktemp("docs-run"))
    assert run_pages(project, [project.name]) >= 8


def test_template_docs_run_as_written() -> None:
    made = [TEMPLATE / "build" / name for name in ("example", "options-example")]
    for path in made:
        shutil.rmtree(path, ignore_errors=True)
    try:
        ran = run_pages(TEMPLATE, [DEMO_SLUG, "acme-billing"])
        assert (TEMPLATE / "build" / "example" / "acme-billing" / ".cruft.json").exists()
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
    assert ran >= 3
