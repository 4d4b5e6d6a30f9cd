"""Order-book reconstruction from an archive: snapshots/checkpoints plus diffs, per venue rules.

:class:`OrderBook` is a plain price-level book (sorted bids and asks, absolute quantities,
quantity 0 deletes). :func:`book_states` rebuilds the book of one symbol (one order-book
stream) over a time range and yields :class:`BookState` snapshots (top N levels), one per
book-changing message or sampled every N nanoseconds.

Where the book comes from. The recorder writes, beside the diffs, REST snapshots (Binance
channel ``depth_snapshot``) and at every UTC hour boundary a ``book_checkpoint`` (the full
book; Binance: REST-snapshot shape; Bybit: an ``orderbook`` snapshot message). To start at
``start_ns``, :func:`book_states` looks for the latest checkpoint or snapshot at or before it,
searching back hour by hour (Bybit: its own ``orderbook`` snapshots count too), and replays the
diffs from there; the states before ``start_ns`` are computed but not yielded.

Continuity rules (``shared/protocols``):

* Binance Spot (binance-spot.md 8): after a snapshot drop events with ``u <= lastUpdateId``;
  an event with ``U > book id + 1`` is a gap. USDⓈ-M (binance-usdm-futures.md 7): drop
  ``u < lastUpdateId``; after the first applied event, ``pu`` must equal the previous ``u``.
  Both are delegated to :class:`recorder.venues.binance.DepthSync`, the recorder's own state
  machine, so replay and recording agree. Diffs received before a REST snapshot are kept (as
  the live procedure buffers them) and re-applied after it.
* Bybit (bybit-v5.md 4.1, 6): every ``snapshot`` message replaces the book (``u = 1`` after a
  service restart included); ``delta`` levels are applied; ``u`` must step by one
  (:class:`recorder.venues.bybit.BookSync`, ``strict_increment``), a stale ``u`` is ignored.

A gap: the book is thrown away and no state is yielded until a later snapshot or checkpoint
re-synchronises it (a book is never invented). Every such stretch is reported as a
:class:`BookGap` in :attr:`BookReplay.gaps` (and logged), including the stretch at the start
when no snapshot is found.
"""

from __future__ import annotations

import bisect
import heapq
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from recorder import HOUR_NS
from recorder.archive import PartitionFiles, list_partitions
from recorder.core import ArchiveError, Message
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
from recorder.venues.binance import VENUES as BINANCE_VENUES
from recorder.venues.binance import Gap as BinanceGap
from recorder.venues.bybit import VENUES as BYBIT_VENUES
from recorder.venues.bybit import BookSync, Stale
from recorder.venues.bybit import Gap as BybitGap

log = logging.getLogger("ticktape.replay.books")

DEFAULT_LOOKBACK_HOURS: Final = 24
"""How many hours :func:`book_states` searches back for a starting snapshot."""
DEFAULT_PRE_WINDOW_NS: Final = 60_000_000_000
"""Binance: diffs read before the starting snapshot (a REST snapshot is received after the
diffs that the live procedure buffered while fetching it)."""
MAX_BUFFER: Final = 200_000
"""Binance: diffs kept while waiting for a snapshot (the oldest are dropped beyond this)."""
_MAX_PENDING: Final = 10_000

Level = tuple[float, float]
"""(price, quantity)."""


# --------------------------------------------------------------------------------------------
# The book


def _levels(levels: Iterable[Any]) -> Iterator[Level]:
    for lv in levels:
        if isinstance(lv, Mapping):
            yield float(lv["price"]), float(lv["qty"])
        else:
            p, q = lv[0], lv[1]
            yield float(p), float(q)


class OrderBook:
    """A price-level order book: absolute quantities, quantity 0 removes the level.

    Levels are ``(price, qty)`` floats (the archive's typed columns); ``update_id`` is the id
    the book is at (set by whoever feeds it). Accepts levels as ``(price, qty)`` pairs or as
    the archive's ``{"price": .., "qty": ..}`` structs.
    """

    __slots__ = ("_ask_keys", "_asks", "_bid_keys", "_bids", "update_id")

    def __init__(
        self,
        bids: Iterable[Any] = (),
        asks: Iterable[Any] = (),
        update_id: int | None = None,
    ) -> None:
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        self._bid_keys: list[float] = []  # negated prices, ascending: best bid first
        self._ask_keys: list[float] = []  # prices, ascending: best ask first
        self.update_id = update_id
        self.load(bids, asks, update_id)

    # -- updates ----------------------------------------------------------------------------

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self._bid_keys.clear()
        self._ask_keys.clear()
        self.update_id = None

    def load(self, bids: Iterable[Any], asks: Iterable[Any], update_id: int | None = None) -> None:
        """Replace the whole book (levels with quantity 0 are left out)."""
        self._bids = {p: q for p, q in _levels(bids) if q != 0}
        self._asks = {p: q for p, q in _levels(asks) if q != 0}
        self._bid_keys = sorted(-p for p in self._bids)
        self._ask_keys = sorted(self._asks)
        self.update_id = update_id

    def set_bid(self, price: float, qty: float) -> None:
        if qty == 0:
            if self._bids.pop(price, None) is not None:
                keys = self._bid_keys
                del keys[bisect.bisect_left(keys, -price)]
        else:
            if price not in self._bids:
                bisect.insort(self._bid_keys, -price)
            self._bids[price] = qty

    def set_ask(self, price: float, qty: float) -> None:
        if qty == 0:
            if self._asks.pop(price, None) is not None:
                keys = self._ask_keys
                del keys[bisect.bisect_left(keys, price)]
        else:
            if price not in self._asks:
                bisect.insort(self._ask_keys, price)
            self._asks[price] = qty

    def apply(
        self, bids: Iterable[Any] = (), asks: Iterable[Any] = (), update_id: int | None = None
    ) -> None:
        """Apply diff levels (absolute quantities; 0 deletes, deleting a missing level is a
        no-op); ``update_id`` (if given) becomes the book's id."""
        for p, q in _levels(bids):
            self.set_bid(p, q)
        for p, q in _levels(asks):
            self.set_ask(p, q)
        if update_id is not None:
            self.update_id = update_id

    # -- queries ----------------------------------------------------------------------------

    def bids(self, n: int | None = None) -> list[Level]:
        """Bid levels, best (highest) first; the top ``n`` or all."""
        keys = self._bid_keys if n is None else self._bid_keys[:n]
        d = self._bids
        return [(-k, d[-k]) for k in keys]

    def asks(self, n: int | None = None) -> list[Level]:
        """Ask levels, best (lowest) first; the top ``n`` or all."""
        keys = self._ask_keys if n is None else self._ask_keys[:n]
        d = self._asks
        return [(k, d[k]) for k in keys]

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        return self.bids(n), self.asks(n)

    @property
    def best_bid(self) -> Level | None:
        if not self._bid_keys:
            return None
        p = -self._bid_keys[0]
        return p, self._bids[p]

    @property
    def best_ask(self) -> Level | None:
        if not self._ask_keys:
            return None
        p = self._ask_keys[0]
        return p, self._asks[p]

    @property
    def mid(self) -> float | None:
        return _mid(self.best_bid, self.best_ask)

    @property
    def spread(self) -> float | None:
        return _spread(self.best_bid, self.best_ask)

    @property
    def crossed(self) -> bool:
        """Best bid at or above best ask (a symptom of a broken book)."""
        s = self.spread
        return s is not None and s <= 0

    def imbalance(self, n: int = 1) -> float | None:
        """(bid qty - ask qty) / (bid qty + ask qty) over the top ``n`` levels of each side;
        in [-1, 1], None if both sides are empty."""
        return _imbalance(self.bids(n), self.asks(n))

    def depth(self) -> tuple[int, int]:
        """Number of (bid, ask) levels."""
        return len(self._bids), len(self._asks)

    def state(self, recv_ns: int, n: int | None = None) -> BookState:
        return BookState(recv_ns, self.update_id, tuple(self.bids(n)), tuple(self.asks(n)))

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OrderBook):
            return NotImplemented
        return self._bids == other._bids and self._asks == other._asks

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"OrderBook(update_id={self.update_id}, levels={self.depth()}, "
            f"best_bid={self.best_bid}, best_ask={self.best_ask})"
        )


def _mid(bid: Level | None, ask: Level | None) -> float | None:
    if bid is None or ask is None:
        return None
    return (bid[0] + ask[0]) / 2


def _spread(bid: Level | None, ask: Level | None) -> float | None:
    if bid is None or ask is None:
        return None
    return ask[0] - bid[0]


def _imbalance(bids: Sequence[Level], asks: Sequence[Level]) -> float | None:
    b = sum(q for _, q in bids)
    a = sum(q for _, q in asks)
    if a + b == 0:
        return None
    return (b - a) / (b + a)


@dataclass(frozen=True, slots=True)
class BookState:
    """The top of the book at ``recv_ns`` (a message's receive time, or a sample time).

    ``bids``/``asks``: ``(price, qty)`` best first, at most the requested depth.
    """

    recv_ns: int
    update_id: int | None
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]

    @property
    def best_bid(self) -> Level | None:
        return self.bids[0] if self.bids else None

    @property
    def best_ask(self) -> Level | None:
        return self.asks[0] if self.asks else None

    @property
    def mid(self) -> float | None:
        return _mid(self.best_bid, self.best_ask)

    @property
    def spread(self) -> float | None:
        return _spread(self.best_bid, self.best_ask)

    def imbalance(self, n: int | None = None) -> float | None:
        """Depth imbalance over the top ``n`` levels held (all held levels if None)."""
        return _imbalance(self.bids[:n], self.asks[:n])


@dataclass(slots=True)
class BookGap:
    """A stretch without a trustworthy book. ``end_ns`` None: not re-synchronised (yet).

    ``reason``: ``"sequence"`` (an update id discontinuity), ``"no_snapshot"`` (diffs with no
    snapshot or checkpoint to start from), ``"resync_failed"`` (a snapshot that could not be
    joined to the diffs that followed it). ``expected``/``got``: the ids involved, if known.
    """

    start_ns: int
    end_ns: int | None
    reason: str
    expected: int | None = None
    got: int | None = None


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


# --------------------------------------------------------------------------------------------
# Archive access


@dataclass(frozen=True)
class _Layout:
    """Which channels and columns make a venue's book."""

    family: Literal["binance", "bybit"]
    diff_channel: str
    snapshot_channels: tuple[str, ...]
    checkpoint_channel: str = "book_checkpoint"

    @property
    def channels(self) -> tuple[str, ...]:
        return (self.diff_channel, *self.snapshot_channels, self.checkpoint_channel)


def _layout(venue: str) -> _Layout:
    if venue in BINANCE_VENUES:
        return _Layout("binance", "depth", ("depth_snapshot",))
    if venue in BYBIT_VENUES:
        return _Layout("bybit", "orderbook", ())
    raise ValueError(
        f"no order-book reconstruction for venue {venue!r} "
        f"(supported: {', '.join((*BINANCE_VENUES, *BYBIT_VENUES))})"
    )


def _hour(ns: int) -> int:
    return ns // HOUR_NS


def _read(fs: pafs.FileSystem, path: str, columns: list[str]) -> pa.Table:
    try:
        with fs.open_input_file(path) as f:
            pf = pq.ParquetFile(f)
            have = set(pf.schema_arrow.names)
            t = pf.read(columns=[c for c in columns if c in have])
    except (OSError, pa.ArrowInvalid) as exc:
        raise ArchiveError(f"cannot read {path}: {exc}") from exc
    for c in columns:  # a column a writer version did not have: all null
        if c not in t.column_names:
            t = t.append_column(c, pa.nulls(t.num_rows))
    return t


def _recv_ns(t: pa.Table) -> pa.Array:
    return pc.cast(t.column("recv_time"), pa.int64())


class _Source:
    """The selected partitions of one (venue, symbol) book, read hour by hour."""

    def __init__(self, root: str, venue: str, symbol: str, layout: _Layout) -> None:
        self.venue = venue
        self.layout = layout
        self.fs, parts = list_partitions(root)
        self.by_hour: dict[int, list[PartitionFiles]] = defaultdict(list)
        for p in parts:
            k = p.key
            if k.venue == venue and k.symbol == symbol and k.channel in layout.channels:
                self.by_hour[_hour(k.hour_start_ns)].append(p)
        self.hours = sorted(self.by_hour)

    def _kind(self, channel: str) -> Literal["diff", "snapshot", "checkpoint"]:
        if channel == self.layout.diff_channel:
            return "diff"
        if channel == self.layout.checkpoint_channel:
            return "checkpoint"
        return "snapshot"

    def _stream_col(self) -> str:
        # Bybit: the topic names the book (depth) everywhere, checkpoints included.
        return "topic" if self.layout.family == "bybit" else "stream"

    def streams(self, lo_ns: int | None, hi_ns: int | None) -> list[str]:
        """Distinct diff streams (Bybit: orderbook topics) in the hours overlapping the range."""
        col = self._stream_col()
        seen: set[str] = set()
        for h in self.hours:
            if lo_ns is not None and h < _hour(lo_ns):
                continue
            if hi_ns is not None and h * HOUR_NS >= hi_ns:
                continue
            for p in self.by_hour[h]:
                if p.key.channel != self.layout.diff_channel:
                    continue
                for path in p.paths:
                    t = _read(self.fs, path, [col])
                    seen.update(s for s in pc.unique(t.column(col)).to_pylist() if s is not None)
        return sorted(seen)

    def anchor(
        self, start_ns: int, stream: str | None, lookback_hours: int | None
    ) -> tuple[int, str] | None:
        """Receive time and channel of the latest snapshot/checkpoint at or before
        ``start_ns``, searching back hour by hour."""
        h0 = _hour(start_ns)
        bybit = self.layout.family == "bybit"
        for h in reversed(self.hours):
            if h > h0:
                continue
            if lookback_hours is not None and h < h0 - lookback_hours:
                break
            best: tuple[int, str] | None = None
            for p in self.by_hour[h]:
                ch = p.key.channel
                kind = self._kind(ch)
                if kind == "diff" and not bybit:
                    continue
                cols = ["recv_time", "topic", "msg_type"] if bybit else ["recv_time"]
                for path in p.paths:
                    t = _read(self.fs, path, cols)
                    mask = pc.less_equal(_recv_ns(t), start_ns)
                    if bybit:
                        if stream is not None:
                            mask = pc.and_(mask, pc.equal(t.column("topic"), stream))
                        if kind == "diff":
                            mask = pc.and_(mask, pc.equal(t.column("msg_type"), "snapshot"))
                    r = pc.max(pc.filter(_recv_ns(t), mask)).as_py()
                    if r is not None and (best is None or r > best[0]):
                        best = (int(r), ch)
            if best is not None:
                return best
        return None

    def _columns(self, kind: str) -> list[str]:
        base = ["recv_time", "conn", "seq", "stream", "bids", "asks"]
        if self.layout.family == "bybit":
            return [*base, "topic", "msg_type", "update_id"]
        if kind == "diff":
            extra = ["first_update_id", "final_update_id"]
            if self.venue == USDM:
                extra.append("prev_final_update_id")
            return [*base, *extra]
        return [*base, "last_update_id"]

    def _file_events(
        self, path: str, channel: str, stream: str | None, lo: int | None, hi: int | None
    ) -> list[_Ev]:
        kind = self._kind(channel)
        t = _read(self.fs, path, self._columns(kind))
        recv = _recv_ns(t)
        mask = None
        if lo is not None:
            mask = pc.greater_equal(recv, lo)
        if hi is not None:
            m2 = pc.less(recv, hi)
            mask = m2 if mask is None else pc.and_(mask, m2)
        if stream is not None and (kind == "diff" or self.layout.family == "bybit"):
            m3 = pc.equal(t.column(self._stream_col()), stream)
            mask = m3 if mask is None else pc.and_(mask, m3)
        if mask is not None:
            t = t.filter(mask)
            recv = _recv_ns(t)
        if t.num_rows == 0:
            return []
        cols = {n: t.column(n).to_pylist() for n in t.column_names if n != "recv_time"}
        rv = recv.to_pylist()
        out: list[_Ev] = []
        bybit = self.layout.family == "bybit"
        for i in range(t.num_rows):
            bids = cols["bids"][i] or []
            asks = cols["asks"][i] or []
            if bybit:
                uid = cols["update_id"][i]
                ev = _Ev(
                    rv[i],
                    cols["conn"][i],
                    cols["seq"][i],
                    kind,
                    cols["topic"][i] or cols["stream"][i],
                    bids,
                    asks,
                    int(uid) if uid is not None else 0,
                    msg_type=cols["msg_type"][i] or "",
                )
            elif kind == "diff":
                ev = _Ev(
                    rv[i],
                    cols["conn"][i],
                    cols["seq"][i],
                    kind,
                    cols["stream"][i],
                    bids,
                    asks,
                    cols["final_update_id"][i],
                    first=cols["first_update_id"][i],
                    prev=cols["prev_final_update_id"][i] if self.venue == USDM else None,
                )
            else:
                ev = _Ev(
                    rv[i],
                    cols["conn"][i],
                    cols["seq"][i],
                    kind,
                    cols["stream"][i],
                    bids,
                    asks,
                    cols["last_update_id"][i],
                )
            out.append(ev)
        return out

    def events(self, stream: str | None, lo: int | None, hi: int | None) -> Iterator[_Ev]:
        """Book events with ``lo <= recv < hi`` in archive order, one hour in memory at a time."""
        for h in self.hours:
            if lo is not None and h < _hour(lo):
                continue
            if hi is not None and h * HOUR_NS >= hi:
                break
            lists = [
                self._file_events(path, p.key.channel, stream, lo, hi)
                for p in self.by_hour[h]
                for path in p.paths
            ]
            yield from heapq.merge(*lists, key=_Ev.key)


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
    (from :func:`replay.open_archive`, its Trio ``aiter``, or a live recorder).

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


__all__ = [
    "BookBuilder",
    "BookGap",
    "BookReplay",
    "BookState",
    "Level",
    "OrderBook",
    "book_states",
]
