"""File helpers shared by jobs that write results to disk."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from app.core.db import PRIVATE_DIR_MODE


def write_json_atomically(path: Path, payload: Any) -> None:
    """Write JSON so that readers see either the old file or the whole new one."""
    path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(partial, path)
