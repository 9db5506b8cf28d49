"""Secrets that travel in URLs never leave the process in text.

A URL's user and password (`https://user:password@host/`) and its query string (`?api_key=`)
are masked in every log line, every run's error and traceback in the history, and so in
every answer the API and the CLI give. A webhook's secret lives in its path: wherever the
project names a webhook, it names only its host (`webhook_address`).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MASK = "***"
# scheme://[userinfo@]rest[?query]; each part stops at whitespace and at the quotes and
# brackets that end a URL inside a message or a repr.
_URL = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)"
    r"(?P<userinfo>[^\s/?#@'\"<>]*@)?"
    r"(?P<rest>[^\s?#'\"<>]*)"
    r"(?P<query>\?[^\s#'\"<>]*)?"
)


def redact_urls(text: str) -> str:
    """`text` with the userinfo and the query string of every URL in it masked."""

    def mask(match: re.Match[str]) -> str:
        userinfo = f"{MASK}@" if match["userinfo"] else ""
        query = f"?{MASK}" if match["query"] else ""
        return f"{match['scheme']}{userinfo}{match['rest']}{query}"

    return _URL.sub(mask, text)


def webhook_address(url: str) -> str:
    """A webhook URL as it may be shown: scheme and host, the path (its secret) masked."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/{MASK}"
