"""MkDocs hook: the configuration page's table, built from the settings class.

The page holds the marker below; this hook replaces it, so the reference can never list a
setting the code does not have, or miss one it has.
"""

from __future__ import annotations

from typing import Any

from app import ENV_PREFIX
from app.core.env_example import default_text, type_text
from app.core.settings import Settings

MARKER = "<!-- settings-reference -->"


def settings_table() -> str:
    """One row per setting: its environment variable, type, default and meaning."""
    rows = ["| Variable | Type | Default | Meaning |", "| --- | --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = default_text(field)
        rows.append(
            f"| `{ENV_PREFIX}{name.upper()}` | {type_text(field.annotation)} | "
            f"{f'`{default}`' if default else '(none)'} | {field.description} |"
        )
    return "\n".join(rows)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Put the table where the marker is."""
    return markdown.replace(MARKER, settings_table()) if MARKER in markdown else markdown
