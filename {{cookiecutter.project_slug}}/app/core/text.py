"""Text from input, made safe to print: control characters become visible escapes.

A job's name, a run's error or an argument can hold a newline that would forge a log line
or a table row, or a terminal escape that moves the cursor or recolours what follows.
"""

from __future__ import annotations

_ESCAPES = {code: f"\\x{code:02x}" for code in [*range(32), 127]} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}
_ESCAPES_BUT_NEWLINES = {code: escape for code, escape in _ESCAPES.items() if code != ord("\n")}


def one_line(text: object) -> str:
    """`text` with every control character escaped, so it prints as one line."""
    return str(text).translate(_ESCAPES)


def printable_lines(text: str) -> str:
    """`text` with its lines kept and every other control character escaped."""
    return text.translate(_ESCAPES_BUT_NEWLINES)
