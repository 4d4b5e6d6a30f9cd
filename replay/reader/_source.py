"""One selected partition's files, read a record batch at a time, with payloads rendered from
the typed columns (:mod:`recorder.archive`), in archive order.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from recorder import Message
from recorder.archive import (
    PartitionKey,
    archive_schema,
    payloads,
    typed_rows,
)
from recorder.core import ArchiveError, ChannelCodec, codec_for, replayed_messages
from recorder.venues import JsonChannel, Obj, Str
from replay.reader._selection import Selection


def _read_schema(codec: ChannelCodec) -> pa.Schema:
    """The schema replay reads a file of ``codec`` as: the archive schema, with the columns
    that hold few distinct strings (connection, stream, symbol...) dictionary-encoded as
    Parquet stores them, so that each distinct value is handled once."""
    cached = _SCHEMAS.get((codec.venue, codec.channel))
    if cached is not None and cached[0] is codec:
        return cached[1]
    schema = archive_schema(codec)
    names = {"conn", "stream"}
    root = getattr(getattr(codec, "payload", None), "root", None)
    if type(root) is Obj:
        names |= {k.node.name for k in root.keys if isinstance(k.node, Str)}
    fields = [
        f.with_type(pa.dictionary(pa.int32(), f.type)) if f.name in names else f for f in schema
    ]
    read = pa.schema(fields, metadata=schema.metadata)
    _SCHEMAS[(codec.venue, codec.channel)] = (codec, read)
    return read


_SCHEMAS: dict[tuple[str, str], tuple[ChannelCodec, pa.Schema]] = {}


_CHUNK = 4096
"""Messages handed to the consuming thread at a time: small enough that their payloads are
allocated while the previous ones are freed (memory stays in cache), large enough that the
per-chunk work is negligible."""

_QUEUE = 4
"""Chunks the producer may be ahead of the consumer."""

_THREADS = 2
"""Threads reading and rendering files ahead of the merge; with 0, everything (merge included)
runs in the consuming thread."""

_RENDER_ROWS = 16384
"""Rows of small files rendered together: each Arrow call costs microseconds whatever its size,
yet arrays much larger than this fall out of the CPU's caches between passes."""

Decoded = tuple[dict[str, Any], int | None]
"""A row's stored fields and event time (for channels whose bytes do not carry them)."""


class _Metas:
    """The (venue, channel, symbol, stream, conn) combinations of one iteration, numbered:
    rows carry a number, and each message gets the shared strings of its combination."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str, str, str, str], int] = {}
        self.values: list[tuple[str, str, str, str, str]] = []
        self.objects: npt.NDArray[np.object_] = np.empty(0, dtype=object)
        self.rank = np.empty(0, np.intp)

    def of(self, key: PartitionKey, stream: pa.Array, conn: pa.Array) -> npt.NDArray[np.intp]:
        """Every row's number, from its dictionary-encoded stream and connection."""
        streams = stream.dictionary.to_pylist()
        conns = conn.dictionary.to_pylist()
        table = np.array(
            [self._id((key.venue, key.channel, key.symbol, s, c)) for s in streams for c in conns],
            dtype=np.intp,
        )
        if len(table) == 1:
            return np.full(len(stream), table[0], np.intp)
        si = np.asarray(stream.indices.to_numpy(), np.intp)
        ci = np.asarray(conn.indices.to_numpy(), np.intp)
        out: npt.NDArray[np.intp] = table[si * len(conns) + ci]
        return out

    def _id(self, meta: tuple[str, str, str, str, str]) -> int:
        i = self.ids.get(meta)
        if i is None:
            i = self.ids[meta] = len(self.values)
            self.values.append(meta)
            self.objects = np.empty(len(self.values), dtype=object)
            self.objects[:] = self.values
            conns = sorted({m[4] for m in self.values})
            rank = {c: r for r, c in enumerate(conns)}
            self.rank = np.array([rank[m[4]] for m in self.values], np.intp)
        return i


@dataclass
class _Chunk:
    """The next rows of a file, rendered (the columnar work, done on a pool thread)."""

    recv: npt.NDArray[np.int64]
    seq: npt.NDArray[np.int64]
    stream: pa.Array  # dictionary-encoded
    conn: pa.Array  # dictionary-encoded
    payload: pa.Array  # binary
    decoded: list[Decoded] | None
    last: bool  # nothing follows in the file


class _Source:
    """One file of a partition, read a chunk at a time.

    ``recv`` .. ``decoded`` hold the rows read but not yet emitted, in file order (which is
    archive order): a chunk, or more while rows share the merge frontier's receive time. The
    next chunk is read ahead on a pool thread (decoding Parquet and rendering payloads run
    mostly without the GIL).
    """

    def __init__(
        self,
        fs: pafs.FileSystem,
        path: str,
        key: PartitionKey,
        sel: Selection,
        batch_rows: int,
        pool: ThreadPoolExecutor,
    ) -> None:
        self.key = key
        self.pool = pool
        self.next: Future[_Chunk | None] | None = None
        self.codec = codec_for(key.venue, key.channel)
        self.schema = _read_schema(self.codec)
        # Rows whose fields cannot be decoded from the payload again carry the stored ones.
        self.eager = not isinstance(self.codec, JsonChannel)
        self.sel = sel
        self.fs, self.path, self.batch_rows = fs, path, batch_rows
        self.batches: Iterator[pa.RecordBatch] | None = None
        self.file: Any = None
        self.constants: dict[str, Callable[[int], pa.Array]] = {}
        self.rest: pa.RecordBatch | None = None  # read from the file, not yet rendered
        self.finished = False  # nothing left in the file
        self.done = False  # nor in ``rest``: what is buffered is all there is
        self.recv = np.empty(0, np.int64)
        self.seq = np.empty(0, np.int64)
        self.meta = np.empty(0, np.intp)
        self.payload: pa.Array = pa.array([], pa.binary())
        self.decoded: list[Decoded] = []

    def __len__(self) -> int:
        return len(self.recv)

    @property
    def last(self) -> int:
        return int(self.recv[-1])

    def _open(self) -> Iterator[pa.RecordBatch]:
        try:
            self.file = self.fs.open_input_file(self.path)
        except OSError as exc:
            raise ArchiveError(f"cannot open {self.path}: {exc}") from exc
        names = [n for n in self.schema.names if pa.types.is_dictionary(self.schema.field(n).type)]
        try:
            pf = pq.ParquetFile(self.file, read_dictionary=names)
        except pa.ArrowInvalid as exc:
            raise ArchiveError(f"cannot read {self.path}: {exc}") from exc
        if pf.schema_arrow.names == self.schema.names:
            self.constants = _constant_columns(pf.metadata, self.schema)
        columns = [n for n in self.schema.names if n not in self.constants]
        # Already on a thread of its own: Arrow's pool would only add switching.
        batches: Iterator[pa.RecordBatch] = pf.iter_batches(
            batch_size=self.batch_rows, columns=columns, use_threads=False
        )
        return batches

    def _next_batch(self) -> pa.RecordBatch | None:
        """The file's next batch, cast and cut to the selection; None at its end."""
        if self.batches is None:
            self.batches = self._open()
        while not self.finished:
            batch = next(self.batches, None)
            if batch is None:
                self._close_file()
                return None
            if self.constants:
                n = batch.num_rows
                arrays = [
                    self.constants[f.name](n) if f.name in self.constants else batch[f.name]
                    for f in self.schema
                ]
                try:
                    batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
                except (pa.ArrowInvalid, pa.ArrowTypeError):  # types of another version
                    batch = pa.RecordBatch.from_arrays(arrays, names=self.schema.names)
            if not batch.schema.equals(self.schema):  # files of older schema versions
                batch = batch.cast(self.schema)
            batch = self._select(batch)
            if batch is not None and batch.num_rows:
                return batch
        return None

    def _select(self, batch: pa.RecordBatch) -> pa.RecordBatch | None:
        """The batch's rows in the selected time range; None past its end."""
        start, end = self.sel.start_ns, self.sel.end_ns
        if start is None and end is None:
            return batch
        recv = np.asarray(batch.column("recv_time").view(pa.int64()).to_numpy(), np.int64)
        keep = np.ones(len(recv), np.bool_)
        if start is not None:
            keep &= recv >= start
        if end is not None:
            keep &= recv < end
            if len(recv) and recv[0] >= end:
                self._close_file()  # files are in receive-time order: nothing more wanted
                return None
        return batch if keep.all() else batch.filter(pa.array(keep))

    def decode(self) -> pa.RecordBatch | None:
        """The file's next ``batch_rows`` rows in the selection, not rendered; None at its
        end. Runs on a pool thread, one call at a time per file."""
        want = self.batch_rows
        while self.rest is None or self.rest.num_rows < want:
            batch = self._next_batch()
            if batch is None:
                break
            self.rest = batch if self.rest is None else _concat(self.rest, batch)
        if self.rest is None:
            return None
        batch, self.rest = self.rest.slice(0, want), self.rest.slice(want)
        if not self.rest.num_rows:
            self.rest = None
        return batch

    def chunk(self, batch: pa.RecordBatch, payload: pa.Array) -> _Chunk:
        """A decoded batch and its payloads, ready for the merge."""
        decoded = None
        if self.eager:
            codec = self.codec
            decoded = [(f, codec.event_ns(f)) for f in typed_rows(codec, batch)]
        return _Chunk(
            np.asarray(batch.column("recv_time").view(pa.int64()).to_numpy(), np.int64),
            np.asarray(batch.column("seq").to_numpy(), np.int64),
            batch.column("stream"),
            batch.column("conn"),
            payload,
            decoded,
            last=self.rest is None and self.finished,
        )

    def _read(self) -> _Chunk | None:
        batch = self.decode()
        return None if batch is None else self.chunk(batch, payloads(self.codec, batch))

    def ready(self, chunk: _Chunk | None) -> None:
        """Use ``chunk`` as the next one (read and rendered along with other files')."""
        assert self.next is None
        self.next = Future()
        self.next.set_result(chunk)

    def start(self) -> None:
        """Start reading the next chunk on the pool."""
        if self.next is None and not self.done:
            self.next = self.pool.submit(self._read)

    def load(self, metas: _Metas) -> None:
        """Append the next chunk of the file to the buffer (and start reading the one after);
        ``done`` once there is none."""
        self.start()
        assert self.next is not None or self.done
        if self.next is None:
            return
        chunk = self.next.result()
        self.next = None
        if chunk is None:
            self.done = True
            return
        meta = metas.of(self.key, chunk.stream, chunk.conn)
        if len(self.recv):
            self.recv = np.concatenate([self.recv, chunk.recv])
            self.seq = np.concatenate([self.seq, chunk.seq])
            self.meta = np.concatenate([self.meta, meta])
            self.payload = pa.concat_arrays([self.payload, chunk.payload])
        else:
            self.recv, self.seq, self.meta, self.payload = (
                chunk.recv,
                chunk.seq,
                meta,
                chunk.payload,
            )
        if chunk.decoded is not None:
            self.decoded += chunk.decoded
        if chunk.last:
            self.done = True
        else:
            self.start()

    def take(self, k: int) -> _Rows:
        """Remove and return the first ``k`` buffered rows."""
        rows = _Rows(
            self.recv[:k],
            self.seq[:k],
            self.meta[:k],
            self.payload.slice(0, k),
            self.decoded[:k] if self.eager else None,
        )
        self.recv, self.seq, self.meta = self.recv[k:], self.seq[k:], self.meta[k:]
        self.payload = self.payload.slice(k)
        if self.eager:
            del self.decoded[:k]
        return rows

    def close(self) -> None:
        """Stop reading (waiting for a read in progress) and close the file."""
        if self.next is not None:
            self.next.cancel()
            with contextlib.suppress(BaseException):
                self.next.result()
            self.next = None
        self._close_file()

    def _close_file(self) -> None:
        self.finished = True
        if self.file is not None:
            self.file.close()
            self.file = None


def _constant_columns(
    md: pq.FileMetaData, schema: pa.Schema
) -> dict[str, Callable[[int], pa.Array]]:
    """Columns that the file's statistics show to hold one value (or only nulls), each with
    how to make it for ``n`` rows: not read at all. Per file and hour, the connection, the
    stream, the symbol, digit counts and ``raw`` usually are; reading a column costs a fixed
    price per file, which small files feel."""
    out: dict[str, Callable[[int], pa.Array]] = {}
    groups = [md.row_group(g) for g in range(md.num_row_groups)]
    if not groups:
        return out
    for i in range(md.num_columns):
        name = groups[0].column(i).path_in_schema
        if name not in schema.names:  # a nested column's leaf
            continue
        typ = schema.field(name).type
        stats = [g.column(i).statistics for g in groups]
        if any(st is None or not st.has_null_count for st in stats):
            continue
        if all(st.null_count == g.num_rows for st, g in zip(stats, groups, strict=True)):
            out[name] = functools.partial(pa.nulls, type=typ)
            continue
        if any(st.null_count or not st.has_min_max or st.min_raw != st.max_raw for st in stats):
            continue
        values = {st.min_raw for st in stats}
        if len(values) != 1:
            continue
        value = values.pop()
        if (typ == pa.int8() and type(value) is int) or (typ == pa.bool_() and type(value) is bool):
            out[name] = functools.partial(pa.repeat, pa.scalar(value, typ))
        elif isinstance(value, bytes) and len(value) < 64:  # never a truncated statistic
            text = value.decode()
            if pa.types.is_dictionary(typ) and typ.value_type == pa.string():
                out[name] = functools.partial(_one_string, pa.array([text], pa.string()))
            elif typ == pa.string():
                out[name] = functools.partial(pa.repeat, pa.scalar(text, typ))
    return out


def _one_string(dictionary: pa.Array, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), dictionary)


def _concat(a: pa.RecordBatch, b: pa.RecordBatch) -> pa.RecordBatch:
    return pa.Table.from_batches([a, b]).combine_chunks().to_batches()[0]


@dataclass
class _Rows:
    """Rows in archive order, as columns: taken from one file, or merged and ready to hand
    to the consuming thread (then ``objects`` holds the meta tuples ``meta`` refers to)."""

    recv: npt.NDArray[np.int64]
    seq: npt.NDArray[np.int64]
    meta: npt.NDArray[np.intp]
    payload: pa.Array
    decoded: Sequence[Decoded | None] | None
    objects: npt.NDArray[np.object_] | None = None

    def messages(self) -> Iterator[Message]:
        assert self.objects is not None
        return replayed_messages(
            self.objects[self.meta].tolist(),
            self.recv.tolist(),
            self.seq.tolist(),
            self.payload.to_pylist(),
            self.decoded,
        )
