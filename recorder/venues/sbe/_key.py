"""The Ed25519 API key the SBE handshake needs: read from the environment or a file, never
shown (repr, str, logs, pickling and copies all keep it out).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from recorder.core._errors import ConfigError

# --------------------------------------------------------------------------------------------
# API key

API_KEY_ENV: Final = "TICKTAPE_BINANCE_API_KEY"
API_KEY_HEADER: Final = "X-MBX-APIKEY"


class ApiKey:
    """The Ed25519 API key the SBE endpoint requires in the upgrade request's headers.

    The secret never appears in ``repr``/``str`` or in any error message (only, for long
    keys, its last 4 characters, enough to tell keys apart in logs).
    """

    __slots__ = ("_key",)

    def __init__(self, key: str, *, source: str = "the API key") -> None:
        key = key.strip()
        if not key:
            raise ConfigError(f"{source} is empty")
        # A header value must not carry spaces or control characters (header injection);
        # Binance keys are printable ASCII. The message names the source, never the value.
        if not all("!" <= c <= "~" for c in key):
            raise ConfigError(
                f"{source} contains characters that are not printable ASCII "
                "(whitespace, control or non-ASCII)"
            )
        self._key = key

    @classmethod
    def from_env(cls, var: str = API_KEY_ENV, environ: Mapping[str, str] | None = None) -> ApiKey:
        """The key in environment variable ``var``; ConfigError if unset or empty."""
        env = os.environ if environ is None else environ
        value = env.get(var)
        if value is None or not value.strip():
            raise ConfigError(
                f"binance-sbe needs an API key: set environment variable {var} (or pass a key file)"
            )
        return cls(value, source=f"environment variable {var}")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ApiKey:
        """The key stored in a file (surrounding whitespace ignored)."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read API key file {p}: {exc.strerror}") from None
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            # UnicodeDecodeError's text quotes a byte of the key: do not chain it.
            raise ConfigError(f"API key file {p} is not ASCII text") from None
        return cls(text, source=f"API key file {p}")

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, var: str = API_KEY_ENV) -> ApiKey:
        """From ``path`` if given, else from environment variable ``var``."""
        return cls.from_file(path) if path is not None else cls.from_env(var)

    def header(self) -> tuple[str, str]:
        """The ``("X-MBX-APIKEY", key)`` header pair for the WebSocket handshake."""
        return (API_KEY_HEADER, self._key)

    def __repr__(self) -> str:
        tail = self._key[-4:] if len(self._key) >= 16 else ""
        return f"ApiKey(****{tail})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ApiKey):
            return NotImplemented
        return hmac.compare_digest(self._key.encode(), other._key.encode())

    def __hash__(self) -> int:
        return hash(self._key)

    # Immutable: copies may share it (dataclasses.asdict deep-copies), but pickles may not
    # carry the secret to disk or to another process by accident.
    def __copy__(self) -> ApiKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ApiKey:
        return self

    def __reduce__(self) -> Any:
        raise TypeError("ApiKey cannot be pickled")
