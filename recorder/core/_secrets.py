"""Keeping secrets (API keys, storage credentials) out of every text ticktape shows or stores.

Text from outside (a server's error body, a close reason, an OS error quoting a URI) may
carry a secret back to us: proxies and WAFs echo the request, headers and all, in their
error pages. Each layer passes such text through :func:`redact_secrets` at the boundary
where it enters (the WebSocket client's exception translation, the archive root's error
messages), before it reaches a log line, a session event or the status.

Two things are masked: every value registered with :func:`remember_secret` (the API key as
loaded, credentials from a URI or a profile), in plain and URL-quoted form, and the value
of anything that looks like a credential header or parameter (``X-MBX-APIKEY: ...``,
``Authorization: Bearer ...``, ``api_key=...``), known or not.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from collections.abc import Iterable
from typing import Final

MASK: Final = "***"

# Shorter values would mask ordinary words; no real credential is this short.
_MIN_SECRET_LEN: Final = 4

# A header line or a key=value / "key": "value" pair naming a credential. The value runs
# to the end of the line or the next separator, quotes included.
_CREDENTIAL_FIELD: Final = re.compile(
    r"(?P<key>\b(?:X-MBX-APIKEY|X-BAPI-API-KEY|X-BAPI-SIGN|X-API-KEY|API[-_]?KEY|"
    r"API[-_]?SECRET|Authorization|Proxy-Authorization|Cookie|Set-Cookie|signature)"
    r"[\"']?\s*[:=]\s*)(?P<value>[^\r\n,&;}\]]*)",
    re.IGNORECASE,
)

_known: set[str] = set()
_lock = threading.Lock()


def remember_secret(*values: str | None) -> None:
    """Mask ``values`` in every text redacted from now on (in this process)."""
    with _lock:
        _known.update(v for v in values if v and len(v) >= _MIN_SECRET_LEN)


def known_secrets() -> frozenset[str]:
    """The values registered so far."""
    with _lock:
        return frozenset(_known)


def redact_secrets(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with credential fields and every known secret (plus ``extra``) masked."""
    text = _CREDENTIAL_FIELD.sub(lambda m: m["key"] + MASK, text)
    secrets = set(known_secrets())
    secrets.update(v for v in extra if v and len(v) >= _MIN_SECRET_LEN)
    # Longest first, so a secret containing another is masked whole.
    for s in sorted(secrets, key=len, reverse=True):
        text = text.replace(s, MASK)
        quoted = urllib.parse.quote(s, safe="")
        if quoted != s:
            text = text.replace(quoted, MASK)
    return text


__all__ = ["MASK", "known_secrets", "redact_secrets", "remember_secret"]
