"""Book rebuilds: :func:`book_states`, :class:`BookReplay` (one symbol over a time range, from
the nearest checkpoint or snapshot) and :class:`BookBuilder` (a book fed message by message).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from recorder import HOUR_NS
from recorder.core import Message
from replay.books._book import (
    DEFAULT_LOOKBACK_HOURS,
    DEFAULT_PRE_WINDOW_NS,
    BookGap,
    BookState,
    OrderBook,
    log,
)
from replay.books._engines import _APPLIED, _GAP, _SYNCED, _BinanceEngine, _BybitEngine, _Ev
from replay.books._source import _layout, _Source

# --------------------------------------------------------------------------------------------
# Replay


@dataclass
class BookReplay:
    """Iterable of :class:`BookState`; :attr:`gaps` fills in as the iteration proceeds.

    Built by :func:`book_states`. ``stream`` is the diff stream (Bybit: ``orderbook`` topic)
    replayed; ``anchor_ns`` the receive time of the snapshot/checkpoint replay started from
    (None: from the first message of the range). Iterating again replays again.
    """

    root: str
    venue: str
    symbol: str
    stream: str | None
    start_ns: int | None
    end_ns: int | None
    every: int | None
    depth: int | None
    anchor_ns: int | None
    read_from_ns: int | None
    strict_increment: bool = True
    gaps: list[BookGap] = field(default_factory=list)
    book: OrderBook = field(default_factory=OrderBook)
    _source: _Source | None = field(default=None, repr=False)

    def _report(self, gap: BookGap) -> None:
        self.gaps.append(gap)
        log.warning(
            "%s %s: no book from %d (%s, expected %s, got %s)",
            self.venue,
            self.symbol,
            gap.start_ns,
            gap.reason,
            gap.expected,
            gap.got,
        )

    def __iter__(self) -> Iterator[BookState]:
        layout = _layout(self.venue)
        src = self._source or _Source(self.root, self.venue, self.symbol, layout)
        self.gaps = []
        book = self.book = OrderBook()
        engine: _BinanceEngine | _BybitEngine
        if layout.family == "binance":
            engine = _BinanceEngine(self.venue, book)
        else:
            engine = _BybitEngine(self.stream or "", book, self.strict_increment)
        start, end, every, n = self.start_ns, self.end_ns, self.every, self.depth
        open_gap: BookGap | None = None
        listed = False  # open_gap is in self.gaps
        next_t: int | None = None
        if every is not None and start is not None:
            next_t = -(-start // every) * every
        last_recv: int | None = None

        for ev in src.events(self.stream, self.read_from_ns, end):
            r = ev.recv_ns
            if every is not None:
                if next_t is None:
                    next_t = -(-r // every) * every
                while next_t < r:
                    if engine.valid and (start is None or next_t >= start):
                        yield book.state(next_t, n)
                    next_t += every
            last_recv = r
            res = engine.feed(ev)
            if res == _SYNCED:
                if open_gap is not None:
                    open_gap.end_ns = r
                    open_gap, listed = None, False
            elif open_gap is None and not engine.valid:
                if res == _GAP:
                    reason = "sequence" if ev.kind == "diff" else "resync_failed"
                    open_gap = BookGap(r, None, reason, engine.expected, engine.got)
                elif ev.kind == "diff":
                    open_gap = BookGap(r, None, "no_snapshot")
            # Listed once the book is still missing after the gap's own instant (a gap closed
            # at the time it opened, e.g. a diff sorted just before its checkpoint, is none).
            if (
                open_gap is not None
                and not listed
                and r > open_gap.start_ns
                and (start is None or r >= start)
            ):
                self._report(open_gap)
                listed = True
            if every is None and res in (_APPLIED, _SYNCED) and (start is None or r >= start):
                yield book.state(r, n)
        if open_gap is not None and not listed:
            self._report(open_gap)
        if every is not None and next_t is not None and last_recv is not None:
            while next_t <= last_recv and (end is None or next_t < end):
                if engine.valid and (start is None or next_t >= start):
                    yield book.state(next_t, n)
                next_t += every


class BookBuilder:
    """Incremental book of one stream, fed :class:`~recorder.Message` objects one at a time
    (from :func:`replay.open_archive`, its Trio ``stream``, or a live recorder).

    Feed the diffs (Binance ``depth``, Bybit ``orderbook``) and the snapshots and checkpoints
    (``depth_snapshot``, ``book_checkpoint``) of one symbol in archive order; other channels,
    symbols and streams are ignored. The rules are those of :func:`book_states`. ``book`` is
    only meaningful while ``valid``.
    """

    def __init__(self, venue: str, stream: str | None = None, *, strict_increment: bool = True):
        self.layout = _layout(venue)
        self.venue = venue
        self.stream = stream
        self.book = OrderBook()
        self._engine: _BinanceEngine | _BybitEngine | None = None
        self._strict = strict_increment
        self._symbol: str | None = None

    @property
    def valid(self) -> bool:
        return self._engine is not None and self._engine.valid

    def _event(self, msg: Message) -> _Ev | None:
        lay = self.layout
        if msg.venue != self.venue or msg.channel not in lay.channels:
            return None
        f = msg.fields
        kind: Literal["diff", "snapshot", "checkpoint"] = (
            "diff"
            if msg.channel == lay.diff_channel
            else "checkpoint"
            if msg.channel == lay.checkpoint_channel
            else "snapshot"
        )
        bids, asks = f.get("bids") or [], f.get("asks") or []
        if lay.family == "bybit":
            topic = f.get("topic") or msg.stream
            if self.stream is None:
                self.stream = topic
            if topic != self.stream:
                return None
            uid = f.get("update_id")
            return _Ev(
                msg.recv_ns,
                msg.conn,
                msg.seq,
                kind,
                topic,
                bids,
                asks,
                int(uid) if uid is not None else 0,
                msg_type=f.get("msg_type") or "",
            )
        if kind == "diff":
            if self.stream is None:
                self.stream = msg.stream
            if msg.stream != self.stream:
                return None
            return _Ev(
                msg.recv_ns,
                msg.conn,
                msg.seq,
                kind,
                msg.stream,
                bids,
                asks,
                f["final_update_id"],
                first=f["first_update_id"],
                prev=f.get("prev_final_update_id"),
            )
        return _Ev(
            msg.recv_ns, msg.conn, msg.seq, kind, msg.stream, bids, asks, f["last_update_id"]
        )

    def feed(self, msg: Message) -> bool:
        """Apply one message; True if it changed the book and the book is valid."""
        if self._symbol is None and msg.channel in self.layout.channels:
            self._symbol = msg.symbol
        if msg.symbol != self._symbol:
            return False
        ev = self._event(msg)
        if ev is None:
            return False
        if self._engine is None:
            if self.layout.family == "binance":
                self._engine = _BinanceEngine(self.venue, self.book)
            else:
                self._engine = _BybitEngine(self.stream or "", self.book, self._strict)
        return self._engine.feed(ev) in (_APPLIED, _SYNCED)


def book_states(
    root: str,
    venue: str,
    symbol: str,
    stream: str | None = None,
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
    every: int | None = None,
    depth: int | None = 20,
    lookback_hours: int | None = DEFAULT_LOOKBACK_HOURS,
    pre_window_ns: int = DEFAULT_PRE_WINDOW_NS,
    strict_increment: bool = True,
) -> BookReplay:
    """Rebuild the order book of ``symbol`` on ``venue`` and yield its states.

    ``stream``: the diff stream (Binance, e.g. ``btcusdt@depth@100ms``) or ``orderbook``
    topic (Bybit, e.g. ``orderbook.200.BTCUSDT``); None = the only one recorded in the range
    (ValueError if there are several). ``start_ns`` (inclusive) / ``end_ns`` (exclusive):
    receive-time range of the states yielded; replay starts from the latest snapshot or
    checkpoint at or before ``start_ns`` found within ``lookback_hours`` (None: no limit).
    ``every``: None = one state per book-changing message (its receive time); N = one state
    per multiple of N ns (the book after every message received at or before that time;
    samples stop at the last message read, never past the recorded data, and skip gaps).
    ``depth``: levels per side in each state (None = all). Binance: ``pre_window_ns`` of diffs
    before a REST snapshot are read so that the diffs buffered live can be re-applied.
    Bybit: ``strict_increment`` = require ``u`` to step by one between deltas (as recorded).

    Returns a :class:`BookReplay`: iterate it for the states; its ``gaps`` lists the stretches
    without a book (also logged).
    """
    layout = _layout(venue)
    if every is not None and every <= 0:
        raise ValueError("every must be a positive number of nanoseconds")
    if depth is not None and depth <= 0:
        raise ValueError("depth must be positive")
    src = _Source(root, venue, symbol, layout)
    lo_search = None
    if start_ns is not None and lookback_hours is not None:
        lo_search = start_ns - lookback_hours * HOUR_NS
    if stream is None:
        found = src.streams(lo_search, end_ns)
        if len(found) > 1:
            raise ValueError(
                f"{venue} {symbol}: several order-book streams recorded ({', '.join(found)}); "
                "pass stream="
            )
        stream = found[0] if found else None
    anchor_ns: int | None = None
    read_from: int | None = start_ns
    if start_ns is not None:
        anchor = src.anchor(start_ns, stream, lookback_hours)
        if anchor is not None:
            anchor_ns, channel = anchor
            read_from = anchor_ns
            if layout.family == "binance" and channel in layout.snapshot_channels:
                read_from = anchor_ns - pre_window_ns
        else:
            log.warning(
                "%s %s: no snapshot or checkpoint at or before %d within %s hours",
                venue,
                symbol,
                start_ns,
                lookback_hours,
            )
    return BookReplay(
        root=root,
        venue=venue,
        symbol=symbol,
        stream=stream,
        start_ns=start_ns,
        end_ns=end_ns,
        every=every,
        depth=depth,
        anchor_ns=anchor_ns,
        read_from_ns=read_from,
        strict_increment=strict_increment,
        _source=src,
    )
