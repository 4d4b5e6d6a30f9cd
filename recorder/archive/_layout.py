"""Safe Hive partition paths.

Partition values come from config and from the wire (symbols, stream names), so they are
untrusted. :func:`encode_value` maps any string to a single, harmless path component:
letters, digits, ``_`` and ``-`` stay; everything else (``/``, ``.``, NUL, non-ASCII, ``%``)
is percent-encoded byte by byte, so a value can never be ``..``, contain a separator or a
control character, or start with a dot. Encoding is reversible (:func:`decode_value`) except
for values longer than :data:`MAX_COMPONENT`, which are cut and suffixed with a digest (``~``
marks them; such a value decodes to ``None`` and readers take the symbol from the rows).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from recorder.core import HOUR_NS, SECOND_NS

MAX_COMPONENT: Final = 120
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_HEX = "0123456789ABCDEF"


def encode_value(value: str) -> str:
    """A path-safe, reversible encoding of a partition value (never empty, never dotted)."""
    if value == "":
        return "%"
    out: list[str] = []
    for b in value.encode("utf-8", "surrogatepass"):
        if b in _SAFE:
            out.append(chr(b))
        else:
            out.append("%" + _HEX[b >> 4] + _HEX[b & 15])
    enc = "".join(out)
    if len(enc) > MAX_COMPONENT:
        digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
        head = enc[: MAX_COMPONENT - 17]
        cut = head.rfind("%", len(head) - 2)
        if cut != -1:  # never split a %XX escape
            head = head[:cut]
        enc = head + "~" + digest
    return enc


def decode_value(component: str) -> str | None:
    """Inverse of :func:`encode_value`; ``None`` for a shortened (digest) component."""
    if component == "%":
        return ""
    if "~" in component:
        return None
    raw = bytearray()
    i = 0
    while i < len(component):
        c = component[i]
        if c == "%":
            raw.append(int(component[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.append(ord(c))
            i += 1
    return raw.decode("utf-8", "surrogatepass")


@dataclass(frozen=True, slots=True, order=True)
class PartitionKey:
    """Where a row goes: ``venue=/channel=/symbol=/date=/hour=``."""

    venue: str
    channel: str
    symbol: str
    date: str  # YYYY-MM-DD (UTC)
    hour: int  # 0..23 (UTC)

    def relpath(self) -> str:
        return (
            f"venue={encode_value(self.venue)}/channel={encode_value(self.channel)}/"
            f"symbol={encode_value(self.symbol)}/date={self.date}/hour={self.hour:02d}"
        )

    @property
    def hour_start_ns(self) -> int:
        import datetime as _dt

        d = _dt.datetime.strptime(self.date, "%Y-%m-%d").replace(tzinfo=_dt.UTC)
        return int(d.timestamp()) * SECOND_NS + self.hour * HOUR_NS

    @property
    def hour_end_ns(self) -> int:
        return self.hour_start_ns + HOUR_NS


def date_hour(ns: int) -> tuple[str, int]:
    """UTC ``(YYYY-MM-DD, hour)`` of an epoch-nanosecond time."""
    import datetime as _dt

    secs = ns // 1_000_000_000
    t = _dt.datetime.fromtimestamp(secs, tz=_dt.UTC)
    return t.strftime("%Y-%m-%d"), t.hour


def parse_relpath(rel: str) -> PartitionKey | None:
    """The partition of a relative directory path, or None if it is not one of ours."""
    parts = rel.strip("/").split("/")
    if len(parts) != 5:
        return None
    names = ("venue", "channel", "symbol", "date", "hour")
    vals: list[str] = []
    for name, part in zip(names, parts, strict=True):
        k, sep, v = part.partition("=")
        if k != name or not sep:
            return None
        vals.append(v)
    venue, channel, symbol = (decode_value(v) for v in vals[:3])
    if venue is None or channel is None:
        return None
    try:
        hour = int(vals[4])
    except ValueError:
        return None
    return PartitionKey(venue, channel, symbol if symbol is not None else vals[2], vals[3], hour)
