"""A plain price-level order book and the states replay yields from it.

:class:`OrderBook` keeps sorted bids and asks with absolute quantities (quantity 0 deletes).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

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
