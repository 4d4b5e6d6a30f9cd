"""What waits to be written: per-partition buffers, staged rows, and their encoding.

Messages are buffered per partition (venue, channel, symbol, hour), handed over as
:class:`Rows` (cheap to pickle for the writer process), and encoded into the channel's typed
Arrow columns: by the batch encoder where it can (:mod:`recorder.archive._columnar`), row by
row otherwise, each row checked to re-render its payload exactly."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from recorder.archive._columnar import ColumnarEncoder, encoder_for
from recorder.archive._layout import PartitionKey, date_hour
from recorder.core import HOUR_NS
from recorder.core._codec import ChannelCodec, codec_for
from recorder.core._errors import RemoteProtocolError
from recorder.core._message import UNPARSED_CHANNEL, Message
from recorder.venues._channels import RawChannel

log = logging.getLogger("ticktape.archive")


def as_unparsed(m: Message, error: str, expected_channel: str) -> Message:
    """The ``unparsed`` form of a frame its channel's codec could not decode (bytes kept)."""
    return Message(
        venue=m.venue,
        stream=m.stream,
        channel=UNPARSED_CHANNEL,
        symbol=m.symbol,
        recv_ns=m.recv_ns,
        conn=m.conn,
        seq=m.seq,
        payload=m.payload,
        fields={"error": error, "expected_channel": expected_channel},
    )


@dataclass(frozen=True, slots=True)
class WriterStatistics:
    """Counters of an :class:`ArchiveWriter` (all monotonic except ``pending_*``)."""

    rows_written: int
    raw_rows: int
    unparsed_rows: int
    files_written: int
    bytes_written: int
    compactions: int
    write_errors: int
    pending_rows: int
    open_partitions: int
    last_error: str | None


@dataclass(slots=True)
class Rows:
    """Buffered messages of one partition, column by column: what a writer is handed.

    Cheap to pickle (no per-message objects) for the writer process, and the shape the batch
    encoder wants. ``fields`` is only filled for raw channels, whose fields (an ``unparsed``
    frame's error) cannot be derived from the bytes.
    """

    recv: list[int]
    conn: list[str]
    seq: list[int]
    stream: list[str]
    payload: list[bytes]
    fields: list[Mapping[str, Any] | None]

    @classmethod
    def of(cls, key: PartitionKey, msgs: list[Message]) -> Rows:
        raw_channel = isinstance(codec_for(key.venue, key.channel), RawChannel)
        return cls(
            [m.recv_ns for m in msgs],
            [m.conn for m in msgs],
            [m.seq for m in msgs],
            [m.stream for m in msgs],
            [m.payload for m in msgs],
            [m._fields for m in msgs] if raw_channel else [],
        )

    def __len__(self) -> int:
        return len(self.recv)

    def message(self, key: PartitionKey, i: int) -> Message:
        return Message(
            venue=key.venue,
            stream=self.stream[i],
            channel=key.channel,
            symbol=key.symbol,
            recv_ns=self.recv[i],
            conn=self.conn[i],
            seq=self.seq[i],
            payload=self.payload[i],
            fields=self.fields[i] if self.fields else None,
        )


_PART: Final = "__part"
_ORDER: Final = [("recv_time", "ascending"), ("conn", "ascending"), ("seq", "ascending")]
_ENCODERS: dict[tuple[str, str], ColumnarEncoder | None] = {}


def _encoder(codec: ChannelCodec) -> ColumnarEncoder | None:
    key = (codec.venue, codec.channel)
    if key not in _ENCODERS:
        _ENCODERS[key] = encoder_for(codec)
    return _ENCODERS[key]


def _encode(
    codec: ChannelCodec, schema: pa.Schema, batch: Sequence[tuple[PartitionKey, Rows]]
) -> tuple[pa.Table, int, list[tuple[PartitionKey, Message, str]]]:
    """Encode the rows of several partitions of one (venue, channel) at once.

    Returns a table in ``schema`` plus a trailing ``__part`` column (the index of each row's
    partition in ``batch``), sorted by (partition, recv_time, conn, seq); the number of rows
    that keep raw bytes; and the messages that could not be decoded at all, apart.

    Rows go through the batch encoder where the channel has one (see
    :mod:`recorder.archive._columnar`), and through the per-row path otherwise or where it declines.
    """
    recv = [x for _, r in batch for x in r.recv]
    conn = [x for _, r in batch for x in r.conn]
    seq = [x for _, r in batch for x in r.seq]
    stream = [x for _, r in batch for x in r.stream]
    payload = [x for _, r in batch for x in r.payload]
    part = np.repeat(np.arange(len(batch), dtype=np.int32), [len(r) for _, r in batch])
    n = len(recv)
    encoder = _encoder(codec)
    tables: list[pa.Table] = []
    if encoder is not None and n:
        enc = encoder.encode(payload, stream)
        ok = enc.ok
        columns = [
            pa.array(recv, pa.timestamp("ns", tz="UTC")),
            pa.array(conn, pa.string()),
            pa.array(seq, pa.int64()),
            pa.array(stream, pa.string()),
            enc.envelope,
            *enc.columns,
            pa.nulls(n, pa.binary()),
            pa.array(part),
        ]
        fast = pa.Table.from_arrays(columns, schema=schema.append(pa.field(_PART, pa.int32())))
        tables.append(fast.filter(pa.array(ok)) if not ok.all() else fast)
        slow = np.flatnonzero(~ok).tolist()
    else:
        slow = list(range(n))
    raw_rows = 0
    bad: list[tuple[PartitionKey, Message, str]] = []
    if slow:
        table, raw_rows, bad_rows = _encode_rows(codec, schema, batch, part, slow)
        tables.append(table)
        bad = bad_rows
    if not tables:
        return schema.append(pa.field(_PART, pa.int32())).empty_table(), 0, bad
    out = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    return out.sort_by([(_PART, "ascending"), *_ORDER]), raw_rows, bad


def _encode_rows(
    codec: ChannelCodec,
    schema: pa.Schema,
    batch: Sequence[tuple[PartitionKey, Rows]],
    part: npt.NDArray[np.int32],
    rows: list[int],
) -> tuple[pa.Table, int, list[tuple[PartitionKey, Message, str]]]:
    """The per-row path: decode, render the typed row back and compare with the payload."""
    starts = np.concatenate(([0], np.cumsum([len(r) for _, r in batch])))
    names = [f.name for f in codec.typed_fields]
    cols: dict[str, list[Any]] = {n: [] for n in names}
    recv: list[int] = []
    conn: list[str] = []
    seq: list[int] = []
    stream: list[str] = []
    env: list[int] = []
    raw: list[bytes | None] = []
    parts: list[int] = []
    bad: list[tuple[PartitionKey, Message, str]] = []
    raw_rows = 0
    is_raw = isinstance(codec, RawChannel)
    for i in rows:
        p = int(part[i])
        key, r = batch[p]
        j = i - int(starts[p])
        data = r.payload[j]
        if is_raw:
            fields: Mapping[str, Any] = (r.fields[j] if r.fields else None) or {}
            envelope, exact = 0, False
        else:
            try:
                d = codec.decode(data)
            except RemoteProtocolError as exc:
                bad.append((key, r.message(key, j), str(exc)))
                continue
            fields, envelope, exact = d.fields, d.envelope, d.exact
            if exact:
                try:
                    exact = codec.render(fields, r.stream[j], envelope) == data
                except Exception:  # any failure to render just means: keep the bytes
                    exact = False
        for name in names:
            cols[name].append(fields.get(name))
        recv.append(r.recv[j])
        conn.append(r.conn[j])
        seq.append(r.seq[j])
        stream.append(r.stream[j])
        env.append(envelope)
        parts.append(p)
        if exact:
            raw.append(None)
        else:
            raw.append(data)
            raw_rows += 1
    arrays = [
        pa.array(recv, pa.timestamp("ns", tz="UTC")),
        pa.array(conn, pa.string()),
        pa.array(seq, pa.int64()),
        pa.array(stream, pa.string()),
        pa.array(env, pa.int8()),
        *(pa.array(cols[f.name], f.type) for f in codec.typed_fields),
        pa.array(raw, pa.binary()),
        pa.array(parts, pa.int32()),
    ]
    table = pa.Table.from_arrays(arrays, schema=schema.append(pa.field(_PART, pa.int32())))
    return table, raw_rows, bad


_Staged = tuple[pa.Table, list[PartitionKey]]
"""An ``_encode`` result (with its ``__part`` column) and the partitions it indexes."""


def _merge_staged(items: list[_Staged]) -> tuple[list[PartitionKey], pa.Table]:
    """One table (sorted by partition, then archive order) out of a channel's staged ones,
    its ``__part`` column renumbered over the returned list of partitions."""
    if len(items) == 1:
        table, keys = items[0]
        return keys, table
    ids: dict[PartitionKey, int] = {}
    tables = []
    for table, keys in items:
        remap = np.array([ids.setdefault(k, len(ids)) for k in keys], dtype=np.int32)
        part = remap[np.asarray(table.column(_PART).to_numpy(), dtype=np.int32)]
        tables.append(table.set_column(table.num_columns - 1, _PART, pa.array(part)))
    merged = pa.concat_tables(tables).sort_by([(_PART, "ascending"), *_ORDER])
    return list(ids), merged


def _split_parts(table: pa.Table, schema: pa.Schema, count: int) -> list[pa.Table]:
    """The rows of each partition index 0..count-1 of an ``_encode`` result, in ``schema``."""
    part = np.asarray(table.column(_PART).to_numpy(), dtype=np.int32)
    bounds = np.searchsorted(part, np.arange(count + 1), side="left")
    body = pa.Table.from_arrays(table.columns[: len(schema)], schema=schema)
    return [body.slice(int(a), int(b - a)) for a, b in pairwise(bounds)]


class PartitionBuffer:
    """Messages waiting to be written, per partition.

    ``add`` is on the receive path: a dict lookup per message, the date and hour are only
    worked out once per (venue, channel, symbol, hour)."""

    def __init__(self) -> None:
        self.buffers: dict[PartitionKey, list[Message]] = defaultdict(list)
        self._keys: dict[tuple[str, str, str, int], PartitionKey] = {}

    def add(self, msg: Message) -> None:
        k = (msg.venue, msg.channel, msg.symbol, msg.recv_ns // HOUR_NS)
        key = self._keys.get(k)
        if key is None:
            date, hour = date_hour(msg.recv_ns)
            key = self._keys[k] = PartitionKey(msg.venue, msg.channel, msg.symbol, date, hour)
            if len(self._keys) > 100_000:
                self._keys.clear()
        self.buffers[key].append(msg)

    def take(self) -> dict[PartitionKey, list[Message]]:
        """Detach what is buffered (to be written in a worker thread or process)."""
        pending = self.buffers
        self.buffers = defaultdict(list)
        return pending

    def __len__(self) -> int:
        return sum(len(v) for v in self.buffers.values())


class BufferedWriter:
    """The buffering side both writers share: the receive path only ever calls these."""

    _pending: PartitionBuffer

    def add(self, msg: Message) -> None:
        self._pending.add(msg)

    def add_many(self, msgs: Iterable[Message]) -> None:
        for m in msgs:
            self.add(m)

    def take_pending(self) -> dict[PartitionKey, list[Message]]:
        """Detach the current buffers (to be written in a worker thread or process)."""
        return self._pending.take()


__all__ = ["BufferedWriter", "PartitionBuffer", "Rows", "WriterStatistics", "as_unparsed"]
