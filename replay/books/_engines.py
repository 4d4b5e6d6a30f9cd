"""The continuity engines: what each archived depth event does to a book, per venue rules.

Binance is delegated to :class:`recorder.venues.binance.DepthSync` and Bybit to
:class:`recorder.venues.bybit.BookSync`, the recorder's own state machines, so replay and
recording agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from recorder.venues.binance import (
    USDM,
    Apply,
    Buffer,
    DepthSync,
    Discard,
    NeedSnapshot,
    SnapshotTooOld,
    UseSnapshot,
)
from recorder.venues.binance import Gap as BinanceGap
from recorder.venues.bybit import BookSync, Stale
from recorder.venues.bybit import Gap as BybitGap
from replay.books._book import _MAX_PENDING, MAX_BUFFER, OrderBook

# --------------------------------------------------------------------------------------------
# Events read from the archive


@dataclass(slots=True)
class _Ev:
    recv_ns: int
    conn: str
    seq: int
    kind: Literal["diff", "snapshot", "checkpoint"]
    stream: str
    bids: list[Any]
    asks: list[Any]
    update_id: int  # diff: final u; snapshot: lastUpdateId / Bybit u
    first: int = 0  # Binance diff U
    prev: int | None = None  # Binance USDⓈ-M diff pu
    msg_type: str = ""  # Bybit snapshot / delta

    def key(self) -> tuple[int, str, int]:
        return (self.recv_ns, self.conn, self.seq)


_APPLIED: Final = 1
_SYNCED: Final = 2
_GAP: Final = 3
_NONE: Final = 0


class _BinanceEngine:
    """Binance continuity via the recorder's :class:`DepthSync`, plus the recorder's own
    USDⓈ-M checkpoints (see :meth:`_checkpoint_first`)."""

    def __init__(self, venue: str, book: OrderBook) -> None:
        self.sync = DepthSync(venue)
        self.usdm = venue == USDM
        self.book = book
        self.buffer: list[_Ev] = []
        self.valid = False
        self.expected: int | None = None
        self.got: int | None = None
        self.checkpoint_id: int | None = None

    def _buffer(self, ev: _Ev) -> None:
        self.buffer.append(ev)
        if len(self.buffer) > MAX_BUFFER:
            del self.buffer[: len(self.buffer) - MAX_BUFFER]
            self.sync.first_update_id = self.buffer[0].first

    def _checkpoint_first(self, ev: _Ev, ck: int) -> object:
        """USDⓈ-M, first event after a recorder checkpoint at book id ``ck``.

        A checkpoint's ``lastUpdateId`` is the ``u`` of the last event in its book, so the
        next event continues it with ``pu == ck`` -- the REST rule (``U <= id <= u``, which
        :class:`DepthSync` applies to every snapshot) is accepted too.
        """
        if ev.update_id <= ck:
            return Discard()
        if ev.prev == ck or ev.first <= ck:
            self.checkpoint_id = None
            self.sync.applied(ev.update_id)
            return Apply()
        self.checkpoint_id = None
        self.sync.reset()
        self.sync.event(ev.first, ev.update_id, ev.prev)  # NeedSnapshot: buffering from here
        return BinanceGap(ck, ev.prev if ev.prev is not None else ev.first)

    def _event(self, ev: _Ev) -> object:
        if self.checkpoint_id is not None:
            return self._checkpoint_first(ev, self.checkpoint_id)
        return self.sync.event(ev.first, ev.update_id, ev.prev if self.usdm else None)

    def _load(self, ev: _Ev) -> bool:
        if ev.kind == "checkpoint":
            # Not a REST snapshot: its id is the u of the last event it holds, so a buffered
            # event with U == id + 1 continues it (DepthSync would call it too old).
            self.sync.reset()
        act = self.sync.snapshot(ev.update_id)
        if isinstance(act, SnapshotTooOld):
            return False
        assert isinstance(act, UseSnapshot)
        if self.usdm and ev.kind == "checkpoint":
            self.checkpoint_id = ev.update_id
        self.book.load(ev.bids, ev.asks, ev.update_id)
        return True

    def feed(self, ev: _Ev) -> int:
        if ev.kind == "diff":
            act = self._event(ev)
            if isinstance(act, Apply):
                self.book.apply(ev.bids, ev.asks, ev.update_id)
                return _APPLIED
            if isinstance(act, Discard):
                return _NONE
            if isinstance(act, BinanceGap):
                self.expected, self.got = act.expected, act.got
                self.valid = False
                self.book.clear()
                self.buffer = [ev]
                return _GAP
            assert isinstance(act, NeedSnapshot | Buffer)
            self._buffer(ev)
            return _NONE
        if self.valid:
            return _NONE  # in sync: the diffs already give this book
        if not self._load(ev):
            return _NONE
        self.valid = True
        pending, self.buffer = self.buffer, []
        for b in pending:
            a = self._event(b)
            if isinstance(a, Apply):
                self.book.apply(b.bids, b.asks, b.update_id)
            elif isinstance(a, Discard):
                continue
            else:
                if isinstance(a, BinanceGap):
                    self.expected, self.got = a.expected, a.got
                self.valid = False
                self._buffer(b)
        if not self.valid:
            self.book.clear()
            return _GAP
        return _SYNCED


class _BybitEngine:
    """Bybit continuity via the recorder's :class:`BookSync`.

    Deltas received while there is no book are kept (bounded): a recorder checkpoint holds
    the messages received *before* its boundary, so deltas received at the boundary itself
    (ordered before the checkpoint by connection name) continue it. A WebSocket snapshot
    starts a new subscription and drops them.
    """

    def __init__(self, topic: str, book: OrderBook, strict_increment: bool) -> None:
        self.sync = BookSync(topic, strict_increment=strict_increment)
        self.book = book
        self.valid = False
        self.expected: int | None = None
        self.got: int | None = None
        self.pending: list[_Ev] = []

    def _delta(self, ev: _Ev) -> int:
        events = self.sync.on_message("delta", ev.update_id)
        for e in events:
            if isinstance(e, BybitGap):
                if self.valid:
                    self.expected, self.got = e.expected, e.got
                    self.valid = False
                    self.book.clear()
                    return _GAP
                return _NONE
            if isinstance(e, Stale):
                return _NONE
        if not self.valid or not self.sync.synced:
            return _NONE
        self.book.apply(ev.bids, ev.asks, ev.update_id)
        return _APPLIED

    def feed(self, ev: _Ev) -> int:
        if ev.kind == "checkpoint" and self.valid:
            return _NONE  # in sync: the messages already give this book
        if ev.kind != "diff" or ev.msg_type == "snapshot":
            was = self.valid
            self.sync = BookSync(self.sync.topic, strict_increment=self.sync.strict_increment)
            self.sync.on_message("snapshot", ev.update_id)
            self.book.load(ev.bids, ev.asks, ev.update_id)
            self.valid = True
            pending, self.pending = self.pending, []
            if ev.kind == "checkpoint":
                for d in pending:
                    if self._delta(d) == _GAP:
                        return _GAP
            return _APPLIED if was else _SYNCED
        if not self.valid:
            self.pending.append(ev)
            if len(self.pending) > 2 * _MAX_PENDING:
                del self.pending[:_MAX_PENDING]
        return self._delta(ev)
