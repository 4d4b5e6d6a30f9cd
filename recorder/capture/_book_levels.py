"""The recorder's compact books: price levels per side, and diff-depth events parsed from
payloads only where a book needs them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from recorder.core._errors import RemoteProtocolError
from recorder.venues import binance as bn
from recorder.venues import bybit as bb

# --------------------------------------------------------------------------------------------
# Book state
# --------------------------------------------------------------------------------------------

Level = tuple[str, str]
"""A level as the exchange wrote it: (price text, qty text)."""
Parsed = tuple[float, str, str, bool]
"""(price value, price text, qty text, qty is zero): a level checked once, applied cheaply."""


def _num(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise RemoteProtocolError(f"{what}: not a number: {text[:40]!r}") from None
    if not math.isfinite(v):
        raise RemoteProtocolError(f"{what}: not a finite number: {text[:40]!r}")
    return v


def _levels(value: Any, what: str) -> list[Parsed]:
    """Check and parse ``[["price", "qty"], ...]`` completely, before anything is applied."""
    if not isinstance(value, list):
        raise RemoteProtocolError(f"{what}: levels are not an array")
    out: list[Parsed] = []
    for lv in value:
        if (
            not isinstance(lv, list)
            or len(lv) != 2
            or not isinstance(lv[0], str)
            or not isinstance(lv[1], str)
        ):
            raise RemoteProtocolError(f"{what}: a level is not a [price, qty] pair of strings")
        p, q = lv
        out.append((_num(p, what), p, q, _num(q, what) == 0.0))
    return out


class _Side:
    """One side of a book: price value -> (exact price text, exact qty text)."""

    __slots__ = ("levels", "reverse")

    def __init__(self, reverse: bool) -> None:
        self.levels: dict[float, Level] = {}
        self.reverse = reverse

    def load(self, levels: Iterable[Parsed]) -> None:
        self.levels = {}
        self.update(levels)

    def update(self, levels: Iterable[Parsed]) -> None:
        book = self.levels
        for price, p, q, zero in levels:
            if zero:
                book.pop(price, None)
            else:
                book[price] = (p, q)

    def sorted(self) -> list[Level]:
        """Best first: bids descending, asks ascending."""
        return [self.levels[k] for k in sorted(self.levels, reverse=self.reverse)]


@dataclass
class _Book:
    stream: str
    symbol: str
    bids: _Side = field(default_factory=lambda: _Side(reverse=True))
    asks: _Side = field(default_factory=lambda: _Side(reverse=False))
    synced: bool = False
    ever_synced: bool = False
    last_good_ns: int | None = None
    """Receive time of the last message that made it into the book."""
    gap_start_ns: int | None = None
    """Set while a gap is open (the book is out of sync after having been in sync)."""
    gap_reason: str | None = None
    gap_detail: dict[str, Any] | None = None
    resync_due: bool = False
    """A re-sync is complete once the next message makes it into the book."""
    checkpointed: int = -1
    """Last hour boundary (ns) this book was checkpointed at (or skipped, if unsynced)."""

    def load(self, bids: Iterable[Parsed], asks: Iterable[Parsed]) -> None:
        self.bids.load(bids)
        self.asks.load(asks)

    def apply(self, bids: Iterable[Parsed], asks: Iterable[Parsed]) -> None:
        self.bids.update(bids)
        self.asks.update(asks)


@dataclass(frozen=True, slots=True)
class _DepthEvent:
    first: int
    final: int
    prev_final: int | None
    recv_ns: int
    payload: bytes
    parsed: tuple[list[Parsed], list[Parsed]] | None
    """The checked (bids, asks). Dropped while the event waits in a buffer for a snapshot --
    with hundreds of books syncing under the REST weight limit, buffers hold minutes of
    events, and the payload is about a tenth of the size of its parsed levels -- and parsed
    again (the same bytes, so the same result) when the event is applied."""

    def levels(self, usdm: bool) -> tuple[list[Parsed], list[Parsed]]:
        if self.parsed is not None:
            return self.parsed
        again = _parse_depth(self.payload, self.recv_ns, usdm).parsed
        assert again is not None
        return again

    def lean(self) -> _DepthEvent:
        return replace(self, parsed=None)


@dataclass
class _BinanceBook(_Book):
    sync: bn.DepthSync = field(default_factory=lambda: bn.DepthSync(bn.SPOT))
    buffer: list[_DepthEvent] = field(default_factory=list)
    fetching: bool = False
    snapshot_ns: int | None = None
    applied: bool = False
    """An event was applied since the last snapshot was loaded."""


@dataclass
class _BybitBook(_Book):
    sync: bb.BookSync = field(default_factory=lambda: bb.BookSync(""))
    ts_ms: int = 0
    cts_ms: int | None = None
    update_id: int = 0
    cross_seq: int | None = None
    awaiting: int = 0
    """Resubscribe rounds waited for a snapshot (0 = not waiting)."""


def _int(value: Any, what: str) -> int:
    if type(value) is not int:
        raise RemoteProtocolError(f"{what}: expected an integer, got {value!r:.40}")
    return value


def _parse_depth(payload: bytes, recv_ns: int, usdm: bool) -> _DepthEvent:
    _env, inner = bn.COMBINED.split(payload)
    try:
        v = orjson.loads(inner)
    except orjson.JSONDecodeError as exc:
        raise RemoteProtocolError(f"depth event: invalid JSON: {exc}") from None
    if not isinstance(v, dict):
        raise RemoteProtocolError("depth event: not an object")
    try:
        return _DepthEvent(
            first=_int(v["U"], "U"),
            final=_int(v["u"], "u"),
            prev_final=_int(v["pu"], "pu") if usdm else None,
            recv_ns=recv_ns,
            payload=payload,
            parsed=(_levels(v["b"], "b"), _levels(v["a"], "a")),
        )
    except KeyError as exc:
        raise RemoteProtocolError(f"depth event without {exc}") from None
