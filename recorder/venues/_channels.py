"""Channel codecs for JSON and raw payloads, built from declarative payload specs.

A *channel* is a kind of payload with one explicit Arrow schema per venue (``trade``,
``depth``, ``bookTicker``, ...). Its codec turns the exact payload bytes into typed fields
(the archive's columns, the message's ``fields``) and renders such fields back into the exact
bytes. The archive writer verifies ``render(decode(p)) == p`` for every row and keeps the raw
bytes only for rows where that fails.

The codec contract and the registry live in :mod:`recorder.core` (``_codec.py``); this module
holds the JSON and raw codecs the venue families build their channels from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import pyarrow as pa

from recorder.core._codec import Decoded, register
from recorder.core._errors import RemoteProtocolError
from recorder.core._message import CONTROL_CHANNEL, SESSION_CHANNEL, UNPARSED_CHANNEL
from recorder.venues._jsonspec import (
    Bool,
    Int,
    Json,
    Key,
    Mismatch,
    Obj,
    Payload,
    Str,
    Time,
    unit_ns,
)


@dataclass(frozen=True, slots=True)
class TextWrapper:
    """How an envelope wraps a payload as text: ``{"<stream_key>":"<stream>","<data_key>":
    <payload>}`` in compact JSON, the stream name as is (stream names need no escaping).

    What the archive's batch encoder and renderer need to cut and build the wrapper with
    string kernels for a whole column, instead of the envelope's ``split``/``join`` per row.
    ``envelope`` is the id ``split`` gives a frame wrapped this way.
    """

    envelope: int
    stream_key: str
    data_key: str

    @property
    def prefix(self) -> str:
        """The text before the stream name."""
        return "{" + orjson.dumps(self.stream_key).decode() + ':"'

    @property
    def infix(self) -> str:
        """The text between the stream name and the payload."""
        return '",' + orjson.dumps(self.data_key).decode() + ":"

    suffix = "}"
    """The text after the payload."""


class Envelope(Protocol):
    """A venue's optional wrapper around payloads (Binance's combined-stream wrapper)."""

    @property
    def wrapper(self) -> TextWrapper | None:
        """The wrapper's text form, if it is a :class:`TextWrapper` (None: no wrapper, or one
        only ``split``/``join`` handle)."""
        ...

    def split(self, frame: bytes) -> tuple[int, bytes]:
        """(envelope id, inner payload); id 0 means the frame is not wrapped."""
        ...

    def join(self, envelope: int, stream: str, inner: bytes) -> bytes: ...


NOT_WRAPPED = 0
"""The envelope id of a frame that came in no wrapper."""


class NoEnvelope:
    wrapper: TextWrapper | None = None

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


def register_common(venue: str, *, binary_control: bool = False) -> None:
    """Register the channels every venue has: session, control and unparsed."""
    register(JsonChannel(venue, SESSION_CHANNEL, SESSION_PAYLOAD))
    register(RawChannel(venue, CONTROL_CHANNEL, binary=binary_control))
    register(RawChannel(venue, UNPARSED_CHANNEL))


__all__ = [
    "NOT_WRAPPED",
    "NO_ENVELOPE",
    "SESSION_PAYLOAD",
    "Envelope",
    "JsonChannel",
    "RawChannel",
    "TextWrapper",
    "register_common",
    "session_payload",
    "unit_ns",
]
