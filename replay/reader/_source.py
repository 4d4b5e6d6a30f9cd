"""One selected file, read a record batch at a time (:class:`recorder.archive.FileBatches`),
with payloads rendered from the typed columns (:func:`recorder.archive.payloads`), buffered
for the merge of its hour.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.fs as pafs

from recorder import Message
from recorder.archive import FileBatches, PartitionKey, dictionary_schema, payloads, typed_rows
from recorder.core import codec_for, replayed_messages
from recorder.venues import JsonChannel

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
        start_ns: int | None,
        end_ns: int | None,
        batch_rows: int,
        pool: ThreadPoolExecutor,
    ) -> None:
        self.key = key
        self.pool = pool
        self.next: Future[_Chunk | None] | None = None
        self.codec = codec_for(key.venue, key.channel)
        self.schema = dictionary_schema(self.codec)
        # Rows whose fields cannot be decoded from the payload again carry the stored ones.
        self.eager = not isinstance(self.codec, JsonChannel)
        self.file = FileBatches(fs, path, self.schema, batch_rows, start_ns, end_ns)
        self.batch_rows = batch_rows
        self.rest: pa.RecordBatch | None = None  # read from the file, not yet rendered
        self.done = False  # nothing left in the file nor in ``rest``: the buffer is all
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

    def decode(self) -> pa.RecordBatch | None:
        """The file's next ``batch_rows`` rows in the selection, not rendered; None at its
        end. Runs on a pool thread, one call at a time per file."""
        want = self.batch_rows
        while self.rest is None or self.rest.num_rows < want:
            batch = self.file.next()
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
            last=self.rest is None and self.file.finished,
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
        self.file.close()


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
