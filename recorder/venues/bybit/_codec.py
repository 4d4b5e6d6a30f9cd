"""The Bybit channel codec: one payload spec per key order seen live (a *variant*).

Bybit's key order differs by category and over time; the codec tries the variants and
records which one matched, so rendering puts the keys back as they came.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson
import pyarrow as pa

from recorder.core._codec import Decoded
from recorder.core._errors import RemoteProtocolError, UnsupportedMessage
from recorder.venues._jsonspec import (
    Mismatch,
    Node,
    Obj,
    ObjList,
)
from recorder.venues.bybit._legacy import detect_legacy
from recorder.venues.bybit._topics import LEGACY_MESSAGE

# --------------------------------------------------------------------------------------------
# Variant codec


def _in_order(node: Node, value: Any) -> bool:
    """True if the known keys of ``value`` appear in the spec's order (unknown keys ignored)."""
    if isinstance(node, Obj):
        if not isinstance(value, dict):
            return True  # extract reports the type error
        pos = _positions(node)
        last = -1
        for k, v in value.items():
            i = pos.get(k)
            if i is None:
                continue
            if i < last:
                return False
            last = i
            child = node.keys[i].node
            if isinstance(child, (Obj, ObjList)) and not _in_order(child, v):
                return False
        return True
    if isinstance(node, ObjList):
        if not isinstance(value, list):
            return True
        return all(_in_order(node.item, v) for v in value)
    return True


_POS_CACHE: dict[int, dict[str, int]] = {}


def _positions(obj: Obj) -> dict[str, int]:
    pos = _POS_CACHE.get(id(obj))
    if pos is None:
        pos = {k.json: i for i, k in enumerate(obj.keys)}
        _POS_CACHE[id(obj)] = pos
    return pos


# Envelopes: a line terminator after the JSON. Live frames have none, but Bybit's historical
# archive files (public.bybit.com ob500 dumps) have CRLF lines, and the corpus keeps the "\r".
_TAILS: Final[Mapping[bytes, int]] = {b"\r\n": 3, b"\r": 1, b"\n": 2}


LAYOUT: Final = "layout"
"""int8 column: index of the key-order variant a payload matched (see VariantCodec)."""


class VariantCodec:
    """A JSON channel whose payloads come in several key orders.

    Bybit's key order differs by category and depth (spot and level 1 put ``ts`` before
    ``type``; options lead with ``id``), and exact re-rendering needs the order. Each variant
    is one spec (an :class:`Obj`); the one that matched is stored in the int8 column
    ``layout``. The typed columns are the union over all variants (absent ones are null).
    Satisfies :class:`~recorder.venues._channels.ChannelCodec`.
    """

    binary = False

    def __init__(
        self, venue: str, channel: str, variants: Sequence[Obj], *, event_time: str = "event_time"
    ) -> None:
        if not variants or len(variants) > 127:
            raise ValueError("between 1 and 127 variants")
        self._venue = venue
        self._channel = channel
        self.variants = tuple(variants)
        self._event_time = event_time
        fields: dict[str, pa.Field] = {}
        for v in self.variants:
            for f in v.columns():
                old = fields.get(f.name)
                if old is not None and not old.type.equals(f.type):
                    raise ValueError(f"{venue}/{channel}: column {f.name} changes type")
                fields.setdefault(f.name, f)
        if LAYOUT in fields:
            raise ValueError(f"{venue}/{channel}: column name {LAYOUT!r} is reserved")
        self._fields = [*fields.values(), pa.field(LAYOUT, pa.int8())]
        self._names = [f.name for f in self._fields]

    @property
    def venue(self) -> str:
        return self._venue

    @property
    def channel(self) -> str:
        return self._channel

    @property
    def typed_fields(self) -> list[pa.Field]:
        return self._fields

    def _fail(self, payload: bytes, why: str) -> RemoteProtocolError:
        if detect_legacy(payload):
            return UnsupportedMessage(f"{self._venue}/{self._channel}: {LEGACY_MESSAGE}")
        return RemoteProtocolError(f"{self._venue}/{self._channel}: {why}")

    def decode(self, payload: bytes) -> Decoded:
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise RemoteProtocolError(
                f"{self._venue}/{self._channel}: invalid JSON: {exc}"
            ) from None
        decoded = self.decode_value(value, payload)
        if payload[-1:] in b"\r\n":
            tail = _TAILS.get(payload[-2:]) or _TAILS.get(payload[-1:], 0)
            if tail:
                return Decoded(decoded.fields, tail, decoded.exact)
        return decoded

    def decode_value(self, value: Any, payload: bytes = b"") -> Decoded:
        """Decode an already parsed payload (``payload`` only improves error messages)."""
        first_error = "no variant matches"
        fallback: tuple[int, dict[str, Any]] | None = None
        for i, spec in enumerate(self.variants):
            ordered = _in_order(spec, value)
            if not ordered and fallback is not None:
                continue
            row: dict[str, Any] = {}
            try:
                spec.extract(value, row)
            except Mismatch as exc:
                if i == 0:
                    first_error = str(exc)
                continue
            if ordered:
                exact = not row.pop("__extra__", False)
                return Decoded(self._complete(row, i), 0, exact)
            fallback = (i, row)
        if fallback is not None:
            # Known keys in an order no variant describes: typed row is right, bytes are kept.
            i, row = fallback
            row.pop("__extra__", None)
            return Decoded(self._complete(row, i), 0, False)
        raise self._fail(payload, first_error)

    def _complete(self, row: dict[str, Any], layout: int) -> dict[str, Any]:
        out = {n: row.get(n) for n in self._names}
        out[LAYOUT] = layout
        return out

    def render(self, fields: Mapping[str, Any], stream: str, envelope: int) -> bytes:
        tail = b""
        if envelope != 0:
            for t, env in _TAILS.items():
                if env == envelope:
                    tail = t
                    break
            else:
                raise Mismatch(f"unknown envelope {envelope}")
        layout = fields.get(LAYOUT)
        if layout is None or not 0 <= layout < len(self.variants):
            raise Mismatch(f"bad layout {layout!r}")
        out: list[str] = []
        self.variants[layout].render(fields, out)
        return "".join(out).encode() + tail

    def event_ns(self, fields: Mapping[str, Any]) -> int | None:
        v = fields.get(self._event_time)
        return None if v is None else int(v) * 1_000_000
