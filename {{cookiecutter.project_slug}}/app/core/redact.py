"""Secrets that travel in URLs never leave the process in text.

A URL's user and password (`https://user:password@host/`), its query string (`?api_key=`)
and its fragment (`#access_token=`) are masked in every log line and in every run's error
and traceback in the history, and so in every answer the API and the CLI give. A webhook's
secret lives in its path: wherever the project names a webhook, it names only its host
(`webhook_address`).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MASK = "***"
# scheme://[userinfo@]rest[?query][#fragment]. The userinfo runs to the last `@` before the
# path, so a password with a raw `@` in it is masked whole; the other parts stop at
# whitespace and at the quotes and brackets that end a URL inside a message or a repr. The
# scheme's length is bounded, so a long run of letters and dots costs linear time.
_URL = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]{0,31}://)"
    r"(?P<userinfo>[^\s/?#]*@)?"
    r"(?P<rest>[^\s?#'\"<>]*)"
    r"(?P<query>\?[^\s#'\"<>]*)?"
    r"(?P<fragment>#[^\s'\"<>]*)?"
)


def redact_urls(text: str) -> str:
    """`text` with the userinfo, the query string and the fragment of every URL masked."""

    def mask(match: re.Match[str]) -> str:
        userinfo = f"{MASK}@" if match["userinfo"] else ""
        query = f"?{MASK}" if match["query"] else ""
        fragment = f"#{MASK}" if match["fragment"] else ""
        return f"{match['scheme']}{userinfo}{match['rest']}{query}{fragment}"

    return _URL.sub(mask, text)


def webhook_address(url: str) -> str:
    """A webhook URL as it may be shown: scheme and host, the path (its secret) masked."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/{MASK}"
