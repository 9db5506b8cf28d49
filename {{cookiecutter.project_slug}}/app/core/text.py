"""Text from input, made safe to print: characters that control the output become escapes.

A job's name, a run's error or an argument can hold a newline that would forge a log line
or a table row, a terminal escape (C0 or C1) that moves the cursor or recolours what follows,
or a bidirectional override that shows text in another order than it is.
"""

from __future__ import annotations

import re

# Control characters (C0, DEL, C1), zero-width and bidirectional formatting characters, and
# the line and paragraph separators.
CONTROL_CHARACTERS = "\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff"
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")
_CONTROL_BUT_NEWLINES = re.compile(f"(?!\n)[{CONTROL_CHARACTERS}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    character = match.group()
    if character in _NAMED:
        return _NAMED[character]
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: object) -> str:
    """`text` with every control character escaped, so it prints as one line."""
    return _CONTROL.sub(_escape, str(text))


def printable_lines(text: str) -> str:
    """`text` with its lines kept and every other control character escaped."""
    return _CONTROL_BUT_NEWLINES.sub(_escape, text)


def first_line(error: BaseException) -> str:
    """What a log line or a status shows of an error: the first non-blank line of its message
    (a database error's own, not SQLAlchemy's wrapper of it with the statement), or its type
    when it has no message."""
    shown = getattr(error, "orig", None) or error
    for line in str(shown).splitlines():
        if line.strip():
            return line.strip()
    return type(shown).__name__
