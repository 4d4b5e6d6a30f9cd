"""The channel-codec contract between a venue's payloads and the archive, and its registry.

A *channel* is a kind of payload with one explicit Arrow schema per venue (``trade``,
``depth``, ``bookTicker``, ...). Its codec turns the exact payload bytes into typed fields
(the archive's columns, the message's ``fields``) and renders such fields back into the exact
bytes. The archive writer verifies ``render(decode(p)) == p`` for every row and keeps the raw
bytes only for rows where that fails.

Venue families register their codecs when :mod:`recorder.venues` is imported (which importing
``recorder`` always does), the way :func:`codecs.register` works in the standard library: this
layer knows the contract, never a venue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: the receive path never needs pyarrow loaded
    import pyarrow as pa


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


_REGISTRY: dict[tuple[str, str], ChannelCodec] = {}


def register(codec: ChannelCodec) -> None:
    """Register a codec; venue modules call this at import time."""
    key = (codec.venue, codec.channel)
    if key in _REGISTRY and _REGISTRY[key] is not codec:
        raise ValueError(f"codec for {key} registered twice")
    _REGISTRY[key] = codec


def codec_for(venue: str, channel: str) -> ChannelCodec:
    """The codec of ``(venue, channel)``; raises KeyError if there is none."""
    try:
        return _REGISTRY[(venue, channel)]
    except KeyError:
        raise KeyError(f"no codec for venue {venue!r} channel {channel!r}") from None


def channels_of(venue: str) -> list[str]:
    """Every channel registered for a venue, sorted."""
    return sorted(c for v, c in _REGISTRY if v == venue)


def venues() -> list[str]:
    return sorted({v for v, _ in _REGISTRY})


__all__ = ["ChannelCodec", "Decoded", "channels_of", "codec_for", "register", "venues"]
