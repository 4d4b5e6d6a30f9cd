"""Read an archive back as recorder :class:`~recorder.Message` objects, in global order.

Rows are partitioned by receive hour, so every message of hour H lives in hour H's
partitions: the reader walks the hours in order and, within one hour, k-way merges the files
of every selected partition by (recv_ns, conn, seq). Each file is read one record batch at a
time, so memory stays bounded by a few batches per open file, whatever the time span.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import trio

from recorder import Message
from recorder._archive import (
    PartitionFiles,
    _unit_cast_schema,
    archive_schema,
    list_partitions,
)
from recorder._channels import codec_for
from recorder._errors import ArchiveError
from recorder._paths import PartitionKey

_NS_PER_HOUR = 3_600_000_000_000


@dataclass(frozen=True)
class Selection:
    """Which part of an archive to read. ``None`` means everything; times are epoch ns,
    ``start_ns`` inclusive and ``end_ns`` exclusive, on the receive time."""

    venues: frozenset[str] | None = None
    channels: frozenset[str] | None = None
    symbols: frozenset[str] | None = None
    start_ns: int | None = None
    end_ns: int | None = None

    @classmethod
    def of(
        cls,
        venues: Iterable[str] | None = None,
        channels: Iterable[str] | None = None,
        symbols: Iterable[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> Selection:
        def fz(x: Iterable[str] | None) -> frozenset[str] | None:
            return None if x is None else frozenset(x)

        return cls(fz(venues), fz(channels), fz(symbols), start_ns, end_ns)

    def wants(self, key: PartitionKey) -> bool:
        if self.venues is not None and key.venue not in self.venues:
            return False
        if self.channels is not None and key.channel not in self.channels:
            return False
        if self.symbols is not None and key.symbol not in self.symbols:
            return False
        if self.start_ns is not None and key.hour_end_ns <= self.start_ns:
            return False
        return not (self.end_ns is not None and key.hour_start_ns >= self.end_ns)


def _file_messages(
    fs: pafs.FileSystem, path: str, key: PartitionKey, sel: Selection, batch_rows: int
) -> Iterator[tuple[int, str, int, Message]]:
    codec = codec_for(key.venue, key.channel)
    schema = archive_schema(codec)
    int_schema = _unit_cast_schema(schema)
    typed = [f.name for f in codec.typed_fields]
    try:
        f = fs.open_input_file(path)
    except OSError as exc:
        raise ArchiveError(f"cannot open {path}: {exc}") from exc
    with f:
        try:
            pf = pq.ParquetFile(f)
        except pa.ArrowInvalid as exc:
            raise ArchiveError(f"cannot read {path}: {exc}") from exc
        for batch in pf.iter_batches(batch_size=batch_rows):
            t = pa.Table.from_batches([batch]).cast(schema).cast(int_schema)
            cols: dict[str, list[Any]] = {n: t.column(n).to_pylist() for n in t.column_names}
            recv = cols["recv_time"]
            for i in range(t.num_rows):
                r = recv[i]
                if sel.start_ns is not None and r < sel.start_ns:
                    continue
                if sel.end_ns is not None and r >= sel.end_ns:
                    continue
                fields = {n: cols[n][i] for n in typed}
                payload = cols["raw"][i]
                stream = cols["stream"][i]
                if payload is None:
                    payload = codec.render(fields, stream, cols["envelope"][i])
                m = Message(
                    venue=key.venue,
                    stream=stream,
                    channel=key.channel,
                    symbol=key.symbol,
                    recv_ns=r,
                    conn=cols["conn"][i],
                    seq=cols["seq"][i],
                    payload=payload,
                    fields=fields,
                    event_ns=codec.event_ns(fields),
                )
                yield (r, m.conn, m.seq, m)


class ArchiveReader:
    """Messages of an archive selection in (recv_ns, conn, seq) order, as a plain iterator or
    a Trio async iterator (optionally paced by the recorded receive times)."""

    def __init__(self, root: str, selection: Selection | None = None, *, batch_rows: int = 8192):
        self.root = root
        self.selection = selection or Selection()
        self.batch_rows = batch_rows
        self.fs, parts = list_partitions(root)
        self.partitions: list[PartitionFiles] = [p for p in parts if self.selection.wants(p.key)]

    def hours(self) -> list[int]:
        return sorted({p.key.hour_start_ns // _NS_PER_HOUR for p in self.partitions})

    def __iter__(self) -> Iterator[Message]:
        by_hour: dict[int, list[PartitionFiles]] = defaultdict(list)
        for p in self.partitions:
            by_hour[p.key.hour_start_ns // _NS_PER_HOUR].append(p)
        for h in sorted(by_hour):
            streams = [
                _file_messages(self.fs, path, p.key, self.selection, self.batch_rows)
                for p in by_hour[h]
                for path in p.paths
            ]
            for _, _, _, m in heapq.merge(*streams, key=lambda t: (t[0], t[1], t[2])):
                yield m

    async def aiter(
        self, *, speed: float | None = None, clock: Callable[[], float] = trio.current_time
    ) -> AsyncIterator[Message]:
        """Yield messages; ``speed`` None = as fast as possible, 1.0 = real time, N = N x.

        Pacing follows Trio's clock, so tests on a MockClock replay hours instantly yet
        observe the exact recorded spacing.
        """
        t0: float | None = None
        r0 = 0
        n = 0
        for m in self:
            if speed is not None:
                if t0 is None:
                    t0, r0 = clock(), m.recv_ns
                due = t0 + (m.recv_ns - r0) / 1e9 / speed
                if due > clock():
                    await trio.sleep_until(due)
                else:
                    n += 1
                    if n % 512 == 0:
                        await trio.lowlevel.checkpoint()
            else:
                n += 1
                if n % 512 == 0:
                    await trio.lowlevel.checkpoint()
            yield m

    async def send_to(
        self, send: trio.MemorySendChannel[Message], *, speed: float | None = None
    ) -> None:
        """Feed a memory channel (the same interface a live recorder consumer reads)."""
        async with send:
            async for m in self.aiter(speed=speed):
                await send.send(m)


def open_archive(
    root: str,
    *,
    venues: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    symbols: Sequence[str] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> ArchiveReader:
    """Open an archive for replay with optional filters (receive-time range in epoch ns)."""
    return ArchiveReader(root, Selection.of(venues, channels, symbols, start_ns, end_ns))
