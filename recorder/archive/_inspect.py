"""What an archive holds (``ticktape ls``) and whether it is sound (``ticktape verify``).

``verify`` reads every file and reports: unreadable or foreign files and rows whose typed
columns no longer re-render their payload (corruption), duplicate rows (the same connection
and sequence number twice) and hours listed twice (a compacted file and parts it absorbed,
both still present) -- each of these makes it exit non-zero -- and, for information, the
gaps the recorder itself recorded as session events and the sequence breaks in order-book
channels (Binance ``U``/``u``/``pu``, SBE first/last book update id, Bybit ``u``): holes the
exchange's own numbering reveals.

Book continuity is checked per stream in the archive's global order (receive time,
connection, sequence), across hours, not per connection: while a rollover's two connections
overlap the recorder keeps whichever copy of an update arrives first, so each connection's
own rows have holes the other one filled. An update already covered is skipped, and the
first update of a connection that does not follow on (a reconnect after a gap, which the
recorder records as a ``gap`` event) starts the stream afresh rather than counting as a break.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from recorder.archive._reader import PartitionFiles, list_partitions
from recorder.archive._schema import META_PREFIX, archive_schema, unit_cast_schema
from recorder.core._codec import codec_for
from recorder.core._message import SESSION_CHANNEL


@dataclass(frozen=True, slots=True)
class PartitionSummary:
    venue: str
    channel: str
    symbol: str
    date: str
    hour: int
    files: int
    rows: int
    bytes: int
    first_ns: int | None
    last_ns: int | None


def summarize(root: str) -> list[PartitionSummary]:
    """One summary per partition (from Parquet footers only: fast on large archives)."""
    fs, parts = list_partitions(root)
    out: list[PartitionSummary] = []
    for p in parts:
        rows = size = 0
        lo: int | None = None
        hi: int | None = None
        for path in p.paths:
            info = fs.get_file_info(path)
            size += info.size or 0
            with fs.open_input_file(path) as f:
                md = pq.ParquetFile(f).metadata
            rows += md.num_rows
            for rg in range(md.num_row_groups):
                col = md.row_group(rg).column(0)
                st = col.statistics
                if st is not None and st.has_min_max:
                    # The physical int64 values: recv_time is epoch ns.
                    mn, mx = int(st.min_raw), int(st.max_raw)
                    lo = mn if lo is None else min(lo, mn)
                    hi = mx if hi is None else max(hi, mx)
        k = p.key
        out.append(
            PartitionSummary(
                k.venue, k.channel, k.symbol, k.date, k.hour, len(p.paths), rows, size, lo, hi
            )
        )
    return out


@dataclass
class VerifyReport:
    files: int = 0
    rows: int = 0
    corrupt: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    double_listed: list[str] = field(default_factory=list)
    recorded_gaps: list[str] = field(default_factory=list)
    sequence_breaks: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    raw_rows: int = 0

    @property
    def ok(self) -> bool:
        """No corruption, no duplicate rows, no hour listed twice."""
        return not (self.corrupt or self.duplicates or self.double_listed)

    def lines(self) -> Iterator[str]:
        yield f"files: {self.files}  rows: {self.rows}  rows kept raw: {self.raw_rows}"
        for title, items in (
            ("CORRUPT", self.corrupt),
            ("duplicates", self.duplicates),
            ("hours listed twice (compacted file and absorbed parts)", self.double_listed),
            ("gaps recorded by the recorder", self.recorded_gaps),
            ("refused streams", self.refused),
            ("sequence breaks", self.sequence_breaks),
        ):
            yield f"{title}: {len(items)}"
            for it in items[:50]:
                yield f"  {it}"
            if len(items) > 50:
                yield f"  ... and {len(items) - 50} more"
        if self.corrupt:
            yield "result: CORRUPTION FOUND"
        elif not self.ok:
            yield "result: DUPLICATES FOUND"
        else:
            yield "result: OK"


def verify(root: str, *, check_render: bool = True) -> VerifyReport:
    """Read every file of the archive and check it; see the module docstring."""
    fs, parts = list_partitions(root)
    rep = VerifyReport()
    chains: _BookChains | None = None
    for p in parts:
        k = p.key
        if p.superseded:
            names = ", ".join(posixpath.basename(x) for x in p.superseded)
            rep.double_listed.append(
                f"{k.relpath()}: parts already in its compacted file are still present: {names}"
            )
        # Partitions come sorted by venue, channel, symbol, then hour: a stream's chain
        # carries on into its next hour.
        if chains is None or chains.of != (k.venue, k.channel, k.symbol):
            chains = _BookChains(k.venue, k.channel, k.symbol)
        _verify_partition(fs, p, rep, check_render, chains)
    return rep


def _verify_partition(
    fs: Any, p: PartitionFiles, rep: VerifyReport, check_render: bool, chains: _BookChains
) -> None:
    k = p.key
    try:
        codec = codec_for(k.venue, k.channel)
    except KeyError:
        rep.corrupt.append(f"{k.relpath()}: unknown venue/channel")
        return
    schema = archive_schema(codec)
    tables: list[pa.Table] = []
    for path in p.paths:
        rep.files += 1
        try:
            with fs.open_input_file(path) as f:
                t = pq.read_table(f)
            meta = t.schema.metadata or {}
            if meta.get((META_PREFIX + "format_version").encode()) is None:
                raise ValueError("not a ticktape file (no format_version)")
            t = t.cast(schema)
        except (OSError, pa.ArrowException, ValueError) as exc:
            rep.corrupt.append(f"{path}: {exc}")
            continue
        tables.append(t)
    if not tables:
        return
    t = pa.concat_tables(tables).cast(unit_cast_schema(schema))
    rep.rows += t.num_rows
    cols = {n: t.column(n).to_pylist() for n in t.column_names}
    typed = [f.name for f in codec.typed_fields]
    seen: set[tuple[str, int]] = set()
    for i in range(t.num_rows):
        key = (cols["conn"][i], cols["seq"][i])
        if key in seen and k.channel != SESSION_CHANNEL:
            rep.duplicates.append(f"{k.relpath()}: conn {key[0]} seq {key[1]}")
        seen.add(key)
        if cols["raw"][i] is not None:
            rep.raw_rows += 1
        elif check_render:
            fields = {n: cols[n][i] for n in typed}
            try:
                codec.render(fields, cols["stream"][i], cols["envelope"][i])
            except Exception as exc:  # a row that cannot be rendered has lost its payload
                rep.corrupt.append(f"{k.relpath()}: row {i} does not render: {exc}")
    if k.channel == SESSION_CHANNEL:
        for i in range(t.num_rows):
            ev = cols["event"][i]
            if ev == "gap":
                streams = orjson.loads(cols["streams"][i] or "[]")
                rep.recorded_gaps.append(
                    f"{k.venue} {cols['conn'][i]}: {cols['reason'][i]} "
                    f"from {cols['gap_start'][i]} to {cols['gap_end'][i]} ns "
                    f"({(cols['gap_end'][i] - cols['gap_start'][i]) / 1e9:.3f} s, "
                    f"{len(streams)} streams)"
                )
            elif ev == "refused":
                rep.refused.append(
                    f"{k.venue} {cols['conn'][i]}: {cols['streams'][i]} ({cols['reason'][i]})"
                )
    else:
        _sequence_breaks(k.venue, k.channel, k.relpath(), cols, rep, chains)


# Column names of the book numbering per venue: (first id, last id, previous last id).
_BINANCE_IDS: dict[str, tuple[str, str, str | None]] = {
    "binance-spot": ("first_update_id", "final_update_id", None),
    "binance-usdm": ("first_update_id", "final_update_id", "prev_final_update_id"),
    "binance-sbe": ("first_book_update_id", "last_book_update_id", None),
}


class _BookChains:
    """The last update id of each stream of one (venue, channel, symbol), and the
    connections that delivered any of its updates (see the module docstring)."""

    def __init__(self, venue: str, channel: str, symbol: str) -> None:
        self.of = (venue, channel, symbol)
        self.last: dict[str, int] = {}
        self.conns: dict[str, set[str]] = defaultdict(set)

    def follow(self, stream: str, conn: str, first: int, last: int, prev: int | None) -> str | None:
        """Account for one update covering ids ``first..last`` (``prev``: the previous
        update's last id, when the venue says). A description of the hole before it, if any."""
        known = self.conns[stream]
        new_conn = conn not in known
        known.add(conn)
        before = self.last.get(stream)
        if before is None:
            self.last[stream] = last
            return None
        if last <= before:
            return None  # already covered (the other copy of an overlapping connection)
        self.last[stream] = last
        hole = prev > before if prev is not None else first > before + 1
        if not hole or new_conn:
            return None
        if prev is not None:
            return f"after u={before} got pu={prev} (U={first}, u={last})"
        return f"after u={before} got U={first}"

    def restart(self, stream: str, conn: str, last: int) -> None:
        """A snapshot: the book starts again from ``last``."""
        self.conns[stream].add(conn)
        self.last[stream] = last


def _sequence_breaks(
    venue: str,
    channel: str,
    where: str,
    cols: dict[str, list[Any]],
    rep: VerifyReport,
    chains: _BookChains,
) -> None:
    """Holes in the exchange's own book numbering, per stream in global order."""
    if venue.startswith("bybit"):
        if channel != "orderbook" or "update_id" not in cols or "msg_type" not in cols:
            return
    elif channel != "depth" or venue not in _BINANCE_IDS:
        return
    n = len(cols["seq"])
    order = sorted(range(n), key=lambda i: (cols["recv_time"][i], cols["conn"][i], cols["seq"][i]))
    if venue.startswith("bybit"):
        for i in order:
            u, kind = cols["update_id"][i], cols["msg_type"][i]
            if u is None:
                continue
            stream, conn = cols["stream"][i], cols["conn"][i]
            if kind == "snapshot":
                chains.restart(stream, conn, u)
                continue
            hole = chains.follow(stream, conn, u, u, None)
            if hole is not None:
                rep.sequence_breaks.append(
                    f"{where} {stream} on {conn}: {hole.replace('U=', 'u=')}"
                )
        return
    first_col, last_col, prev_col = _BINANCE_IDS[venue]
    if first_col not in cols or last_col not in cols:
        return
    for i in order:
        first, last = cols[first_col][i], cols[last_col][i]
        if first is None or last is None:
            continue
        prev = cols[prev_col][i] if prev_col is not None else None
        stream, conn = cols["stream"][i], cols["conn"][i]
        hole = chains.follow(stream, conn, first, last, prev)
        if hole is not None:
            rep.sequence_breaks.append(f"{where} {stream} on {conn}: {hole}")


def group_summary(parts: list[PartitionSummary]) -> list[dict[str, Any]]:
    """``ls`` rows: one per (venue, channel), with symbols, hours, rows, bytes and span."""
    acc: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {
            "symbols": set(),
            "hours": set(),
            "rows": 0,
            "bytes": 0,
            "files": 0,
            "first": None,
            "last": None,
        }
    )
    for p in parts:
        a = acc[(p.venue, p.channel)]
        a["symbols"].add(p.symbol)
        a["hours"].add((p.date, p.hour))
        a["rows"] += p.rows
        a["bytes"] += p.bytes
        a["files"] += p.files
        if p.first_ns is not None:
            a["first"] = p.first_ns if a["first"] is None else min(a["first"], p.first_ns)
        if p.last_ns is not None:
            a["last"] = p.last_ns if a["last"] is None else max(a["last"], p.last_ns)
    out = []
    for (venue, channel), a in sorted(acc.items()):
        out.append(
            {
                "venue": venue,
                "channel": channel,
                "symbols": sorted(a["symbols"]),
                "hours": len(a["hours"]),
                "files": a["files"],
                "rows": a["rows"],
                "bytes": a["bytes"],
                "first_ns": a["first"],
                "last_ns": a["last"],
            }
        )
    return out
