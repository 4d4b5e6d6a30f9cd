"""Channel codecs: the contract between a venue's payloads and the archive, and their registry.

A *channel* is a kind of payload with one explicit Arrow schema per venue (``trade``,
``depth``, ``bookTicker``, ...). Its codec turns the exact payload bytes into typed fields
(the archive's columns, the message's ``fields``) and renders such fields back into the exact
bytes. The archive writer verifies ``render(decode(p)) == p`` for every row and keeps the raw
bytes only for rows where that fails.

Venue modules (``_binance.py``, ``_bybit.py``, ``_sbe.py``) register their codecs at import;
:func:`codec_for` imports them on first use so that lookups never depend on import order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import pyarrow as pa

from recorder._errors import RemoteProtocolError
from recorder._jsonspec import Bool, Int, Json, Key, Mismatch, Obj, Payload, Str, Time, unit_ns
from recorder._message import CONTROL_CHANNEL, SESSION_CHANNEL, UNPARSED_CHANNEL


@dataclass(frozen=True, slots=True)
class Decoded:
    """The typed fields of one payload.

    ``envelope`` names the wrapper the payload came in (venue-specific; 0 = none), so that the
    renderer can put it back. ``exact`` is False when the decoder already knows the payload
    cannot be re-rendered (unknown keys, mixed number formats); the raw bytes are then kept.
    """

    fields: dict[str, Any]
    envelope: int = 0
    exact: bool = True


class ChannelCodec(Protocol):
    """What the archive needs from a channel."""

    @property
    def venue(self) -> str: ...

    @property
    def channel(self) -> str: ...

    @property
    def typed_fields(self) -> list[pa.Field]:
        """The channel's typed columns, in order (the common columns are added by the archive)."""
        ...

    @property
    def binary(self) -> bool:
        """True if payloads travel in binary WebSocket frames (SBE), False for text."""
        ...

    def decode(self, payload: bytes) -> Decoded:
        """Typed fields of a payload; raises :class:`RemoteProtocolError` if undecodable."""
        ...

    def render(self, fields: Mapping[str, Any], stream: str, envelope: int) -> bytes:
        """The exact payload for typed fields; may raise (KeyError, Mismatch...) if impossible."""
        ...

    def event_ns(self, fields: Mapping[str, Any]) -> int | None:
        """Exchange event time in ns, from the typed fields."""
        ...


class Envelope(Protocol):
    """A venue's optional wrapper around payloads (Binance's combined-stream wrapper)."""

    def split(self, frame: bytes) -> tuple[int, bytes]:
        """(envelope id, inner payload); id 0 means the frame is not wrapped."""
        ...

    def join(self, envelope: int, stream: str, inner: bytes) -> bytes: ...


class NoEnvelope:
    def split(self, frame: bytes) -> tuple[int, bytes]:
        return 0, frame

    def join(self, envelope: int, stream: str, inner: bytes) -> bytes:
        if envelope != 0:
            raise Mismatch(f"unknown envelope {envelope}")
        return inner


NO_ENVELOPE = NoEnvelope()


@dataclass(frozen=True)
class JsonChannel:
    """A channel whose payloads are JSON text described by a :class:`Payload` spec."""

    venue: str
    channel: str
    payload: Payload
    envelope: Envelope = NO_ENVELOPE
    binary: bool = False
    _fields: list[pa.Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_fields", self.payload.schema_fields())

    @property
    def typed_fields(self) -> list[pa.Field]:
        return self._fields

    def decode(self, payload: bytes) -> Decoded:
        env, inner = self.envelope.split(payload)
        try:
            value = orjson.loads(inner)
        except orjson.JSONDecodeError as exc:
            raise RemoteProtocolError(f"{self.venue}/{self.channel}: invalid JSON: {exc}") from None
        try:
            row, exact = self.payload.extract(value)
        except Mismatch as exc:
            raise RemoteProtocolError(f"{self.venue}/{self.channel}: {exc}") from None
        return Decoded(row, env, exact)

    def render(self, fields: Mapping[str, Any], stream: str, envelope: int) -> bytes:
        inner = self.payload.render(fields).encode()
        return self.envelope.join(envelope, stream, inner)

    def event_ns(self, fields: Mapping[str, Any]) -> int | None:
        return self.payload.event_ns(fields)


@dataclass(frozen=True)
class RawChannel:
    """A channel kept as raw bytes only (control frames, undecodable frames).

    ``unparsed`` rows carry the decode error and the channel that was expected; those fields
    are supplied by the recorder when it routes a frame here, so ``decode`` cannot recover
    them from the bytes alone and reports them as unknown.
    """

    venue: str
    channel: str
    binary: bool = False

    @property
    def typed_fields(self) -> list[pa.Field]:
        if self.channel == UNPARSED_CHANNEL:
            return [pa.field("error", pa.string()), pa.field("expected_channel", pa.string())]
        return []

    def decode(self, payload: bytes) -> Decoded:
        return Decoded({f.name: None for f in self.typed_fields}, 0, False)

    def render(self, fields: Mapping[str, Any], stream: str, envelope: int) -> bytes:
        raise Mismatch("raw channel")

    def event_ns(self, fields: Mapping[str, Any]) -> int | None:
        return None


SESSION_PAYLOAD = Payload(
    Obj(
        Key("event", Str("event")),
        Key("time_ns", Time("event_time", "ns")),
        Key("reason", Str("reason"), optional=True),
        Key("streams", Json("streams"), optional=True),
        Key("gap_start_ns", Time("gap_start", "ns"), optional=True),
        Key("gap_end_ns", Time("gap_end", "ns"), optional=True),
        Key("url", Str("url"), optional=True),
        Key("attempt", Int("attempt"), optional=True),
        Key("planned", Bool("planned"), optional=True),
        Key("detail", Json("detail"), optional=True),
    ),
    event_time="event_time",
    event_time_unit="ns",
)
"""Session events are JSON written by the recorder itself, always in this key order."""


def session_payload(
    event: str,
    time_ns: int,
    *,
    reason: str | None = None,
    streams: list[str] | None = None,
    gap_start_ns: int | None = None,
    gap_end_ns: int | None = None,
    url: str | None = None,
    attempt: int | None = None,
    planned: bool | None = None,
    detail: Mapping[str, Any] | None = None,
) -> bytes:
    """Build a session event payload (keys in the canonical order, absent ones omitted)."""
    obj: dict[str, Any] = {"event": event, "time_ns": time_ns}
    if reason is not None:
        obj["reason"] = reason
    if streams is not None:
        obj["streams"] = streams
    if gap_start_ns is not None:
        obj["gap_start_ns"] = gap_start_ns
    if gap_end_ns is not None:
        obj["gap_end_ns"] = gap_end_ns
    if url is not None:
        obj["url"] = url
    if attempt is not None:
        obj["attempt"] = attempt
    if planned is not None:
        obj["planned"] = planned
    if detail is not None:
        obj["detail"] = dict(detail)
    return orjson.dumps(obj)


_REGISTRY: dict[tuple[str, str], ChannelCodec] = {}
_LOADED = False


def register(codec: ChannelCodec) -> None:
    """Register a codec; venue modules call this at import time."""
    key = (codec.venue, codec.channel)
    if key in _REGISTRY and _REGISTRY[key] is not codec:
        raise ValueError(f"codec for {key} registered twice")
    _REGISTRY[key] = codec


def register_common(venue: str, *, binary_control: bool = False) -> None:
    """Register the channels every venue has: session, control and unparsed."""
    register(JsonChannel(venue, SESSION_CHANNEL, SESSION_PAYLOAD))
    register(RawChannel(venue, CONTROL_CHANNEL, binary=binary_control))
    register(RawChannel(venue, UNPARSED_CHANNEL))


def _load_venues() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import importlib

    for mod in ("recorder._binance", "recorder._bybit", "recorder._sbe"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def codec_for(venue: str, channel: str) -> ChannelCodec:
    """The codec of ``(venue, channel)``; raises KeyError if there is none."""
    _load_venues()
    try:
        return _REGISTRY[(venue, channel)]
    except KeyError:
        raise KeyError(f"no codec for venue {venue!r} channel {channel!r}") from None


def channels_of(venue: str) -> list[str]:
    """Every channel registered for a venue, sorted."""
    _load_venues()
    return sorted(c for v, c in _REGISTRY if v == venue)


def venues() -> list[str]:
    _load_venues()
    return sorted({v for v, _ in _REGISTRY})


__all__ = [
    "NO_ENVELOPE",
    "SESSION_PAYLOAD",
    "ChannelCodec",
    "Decoded",
    "Envelope",
    "JsonChannel",
    "RawChannel",
    "channels_of",
    "codec_for",
    "register",
    "register_common",
    "session_payload",
    "unit_ns",
    "venues",
]
