"""Read an archive back as recorder :class:`~recorder.Message` objects, in global order.

Rows are partitioned by receive hour, so every message of hour H lives in hour H's
partitions: the reader walks the hours in order and, within one hour, merges the files of
every selected partition by (recv_ns, conn, seq). Each file is read one record batch at a
time, so memory stays bounded by a few batches per open file, whatever the time span.

All the columnar work (decoding Parquet, rendering payloads from the typed columns with
:mod:`recorder.archive._render`, merging files in batches) runs in a producer thread, mostly without
the GIL; the consuming thread only turns the merged columns into :class:`Message` objects.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import trio

from recorder import HOUR_NS, Message
from recorder.archive import (
    PartitionFiles,
    list_partitions,
)
from replay.reader._merge import _merge
from replay.reader._selection import Selection
from replay.reader._source import _QUEUE, _THREADS, _Rows, _Source


class _Stop(Exception):
    """The consumer went away: the producer thread ends."""


class _Inline:
    """An executor that runs everything at once in the calling thread."""

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        f: Future[Any] = Future()
        try:
            f.set_result(fn())
        except BaseException as exc:
            f.set_exception(exc)
        return f

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        return [fn(x) for x in items]

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _pool() -> Any:
    if _THREADS:
        return ThreadPoolExecutor(_THREADS, thread_name_prefix="ticktape-replay-read")
    return _Inline()


class _Producer:
    """Runs the merge of every hour in a daemon thread, handing chunks over a bounded queue
    (the producer is at most ``_QUEUE`` chunks ahead, so memory stays bounded)."""

    def __init__(self, work: Callable[[], Iterator[_Rows]]) -> None:
        self.queue: queue.Queue[_Rows | BaseException | None] = queue.Queue(_QUEUE)
        self.stopping = threading.Event()
        self.work = work
        self.thread = threading.Thread(target=self._run, name="ticktape-replay", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for rows in self.work():
                self._put(rows)
            self._put(None)
        except _Stop:
            pass
        except BaseException as exc:  # handed to the consumer, raised there
            with contextlib.suppress(_Stop):
                self._put(exc)

    def _put(self, item: _Rows | BaseException | None) -> None:
        while True:
            if self.stopping.is_set():
                raise _Stop
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[_Rows]:
        try:
            while True:
                item = self.queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.stopping.set()
            self.thread.join()


class ArchiveReader:
    """Messages of an archive selection in (recv_ns, conn, seq) order, as a plain iterator or
    a Trio async iterator (optionally paced by the recorded receive times).

    Each iteration reads, renders and merges in background threads (a producer and a small
    pool) that end with it, a few thousand messages ahead of the consumer at most; errors
    reading the archive are raised in the consuming thread. ``batch_rows`` is how many rows
    of a file are read at a time."""

    def __init__(self, root: str, selection: Selection | None = None, *, batch_rows: int = 8192):
        self.root = root
        self.selection = selection or Selection()
        self.batch_rows = batch_rows
        self.fs, parts = list_partitions(root)
        self.partitions: list[PartitionFiles] = [p for p in parts if self.selection.wants(p.key)]

    def hours(self) -> list[int]:
        return sorted({p.key.hour_start_ns // HOUR_NS for p in self.partitions})

    def __iter__(self) -> Iterator[Message]:
        # Chained in C: a Python generator between the consumer and the one making the
        # messages would cost about as much per message as making it.
        rows = _Producer(self._rows) if _THREADS else self._rows()
        return itertools.chain.from_iterable(r.messages() for r in rows)

    def _rows(self) -> Iterator[_Rows]:
        by_hour: dict[int, list[PartitionFiles]] = defaultdict(list)
        for p in self.partitions:
            by_hour[p.key.hour_start_ns // HOUR_NS].append(p)
        with _pool() as pool:
            for h in sorted(by_hour):
                sources = [
                    _Source(self.fs, path, p.key, self.selection, self.batch_rows, pool)
                    for p in by_hour[h]
                    for path in p.paths
                ]
                yield from _merge(sources, pool)

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
