"""The archive writer in a process of its own.

Decoding every payload, checking that its typed row re-renders exactly, building Arrow
columns, Parquet and fsync cost more CPU per message than receiving it; in one process they
compete with the receive loop for the GIL. :class:`WriterProcess` keeps the receive process
down to buffering: every stage ships the buffered rows, column by column and pickled, through
a pipe to a child process that runs an ordinary :class:`~recorder.archive._writer.ArchiveWriter` on
the other core, and every flush asks it to write what it staged.

It has the same interface as ``ArchiveWriter`` as far as the recorder uses it. A staged batch
is only forgotten once a flush after it completed; if the child dies, it is restarted
(recovering its own leftovers, as after a crash) and handed those batches again, so no
buffered row is lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

import orjson
import pyarrow as pa

from recorder.archive._buffer import BufferedWriter, PartitionBuffer, Rows, WriterStatistics
from recorder.archive._layout import PartitionKey
from recorder.archive._writer import ArchiveWriter
from recorder.core import HOUR_NS
from recorder.core._errors import ArchiveError
from recorder.core._message import Message

log = logging.getLogger("ticktape.writer")

Packed = list[tuple[PartitionKey, Rows]]


def _pack(pending: Mapping[PartitionKey, list[Message]]) -> Packed:
    """Column lists per partition: cheap to pickle, no per-message objects on the wire."""
    return [(key, Rows.of(key, msgs)) for key, msgs in pending.items()]


def _child(requests: Connection, replies: Connection, root: str, kwargs: dict[str, Any]) -> None:
    """The writer process: requests in, results (or the error text) out, in order. It ends
    when the parent goes away (end of file on the request pipe).

    A thread drains the request pipe into a queue while the main thread works, so that the
    parent's batches never wait in its memory (as Python objects) for a long flush to end.
    """
    writer = ArchiveWriter(root, **kwargs)
    inbox: queue.SimpleQueue[tuple[str, Any] | None] = queue.SimpleQueue()

    def drain() -> None:
        while True:
            try:
                inbox.put(requests.recv())
            except (EOFError, OSError):
                inbox.put(None)
                return

    threading.Thread(target=drain, name="requests", daemon=True).start()
    conn = replies
    while True:
        item = inbox.get()
        if item is None:
            return
        op, arg = item
        try:
            if op == "stage":
                result: Any = writer.stage(dict(pickle.loads(arg)))
            elif op == "flush":
                result = writer.flush({})
                # Hand the flush's Arrow buffers back to the system (the pool keeps them).
                pa.default_memory_pool().release_unused()
            elif op == "compact":
                result = writer.compact_closed_hours(*arg)
            elif op == "recover":
                result = writer.recover(*arg)
            elif op == "stop":
                conn.send(("ok", None, writer.statistics()))
                return
            else:
                raise ValueError(f"unknown request {op!r}")
            conn.send(("ok", result, writer.statistics()))
        except Exception as exc:  # reported to the parent, which decides
            conn.send(("error", f"{type(exc).__name__}: {exc}", writer.statistics()))


class WriterProcess(BufferedWriter):
    """``ArchiveWriter``'s interface, with the work done in a child process."""

    def __init__(self, root: str, *, writer_id: str = "w0", **kwargs: Any) -> None:
        self.root = root
        self._kwargs = {"writer_id": writer_id, **kwargs}
        # A throwaway local writer validates the root (and names the writer id) up front.
        probe = ArchiveWriter(root, **self._kwargs)
        self.writer_id = probe.writer_id
        self._stats = probe.statistics()
        self._pending = PartitionBuffer()
        self._request_lock = threading.Lock()  # one thread waits for replies at a time
        self._send_lock = threading.Lock()  # the pipe, the batches and their counts
        self._unwritten: list[tuple[int, bytes, int]] = []  # (size, lz4 blob, rows)
        self._broken = False  # a send failed: restart at the next request
        self._unwritten_rows = 0  # rows in ``_unwritten``
        self._retained = 0  # rows the child kept staged after the last flush (write errors)
        self._in_flight = 0  # stages sent whose reply was not read yet
        self._conn: _Pipes | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._start()

    def _start(self) -> None:
        # A plain Python child on inherited pipes, not multiprocessing: its spawn start
        # method re-imports the parent's __main__, which breaks unguarded user scripts.
        # The child is told when to stop, over its pipe, after the parent's last flush: a
        # Ctrl-C (SIGINT to the terminal's process group) or a SIGTERM to every process of
        # the service must not end it first. Its own session keeps it out of the group, and
        # it ignores both signals from its first statement, before its imports.
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CHILD_BOOTSTRAP,
                str(req_r),
                str(rep_w),
                orjson.dumps({"root": self.root, "kwargs": self._kwargs}).decode(),
            ],
            pass_fds=(req_r, rep_w),
            start_new_session=True,
        )
        os.close(req_r)
        os.close(rep_w)
        self._conn = _Pipes(Connection(req_w, readable=False), Connection(rep_r, writable=False))

    # -- requests (worker threads) -----------------------------------------------------------
    #
    # Stages are sent without waiting for the child's reply, and may be sent while another
    # thread waits for a flush: the child may take seconds to write thousands of part files,
    # and meanwhile new messages must keep leaving the receive process. The child answers
    # in order, so a request's reply comes after those of the stages sent before it.

    def _request(self, op: str, arg: Any) -> tuple[Any, int, WriterStatistics]:
        """Send a request and wait for its reply: (result, number of unwritten batches sent
        before it, the child's statistics as of its reply)."""
        with self._request_lock:
            for attempt in (1, 2):
                try:
                    with self._send_lock:
                        if self._conn is None or self._broken:
                            raise OSError("the archive writer process is gone")
                        before, self._in_flight = self._in_flight, 0
                        mark = len(self._unwritten)
                        conn = self._conn
                        conn.send((op, arg))
                    error: ArchiveError | None = None
                    for _ in range(before):
                        try:
                            self._reply(conn)
                        except ArchiveError as exc:
                            error = error or exc
                    result = self._reply(conn)
                    if error is not None:
                        raise error
                    return result, mark, self._stats
                except (EOFError, OSError) as exc:
                    if attempt == 2:
                        raise ArchiveError(f"archive writer process failed twice: {exc}") from exc
                    log.error("archive writer process died (%s); restarting it", exc)
                    with self._send_lock:
                        self._restart()
        raise AssertionError("unreachable")

    def _reply(self, conn: _Pipes) -> Any:
        status, result, stats = conn.recv()
        self._stats = stats
        if status == "error":
            raise ArchiveError(f"archive writer process: {result}")
        return result

    def _restart(self) -> None:
        """A fresh child that adopts what the old one left (as after a crash) and is handed
        again every batch staged since the last completed flush (send lock held)."""
        if self._conn is not None:
            self._conn.close()
        self._start()
        self._in_flight = 0
        self._broken = False
        conn = self._conn
        assert conn is not None
        conn.send(("recover", (time.time_ns(), HOUR_NS)))
        self._reply(conn)
        for size, blob, _ in self._unwritten:
            data = pa.decompress(blob, decompressed_size=size, codec="lz4", asbytes=True)
            conn.send(("stage", data))
            self._reply(conn)

    def stage(self, pending: Mapping[PartitionKey, list[Message]] | None = None) -> int:
        """Hand the buffered rows to the child to be encoded now (written at the next flush).

        The batch is kept here until a flush completes, so that a child that dies in
        between can be given it again: pickled and lz4-compressed (a fraction of the
        memory its Python objects took, for ~1% of a core at 30k messages/s).
        """
        if pending is None:
            pending = self.take_pending()
        if not pending:
            return 0
        packed = _pack(pending)
        rows = sum(len(r) for _, r in packed)
        data = pickle.dumps(packed, protocol=pickle.HIGHEST_PROTOCOL)
        del packed
        blob = pa.compress(data, codec="lz4", asbytes=True)
        with self._send_lock:
            self._unwritten.append((len(data), blob, rows))
            self._unwritten_rows += rows
            if self._conn is not None and not self._broken:
                try:
                    self._conn.send(("stage", data))
                    self._in_flight += 1
                except OSError as exc:
                    # The next request restarts the child and hands it this batch again.
                    log.error("archive writer process died (%s)", exc)
                    self._broken = True
        return rows

    def flush(self, pending: Mapping[PartitionKey, list[Message]] | None = None) -> int:
        self.stage(pending)
        written, mark, stats = self._request("flush", None)
        with self._send_lock:
            self._unwritten_rows -= sum(rows for _, _, rows in self._unwritten[:mark])
            del self._unwritten[:mark]
        # The child answers a flush before any stage sent during it: what it still holds
        # then is what it could not write (a full disk), kept for the next flush.
        self._retained = stats.pending_rows
        return int(written)

    def compact_closed_hours(self, now_ns: int, grace_ns: int) -> int:
        return int(self._request("compact", (now_ns, grace_ns))[0])

    def recover(self, now_ns: int, grace_ns: int) -> int:
        return int(self._request("recover", (now_ns, grace_ns))[0])

    def shutdown(self) -> None:
        """Stop the child after the last flush (statistics stay available)."""
        if self._conn is None:
            return
        with contextlib.suppress(ArchiveError):  # a dead child has nothing left to stop
            self._request("stop", None)
        self._conn.close()
        self._conn = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    def statistics(self) -> WriterStatistics:
        pending = len(self._pending) + self._unwritten_rows + self._retained
        return replace(self._stats, pending_rows=pending)


class _Pipes:
    """The parent's ends: requests out, replies in."""

    def __init__(self, out: Connection, back: Connection) -> None:
        self.out = out
        self.back = back

    def send(self, obj: Any) -> None:
        self.out.send(obj)

    def recv(self) -> Any:
        return self.back.recv()

    def close(self) -> None:
        self.out.close()
        self.back.close()


# A -c bootstrap rather than ``-m``: the signals are ignored before the first import (``-m``
# imports the package first), and runpy never runs a module the package already loaded.
_CHILD_BOOTSTRAP = (
    "import signal, sys\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "from recorder.archive._writerproc import child_main\n"
    "child_main(sys.argv[1:])\n"
)


def child_main(argv: list[str]) -> None:
    """The child's entry point (see ``_CHILD_BOOTSTRAP``)."""
    req_fd, rep_fd, spec = int(argv[0]), int(argv[1]), orjson.loads(argv[2])
    _child(
        Connection(req_fd, writable=False),
        Connection(rep_fd, readable=False),
        spec["root"],
        spec["kwargs"],
    )
