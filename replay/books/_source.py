"""Reading what a book rebuild needs from the archive: the depth events, snapshots and
checkpoints of one symbol, hour by hour, merged in archive order.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from recorder import HOUR_NS
from recorder.archive import Selection, read_table, select
from recorder.venues.binance import (
    USDM,
)
from recorder.venues.binance import VENUES as BINANCE_VENUES
from recorder.venues.bybit import VENUES as BYBIT_VENUES
from replay.books._engines import _Ev

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


def _recv_ns(t: pa.Table) -> pa.Array:
    return pc.cast(t.column("recv_time"), pa.int64())


class _Source:
    """The selected partitions of one (venue, symbol) book, read hour by hour."""

    def __init__(self, root: str, venue: str, symbol: str, layout: _Layout) -> None:
        self.venue = venue
        self.layout = layout
        self.listing = select(root, Selection.of([venue], layout.channels, [symbol]))
        self.fs = self.listing.fs

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
        for _, parts in self.listing.hours(lo_ns, hi_ns):
            for p in parts:
                if p.key.channel != self.layout.diff_channel:
                    continue
                for path in p.paths:
                    t = read_table(self.fs, path, [col])
                    seen.update(s for s in pc.unique(t.column(col)).to_pylist() if s is not None)
        return sorted(seen)

    def anchor(
        self, start_ns: int, stream: str | None, lookback_hours: int | None
    ) -> tuple[int, str] | None:
        """Receive time and channel of the latest snapshot/checkpoint at or before
        ``start_ns``, searching back hour by hour."""
        h0 = _hour(start_ns)
        bybit = self.layout.family == "bybit"
        for h, parts in reversed(self.listing.hours(None, start_ns + 1)):
            if lookback_hours is not None and h < h0 - lookback_hours:
                break
            best: tuple[int, str] | None = None
            for p in parts:
                ch = p.key.channel
                kind = self._kind(ch)
                if kind == "diff" and not bybit:
                    continue
                cols = ["recv_time", "topic", "msg_type"] if bybit else ["recv_time"]
                for path in p.paths:
                    t = read_table(self.fs, path, cols, end_ns=start_ns + 1)
                    if bybit:
                        if stream is not None:
                            t = t.filter(pc.equal(t.column("topic"), stream))
                        if kind == "diff":
                            t = t.filter(pc.equal(t.column("msg_type"), "snapshot"))
                    r = pc.max(_recv_ns(t)).as_py()
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
        t = read_table(self.fs, path, self._columns(kind), start_ns=lo, end_ns=hi)
        if stream is not None and (kind == "diff" or self.layout.family == "bybit"):
            t = t.filter(pc.equal(t.column(self._stream_col()), stream))
        if t.num_rows == 0:
            return []
        recv = _recv_ns(t)
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
        for _, parts in self.listing.hours(lo, hi):
            lists = [
                self._file_events(path, p.key.channel, stream, lo, hi)
                for p in parts
                for path in p.paths
            ]
            yield from heapq.merge(*lists, key=_Ev.key)
