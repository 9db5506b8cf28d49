"""Renders `.env.example` from the settings class, so the file cannot drift from the code.

`make env-example` rewrites the file; a test fails when it is out of date.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from app import ENV_PREFIX, PROJECT_NAME
from app.core.settings import Settings


def default_text(field: FieldInfo) -> str:
    """A setting's default as it would be written in `.env`; empty when there is none."""
    return "" if field.default in (None, PydanticUndefined) else str(field.default)


def type_text(annotation: Any) -> str:
    """A setting's type in words: `INFO, DEBUG`-style choices, or the type's name."""
    origin = get_origin(annotation)
    if origin is Literal:
        return ", ".join(f"`{choice}`" for choice in get_args(annotation))
    if origin in (Union, types.UnionType):
        names = [type_text(arg) for arg in get_args(annotation) if arg is not type(None)]
        return " or ".join(names) + " (optional)"
    name: str = getattr(annotation, "__name__", str(annotation))
    return {"SecretStr": "secret", "Path": "path", "str": "text"}.get(name, name)


def render() -> str:
    """Every setting as a commented `NAME=default` line under its description."""
    lines = [
        f"# Settings of {PROJECT_NAME}. Copy to .env and uncomment what you change.",
        "# Each value shown is the default.",
    ]
    for name, field in Settings.model_fields.items():
        lines += [
            "",
            f"# {field.description}",
            f"# {ENV_PREFIX}{name.upper()}={default_text(field)}",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    Path(".env.example").write_text(render(), encoding="utf-8")
