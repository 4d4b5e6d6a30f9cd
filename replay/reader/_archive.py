"""Read an archive back as recorder :class:`~recorder.Message` objects, in global order.

The archive's reader (:func:`recorder.archive.select`) lists the partitions of a selection;
every hour's files are merged by (recv_ns, conn, seq) (:mod:`replay.reader._merge`), all the
columnar work running on a small pool of threads, mostly without the GIL.

Two ways to consume it:

* iterate an :class:`ArchiveReader`: a producer thread merges ahead, a bounded queue hands
  chunks of rows to the consuming thread, which only turns them into messages;
* from Trio, ``async with reader.stream(speed=...) as messages`` (or :meth:`ArchiveReader.chunks`):
  the merge runs in worker threads (:func:`trio.to_thread.run_sync`) under a nursery of the
  context manager, handing lists of messages over a bounded memory channel, so the event loop
  never waits for a file; pacing follows Trio's clock.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import trio

from recorder import Message
from recorder.archive import ArchiveRoot, PartitionFiles, Selection, select
from replay.reader._merge import _merge
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


def _next_messages(rows: Iterator[_Rows]) -> list[Message] | None:
    """The next chunk's messages (in a worker thread); None at the end."""
    r = next(rows, None)
    return None if r is None else list(r.messages())


class MessageChunks:
    """The receiving end of :meth:`ArchiveReader.chunks`: lists of messages in archive order.

    ``async for chunk in chunks`` waits for each; :meth:`receive_nowait` takes one only if it
    is ready. An error reading the archive is raised by whichever gets to it.
    """

    def __init__(self, receive: trio.MemoryReceiveChannel[list[Message] | Exception]) -> None:
        self._receive = receive
        self.finished = False
        """True once every message was handed over."""

    def __aiter__(self) -> MessageChunks:
        return self

    async def __anext__(self) -> list[Message]:
        try:
            item = await self._receive.receive()
        except trio.EndOfChannel:
            self.finished = True
            raise StopAsyncIteration from None
        if isinstance(item, Exception):
            raise item
        return item

    def receive_nowait(self) -> list[Message] | None:
        """The next chunk if it is ready; None if not yet (or none is left: ``finished``)."""
        try:
            item = self._receive.receive_nowait()
        except trio.WouldBlock:
            return None
        except trio.EndOfChannel:
            self.finished = True
            return None
        if isinstance(item, Exception):
            raise item
        return item


class _Paced:
    """Messages out of chunks, released at ``speed`` x the recorded pace on Trio's clock."""

    def __init__(
        self, chunks: MessageChunks, speed: float | None, clock: Callable[[], float]
    ) -> None:
        self._chunks = chunks
        self._speed = speed
        self._clock = clock
        self._chunk: list[Message] = []
        self._i = 0
        self._n = 0
        self._t0: float | None = None
        self._r0 = 0

    def __aiter__(self) -> _Paced:
        return self

    async def __anext__(self) -> Message:
        while self._i >= len(self._chunk):
            self._chunk = await self._chunks.__anext__()
            self._i = 0
        m = self._chunk[self._i]
        self._i += 1
        speed = self._speed
        if speed is not None:
            if self._t0 is None:
                self._t0, self._r0 = self._clock(), m.recv_ns
            due = self._t0 + (m.recv_ns - self._r0) / 1e9 / speed
            if due > self._clock():
                await trio.sleep_until(due)
                return m
        self._n += 1
        if self._n % 512 == 0:  # let other tasks run between messages already due
            await trio.lowlevel.checkpoint()
        return m


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception of a group (what the caller raised or the reading failed with)."""
    leaves = group.exceptions
    if len(leaves) == 1 and not isinstance(leaves[0], BaseExceptionGroup):
        return leaves[0]
    return group


class ArchiveReader:
    """Messages of an archive selection in (recv_ns, conn, seq) order, as a plain iterator or
    from Trio (:meth:`stream`, optionally paced by the recorded receive times).

    Each iteration reads, renders and merges in background threads that end with it, a few
    thousand messages ahead of the consumer at most; errors reading the archive are raised in
    the consumer. ``root`` is a path, a URI or an opened :class:`recorder.archive.ArchiveRoot`;
    ``batch_rows`` is how many rows of a file are read at a time."""

    def __init__(
        self,
        root: str | ArchiveRoot,
        selection: Selection | None = None,
        *,
        batch_rows: int = 8192,
    ) -> None:
        self.root = root
        self.selection = selection or Selection()
        self.batch_rows = batch_rows
        self._listing = select(root, self.selection)
        self.fs = self._listing.fs
        self.partitions: list[PartitionFiles] = self._listing.partitions

    def __iter__(self) -> Iterator[Message]:
        # Chained in C: a Python generator between the consumer and the one making the
        # messages would cost about as much per message as making it.
        rows = _Producer(self._rows) if _THREADS else self._rows()
        return itertools.chain.from_iterable(r.messages() for r in rows)

    def _rows(self) -> Generator[_Rows, None, None]:
        sel = self.selection
        with _pool() as pool:
            for _, parts in self._listing.hours():
                sources = [
                    _Source(self.fs, path, p.key, sel.start_ns, sel.end_ns, self.batch_rows, pool)
                    for p in parts
                    for path in p.paths
                ]
                yield from _merge(sources, pool)

    async def _produce(self, send: trio.MemorySendChannel[list[Message] | Exception]) -> None:
        """Merge in worker threads, one chunk at a time, and hand the chunks over ``send``."""
        async with send:
            rows = self._rows()
            try:
                while True:
                    try:
                        chunk = await trio.to_thread.run_sync(_next_messages, rows)
                    except Exception as exc:  # a reading error: raised in the consumer
                        await send.send(exc)
                        return
                    if chunk is None:
                        return
                    await send.send(chunk)
            except trio.BrokenResourceError:  # the consumer went away
                return
            finally:
                # Closing the merge waits for its pool's reads in progress: not on the loop,
                # and even when cancelled (the threads must not outlive the nursery).
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(rows.close)

    @contextlib.asynccontextmanager
    async def chunks(self) -> AsyncIterator[MessageChunks]:
        """The messages in lists of a few thousand, read ahead in worker threads.

        The reading task lives in a nursery of this context manager and is at most a few
        chunks ahead (a bounded memory channel). Leaving the block (or cancelling it) stops
        it: the chunk being read is finished, the files are closed, no thread is left over.
        """
        send, receive = trio.open_memory_channel[list[Message] | Exception](_QUEUE)
        error: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery, receive:
                async with send:  # the producer owns a clone; closing it ends the channel
                    nursery.start_soon(self._produce, send.clone())
                yield MessageChunks(receive)
        except BaseExceptionGroup as group:
            error = _unwrap(group)
            if error is group:
                raise
        if error is not None:  # raised here, not chained to the group that carried it
            raise error

    @contextlib.asynccontextmanager
    async def stream(
        self, *, speed: float | None = None, clock: Callable[[], float] = trio.current_time
    ) -> AsyncIterator[AsyncIterator[Message]]:
        """The messages one by one: ``async with reader.stream(speed=1.0) as messages:
        async for m in messages: ...``.

        ``speed`` None = as fast as possible, 1.0 = real time, N = N x. Pacing follows Trio's
        clock, so tests on a MockClock replay hours instantly yet observe the exact recorded
        spacing.
        """
        async with self.chunks() as chunks:
            yield _Paced(chunks, speed, clock)


def open_archive(
    root: str | ArchiveRoot,
    *,
    venues: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    symbols: Sequence[str] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> ArchiveReader:
    """Open an archive for replay with optional filters (receive-time range in epoch ns)."""
    return ArchiveReader(root, Selection.of(venues, channels, symbols, start_ns, end_ns))


__all__ = ["ArchiveReader", "MessageChunks", "Selection", "open_archive"]
