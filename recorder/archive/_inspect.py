"""What an archive holds (``ticktape ls``) and whether it is sound (``ticktape verify``).

``verify`` reads every file and reports: unreadable or foreign files (corruption: non-zero
exit), rows whose typed columns no longer re-render their payload (corruption), duplicate
rows (the same connection and sequence number twice), the gaps the recorder itself recorded
as session events, and sequence breaks inside order-book channels (Binance ``U``/``u``/``pu``,
Bybit ``u``), which are gaps the exchange's own numbering reveals.
"""

from __future__ import annotations

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
    recorded_gaps: list[str] = field(default_factory=list)
    sequence_breaks: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    raw_rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.corrupt

    def lines(self) -> Iterator[str]:
        yield f"files: {self.files}  rows: {self.rows}  rows kept raw: {self.raw_rows}"
        for title, items in (
            ("CORRUPT", self.corrupt),
            ("duplicates", self.duplicates),
            ("gaps recorded by the recorder", self.recorded_gaps),
            ("refused streams", self.refused),
            ("sequence breaks", self.sequence_breaks),
        ):
            yield f"{title}: {len(items)}"
            for it in items[:50]:
                yield f"  {it}"
            if len(items) > 50:
                yield f"  ... and {len(items) - 50} more"
        yield "result: " + ("OK" if self.ok else "CORRUPTION FOUND")


def verify(root: str, *, check_render: bool = True) -> VerifyReport:
    """Read every file of the archive and check it; see the module docstring."""
    fs, parts = list_partitions(root)
    rep = VerifyReport()
    for p in parts:
        _verify_partition(fs, p, rep, check_render)
    return rep


def _verify_partition(fs: Any, p: PartitionFiles, rep: VerifyReport, check_render: bool) -> None:
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
        _sequence_breaks(k.venue, k.channel, k.relpath(), cols, rep)


def _sequence_breaks(
    venue: str, channel: str, where: str, cols: dict[str, list[Any]], rep: VerifyReport
) -> None:
    """Breaks in the exchange's own book numbering, per (connection, stream)."""
    if channel not in ("depth",) and not (venue.startswith("bybit") and channel == "orderbook"):
        return
    last: dict[tuple[str, str], int] = {}
    n = len(cols["seq"])
    if venue.startswith("binance"):
        first_col = "first_update_id" if "first_update_id" in cols else None
        last_col = "final_update_id" if "final_update_id" in cols else None
        prev_col = "prev_final_update_id" if "prev_final_update_id" in cols else None
        if first_col is None or last_col is None:
            return
        for i in range(n):
            key = (cols["conn"][i], cols["stream"][i])
            U, u = cols[first_col][i], cols[last_col][i]
            if U is None or u is None:
                continue
            if key in last:
                prev = last[key]
                pu = cols[prev_col][i] if prev_col else None
                broken = (pu != prev) if pu is not None else (prev + 1 != U)
                if broken:
                    rep.sequence_breaks.append(
                        f"{where} {key[1]} on {key[0]}: after u={prev} got U={U}"
                    )
            last[key] = u
    else:
        if "update_id" not in cols or "type" not in cols:
            return
        for i in range(n):
            key = (cols["conn"][i], cols["stream"][i])
            u = cols["update_id"][i]
            if cols["type"][i] == "snapshot" or u is None:
                last[key] = u
                continue
            if key in last and last[key] is not None and u != last[key] + 1:
                rep.sequence_breaks.append(
                    f"{where} {key[1]} on {key[0]}: after u={last[key]} got u={u}"
                )
            last[key] = u


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
