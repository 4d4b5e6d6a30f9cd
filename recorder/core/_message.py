"""The one message type that flows from connections into the archive and back out of replay.

A :class:`Message` carries the exact bytes the exchange sent, the local receive time (integer
nanoseconds, UTC, taken when the socket handed over the frame, before any parsing), where it
came from (venue, stream, connection, per-connection sequence number) and, decoded on first
use, the typed fields that the archive stores as columns. Session events (connected,
subscribed, refused, disconnected, gap, ...) are messages of channel ``session`` so that replay
shows them in order with the data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from recorder.core._codec import codec_for

SESSION_CHANNEL: Final = "session"
"""Channel of connection lifecycle events written by the recorder itself."""

CONTROL_CHANNEL: Final = "control"
"""Channel of exchange control frames (subscribe replies, pongs, serverShutdown)."""

UNPARSED_CHANNEL: Final = "unparsed"
"""Channel of frames that could not be decoded; their bytes are kept as received."""

ALL_SYMBOLS: Final = "ALL"
"""Symbol partition of streams that are not about one symbol (``!miniTicker@arr``, sessions)."""


class SessionEvent:
    """Names of session events (the ``event`` field of a ``session`` message)."""

    CONNECTED: Final = "connected"
    SUBSCRIBED: Final = "subscribed"
    REFUSED: Final = "refused"
    DISCONNECTED: Final = "disconnected"
    RECONNECTED: Final = "reconnected"
    GAP: Final = "gap"
    RESYNC: Final = "resync"
    ROLLOVER: Final = "rollover"
    UNSUBSCRIBED: Final = "unsubscribed"
    ALL: Final = (
        "connected",
        "subscribed",
        "refused",
        "disconnected",
        "reconnected",
        "gap",
        "resync",
        "rollover",
        "unsubscribed",
    )


_new = object.__new__


class Message:
    """One frame received from an exchange (or one session event), as recorded.

    ``fields`` and ``event_ns`` are decoded lazily by the channel's codec, so a recorder
    that only archives never pays for them on the receive path. Two messages are equal when
    every attribute, including the payload bytes and the decoded fields, is equal.
    """

    __slots__ = (
        "_event_ns",
        "_fields",
        "channel",
        "conn",
        "payload",
        "recv_ns",
        "seq",
        "stream",
        "symbol",
        "venue",
    )

    venue: str
    stream: str
    channel: str
    symbol: str
    recv_ns: int
    conn: str
    seq: int
    payload: bytes

    def __init__(
        self,
        *,
        venue: str,
        stream: str,
        channel: str,
        symbol: str,
        recv_ns: int,
        conn: str,
        seq: int,
        payload: bytes,
        fields: Mapping[str, Any] | None = None,
        event_ns: int | None = None,
    ) -> None:
        self.venue = venue
        self.stream = stream
        self.channel = channel
        self.symbol = symbol
        self.recv_ns = recv_ns
        self.conn = conn
        self.seq = seq
        self.payload = payload
        self._fields = dict(fields) if fields is not None else None
        self._event_ns = event_ns if fields is not None else None

    @classmethod
    def _replayed(
        cls,
        venue: str,
        stream: str,
        channel: str,
        symbol: str,
        recv_ns: int,
        conn: str,
        seq: int,
        payload: bytes,
    ) -> Message:
        """A message read back from the archive, its fields left to be decoded on first use.

        Replay builds millions of these: positional, no keyword parsing and no copy of the
        fields (the stored columns are what the codec decodes from the payload anyway)."""
        self = _new(cls)
        self.venue = venue
        self.stream = stream
        self.channel = channel
        self.symbol = symbol
        self.recv_ns = recv_ns
        self.conn = conn
        self.seq = seq
        self.payload = payload
        self._fields = None
        self._event_ns = None
        return self

    def _decode(self) -> None:
        codec = codec_for(self.venue, self.channel)
        decoded = codec.decode(self.payload)
        self._fields = decoded.fields
        self._event_ns = codec.event_ns(decoded.fields)

    @property
    def fields(self) -> dict[str, Any]:
        """The typed fields, keyed by archive column name (decoded on first access)."""
        if self._fields is None:
            self._decode()
        assert self._fields is not None
        return self._fields

    @property
    def event_ns(self) -> int | None:
        """Exchange event time in integer nanoseconds, or ``None`` if the payload has none."""
        if self._fields is None:
            self._decode()
        return self._event_ns

    @property
    def is_session_event(self) -> bool:
        return self.channel == SESSION_CHANNEL

    def sort_key(self) -> tuple[int, str, int]:
        """The archive's global order: receive time, then connection, then sequence."""
        return (self.recv_ns, self.conn, self.seq)

    def _key(self) -> tuple[Any, ...]:
        return (
            self.venue,
            self.stream,
            self.channel,
            self.symbol,
            self.recv_ns,
            self.conn,
            self.seq,
            self.payload,
            self.event_ns,
            self.fields,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self.venue, self.stream, self.recv_ns, self.conn, self.seq))

    def __repr__(self) -> str:
        body = self.payload[:80]
        more = "..." if len(self.payload) > 80 else ""
        return (
            f"Message(venue={self.venue!r}, stream={self.stream!r}, channel={self.channel!r}, "
            f"symbol={self.symbol!r}, recv_ns={self.recv_ns}, conn={self.conn!r}, "
            f"seq={self.seq}, payload={body!r}{more})"
        )


def replayed_messages(
    metas: Sequence[tuple[str, str, str, str, str]],
    recvs: Sequence[int],
    seqs: Sequence[int],
    payloads: Sequence[bytes],
    decoded: Sequence[tuple[dict[str, Any], int | None] | None] | None = None,
) -> Iterator[Message]:
    """Messages read back from the archive, one per row, made one at a time.

    ``metas`` holds each row's (venue, channel, symbol, stream, conn); ``decoded`` the
    (fields, event_ns) of rows whose fields cannot be derived from their payload again (an
    ``unparsed`` frame's error), None for the others. This is :meth:`Message._replayed`
    inlined: replay spends a large share of its time here. Messages are made lazily so that
    a consumer that drops each one keeps the cyclic garbage collector idle (a batch of live
    objects would trigger collections).
    """
    new = _new
    cls = Message
    if decoded is None:
        for meta, recv, seq, payload in zip(metas, recvs, seqs, payloads, strict=True):
            m = new(cls)
            m.venue, m.channel, m.symbol, m.stream, m.conn = meta
            m.recv_ns = recv
            m.seq = seq
            m.payload = payload
            m._fields = None
            m._event_ns = None
            yield m
        return
    for meta, recv, seq, payload, known in zip(metas, recvs, seqs, payloads, decoded, strict=True):
        venue, channel, symbol, stream, conn = meta
        m = cls._replayed(venue, stream, channel, symbol, recv, conn, seq, payload)
        if known is not None:
            m._fields, m._event_ns = known
        yield m
