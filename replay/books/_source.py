"""Reading what a book rebuild needs from the archive: the depth events, snapshots and
checkpoints of one symbol, hour by hour, merged in archive order.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from recorder import HOUR_NS
from recorder.archive import PartitionFiles, list_partitions
from recorder.core import ArchiveError
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
