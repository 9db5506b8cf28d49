"""Renders `.env.example` from the settings class, so the file cannot drift from the code.

`make env-example` rewrites the file; a test fails when it is out of date.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_core import PydanticUndefined

from app import PROJECT_NAME
from app.core.settings import ENV_PREFIX, Settings


def render() -> str:
    """Every setting as a commented `NAME=default` line under its description."""
    lines = [
        f"# Settings of {PROJECT_NAME}. Copy to .env and uncomment what you change.",
        "# Each value shown is the default.",
    ]
    for name, field in Settings.model_fields.items():
        default = "" if field.default in (None, PydanticUndefined) else field.default
        lines += ["", f"# {field.description}", f"# {ENV_PREFIX}{name.upper()}={default}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    Path(".env.example").write_text(render(), encoding="utf-8")
