"""Order-book keeping inside the recorder: continuity, REST snapshots, resyncs, checkpoints.

One :class:`BookKeeper` per venue. The recorder registers :meth:`BookKeeper.observe` as a
``FanOut`` observer (it sees every recorded message, synchronously, and returns at once for
other channels) and runs :meth:`BookKeeper.run` in its nursery for the I/O (REST snapshots,
hourly checkpoints, resubscribe retries). Everything the keeper learns goes back into the
archive through the same sink:

* **Binance** (``binance-spot`` / ``binance-usdm``, channel ``depth``, the diff-depth streams):
  per stream, the venue's documented local-book procedure (Spot §8, USDⓈ-M §7) driven by
  :class:`~recorder.venues.binance.DepthSync`: buffer the first events, fetch a REST
  snapshot, drop or apply the buffered events, check ``U``/``u`` (Spot) or ``pu`` (USDⓈ-M)
  on every event and, on a gap, fetch a new snapshot for that stream only. Every REST body
  is recorded verbatim as a ``depth_snapshot`` message (``conn`` ``rest:<venue>``).
* **Bybit** (channel ``orderbook``): snapshot then deltas, checked by
  :class:`~recorder.venues.bybit.BookSync`; on a continuity break the keeper records the
  gap and asks the recorder to resubscribe just that topic (the new subscription starts
  with a snapshot).
* **Session events** (channel ``session``, ``conn`` ``book:<venue>``, stream and symbol of the
  book): ``gap`` (``gap_start_ns`` = receive time of the last message that made it into the
  book, ``gap_end_ns`` = receive time of the first one after the resync) and ``resync``.
* **Hourly checkpoints**: at every UTC hour boundary each synced book is written as a
  ``book_checkpoint`` message in the REST-snapshot shape with ``recv_ns`` = the boundary, so
  that every archive hour can be replayed on its own. A checkpoint holds exactly the messages
  received before the boundary: a book is checkpointed just before it applies its first
  message received at or after the boundary, quiet books a little after the boundary.

Levels are kept as the exchange's exact texts (keyed by their float value), so checkpoints use
the exchange's own number format and re-render exactly with the ``book_checkpoint`` codec.

Wiring (in the recorder, before the shards start)::

    rest = rest_client_for(venue, job.rest_url)             # Binance only; aclose() at the end
    keeper = BookKeeper(venue, recorder.sink, rest=rest)      # Binance
    keeper = BookKeeper(venue, recorder.sink, resubscribe=recorder.resubscribe)  # Bybit
    recorder.sink.observers.append(keeper.observe)
    await nursery.start(keeper.run)

Replaying from a checkpoint: ``lastUpdateId`` is the ``u`` of the last applied event (or the
snapshot's id if none was applied yet). On Spot the next event has ``U == lastUpdateId + 1``,
which the snapshot rule accepts; on USDⓈ-M continue with ``pu == lastUpdateId`` (the first-event
rule ``U <= lastUpdateId <= u`` is for REST snapshots only).
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import trio

from recorder.capture._book_levels import (
    Level,
    _BinanceBook,
    _Book,
    _BybitBook,
    _DepthEvent,
    _int,
    _levels,
    _parse_depth,
)
from recorder.capture._book_stats import (
    _BINANCE_DIFF,
    _BYBIT_BOOK,
    BOOK_CHECKPOINT_CHANNEL,
    DEPTH_SNAPSHOT_CHANNEL,
    BookStatistics,
    Resubscribe,
    Sink,
    SnapshotClient,
    log,
)
from recorder.core import HOUR_NS
from recorder.core._errors import ConfigError, LocalProtocolError, RemoteProtocolError
from recorder.core._message import SESSION_CHANNEL, Message, SessionEvent
from recorder.net._rest import RestError, RestResponse
from recorder.venues import binance as bn
from recorder.venues import bybit as bb
from recorder.venues._channels import session_payload

# --------------------------------------------------------------------------------------------
# The keeper
# --------------------------------------------------------------------------------------------


class BookKeeper:
    """Keeps every order book of one venue in sync and records snapshots, gaps, checkpoints.

    Binance venues need ``rest`` (a :class:`~recorder.net._rest.RestClient` for the venue's REST
    host); Bybit venues use ``resubscribe`` (``Recorder.resubscribe``). ``clock_ns`` is the
    wall clock (the same as the connections' receive times).
    """

    def __init__(
        self,
        venue: str,
        sink: Sink,
        *,
        rest: SnapshotClient | None = None,
        resubscribe: Resubscribe | None = None,
        depth_limit: int | None = 1000,
        snapshot_delay: float = 0.25,
        retry_base: float = 1.0,
        retry_cap: float = 60.0,
        max_concurrent_snapshots: int = 4,
        max_buffer: int = 20_000,
        buffer_window: float = 10.0,
        checkpoints: bool = True,
        checkpoint_grace: float = 2.0,
        resubscribe_retry: float = 30.0,
        strict_increment: bool = True,
        clock_ns: Callable[[], int] = time.time_ns,
        conn_suffix: str = "",
    ) -> None:
        if venue in bn.VENUES:
            self.kind = "binance"
            if rest is None:
                raise ConfigError(f"{venue}: the book keeper needs a REST client for snapshots")
            bn.depth_weight(venue, depth_limit)  # validates the limit
        elif venue in bb.VENUES:
            self.kind = "bybit"
        else:
            raise ConfigError(f"no order-book keeping for venue {venue!r}")
        for name, v in (
            ("snapshot_delay", snapshot_delay),
            ("retry_base", retry_base),
            ("retry_cap", retry_cap),
            ("checkpoint_grace", checkpoint_grace),
            ("resubscribe_retry", resubscribe_retry),
            ("buffer_window", buffer_window),
        ):
            if not (v >= 0 and math.isfinite(v)):
                raise ConfigError(f"{name} must be a non-negative number of seconds, got {v}")
        if max_concurrent_snapshots < 1 or max_buffer < 1:
            raise ConfigError("max_concurrent_snapshots and max_buffer must be >= 1")
        self.venue = venue
        self.sink = sink
        self.rest = rest
        self.resubscribe = resubscribe
        self.depth_limit = depth_limit
        self.snapshot_delay = snapshot_delay
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.max_buffer = max_buffer
        self._window_ns = int(buffer_window * 1e9)
        self.checkpoints = checkpoints
        self.checkpoint_grace = checkpoint_grace
        self.resubscribe_retry = resubscribe_retry
        self.strict_increment = strict_increment
        self.clock_ns = clock_ns
        self.channel = _BINANCE_DIFF if self.kind == "binance" else _BYBIT_BOOK
        self._usdm = venue == bn.USDM
        self._books: dict[str, _Book] = {}
        # The recorder passes "@<writer>.<run>" so ids stay unique across workers and hosts.
        self._rest_conn = f"rest:{venue}{conn_suffix}"
        self._book_conn = f"book:{venue}{conn_suffix}"
        self._rest_seq = 0
        self._book_seq = 0
        self._boundary: int | None = None
        self._snap_limiter = trio.CapacityLimiter(max_concurrent_snapshots)
        self._wanted_send, self._wanted_recv = trio.open_memory_channel[str](math.inf)
        self._snapshots = 0
        self._snap_failures = 0
        self._too_old = 0
        self._gaps = 0
        self._resyncs = 0
        self._resubscribes = 0
        self._checkpoints = 0
        self._errors = 0
        self._overflows = 0

    # -- public ---------------------------------------------------------------------------------

    def observe(self, msg: Message) -> None:
        """FanOut observer: every recorded message, synchronously; only book channels count."""
        if msg.channel != self.channel or msg.venue != self.venue or not msg.stream:
            return
        try:
            if self.kind == "binance":
                self._observe_binance(msg)
            else:
                self._observe_bybit(msg)
        except RemoteProtocolError as exc:
            self._errors += 1
            if self._should_log():
                log.warning(
                    "%s %s: book message skipped (%d so far): %s",
                    self.venue,
                    msg.stream,
                    self._errors,
                    exc,
                )
        except Exception:
            # A bug in book keeping must never stop the recording itself.
            self._errors += 1
            if self._should_log():
                log.exception("%s %s: book keeping failed", self.venue, msg.stream)

    def _should_log(self) -> bool:
        n = self._errors
        return n <= 10 or n & (n - 1) == 0  # the first ten, then every power of two

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Snapshot fetches, hourly checkpoints and resubscribe retries, until cancelled."""
        async with trio.open_nursery() as nursery:
            if self.checkpoints:
                self._boundary = self._next_boundary()
                nursery.start_soon(self._checkpoint_loop)
            if self.kind == "bybit" and self.resubscribe is not None:
                nursery.start_soon(self._resubscribe_loop)
            task_status.started()
            try:
                async for stream in self._wanted_recv:
                    book = self._books.get(stream)
                    if isinstance(book, _BinanceBook):
                        nursery.start_soon(self._fetch, book)
            finally:
                self._close_open_gaps()

    def _close_open_gaps(self) -> None:
        """At shutdown, record the gaps that never closed (no ``gap_end_ns``)."""
        for book in self._books.values():
            if book.gap_start_ns is not None and not book.synced:
                self._put_session(
                    book,
                    SessionEvent.GAP,
                    reason=f"{book.gap_reason or 'gap'}; still out of sync at shutdown",
                    gap_start_ns=book.gap_start_ns,
                    detail=book.gap_detail,
                )
                book.gap_start_ns = None

    def checkpoint_all(self, boundary_ns: int) -> int:
        """Write the checkpoint of every synced book not yet checkpointed at ``boundary_ns``;
        returns how many were written. (The run task calls this each hour.)"""
        return sum(self._checkpoint(book, boundary_ns) for book in list(self._books.values()))

    def streams(self) -> list[str]:
        return sorted(self._books)

    def book(self, stream: str) -> tuple[list[Level], list[Level]] | None:
        """(bids, asks) of a synced book, best first, as the exchange's texts; else None."""
        b = self._books.get(stream)
        if b is None or not b.synced:
            return None
        return b.bids.sorted(), b.asks.sorted()

    def update_id(self, stream: str) -> int | None:
        """The update id a synced book is at (Binance ``lastUpdateId``, Bybit ``u``)."""
        b = self._books.get(stream)
        if b is None or not b.synced:
            return None
        if isinstance(b, _BinanceBook):
            return b.sync.book_id
        assert isinstance(b, _BybitBook)
        return b.update_id

    def statistics(self) -> BookStatistics:
        return BookStatistics(
            books=len(self._books),
            books_synced=sum(1 for b in self._books.values() if b.synced),
            snapshots_fetched=self._snapshots,
            snapshot_failures=self._snap_failures,
            snapshots_too_old=self._too_old,
            gaps=self._gaps,
            resyncs=self._resyncs,
            resubscribes=self._resubscribes,
            checkpoints=self._checkpoints,
            errors=self._errors,
            buffer_overflows=self._overflows,
        )

    # -- common ---------------------------------------------------------------------------------

    def _emit(
        self, book: _Book, channel: str, recv_ns: int, payload: bytes, *, rest: bool = False
    ) -> None:
        """Record a message the keeper produced itself (session event, checkpoint) or got
        from REST (a depth snapshot), under the book's stream and symbol."""
        if rest:
            self._rest_seq += 1
            conn, seq = self._rest_conn, self._rest_seq
        else:
            self._book_seq += 1
            conn, seq = self._book_conn, self._book_seq
        self.sink.put(
            Message(
                venue=self.venue,
                stream=book.stream,
                channel=channel,
                symbol=book.symbol,
                recv_ns=recv_ns,
                conn=conn,
                seq=seq,
                payload=payload,
            )
        )

    def _put_session(self, book: _Book, event: str, **kw: Any) -> None:
        now = self.clock_ns()
        payload = session_payload(event, now, streams=[book.stream], **kw)
        self._emit(book, SESSION_CHANNEL, now, payload)

    def _open_gap(self, book: _Book, reason: str, detail: Mapping[str, Any]) -> None:
        self._gaps += 1
        if (book.synced or book.ever_synced) and book.gap_start_ns is None:
            book.gap_start_ns = book.last_good_ns
            book.gap_reason, book.gap_detail = reason, dict(detail)
        book.synced = False
        book.resync_due = False
        log.warning("%s %s: book gap (%s) %s", self.venue, book.stream, reason, dict(detail))

    def _good(self, book: _Book, recv_ns: int, reason: str) -> None:
        """A message made it into the book: close an open gap / finish a re-sync."""
        if book.resync_due or book.gap_start_ns is not None:
            start = book.gap_start_ns
            if start is not None:
                self._put_session(
                    book,
                    SessionEvent.GAP,
                    reason=book.gap_reason or "gap",
                    gap_start_ns=start,
                    gap_end_ns=recv_ns,
                    detail=book.gap_detail,
                )
            self._put_session(book, SessionEvent.RESYNC, reason=reason)
            self._resyncs += 1
            book.gap_start_ns = None
            book.gap_reason = book.gap_detail = None
            book.resync_due = False
        book.last_good_ns = recv_ns

    def _before(self, book: _Book, recv_ns: int) -> None:
        """Checkpoint the book before it applies its first message of a new hour."""
        b = self._boundary
        if b is not None and recv_ns >= b and book.checkpointed < b:
            self._checkpoint(book, b)

    def _checkpoint(self, book: _Book, boundary_ns: int) -> int:
        if book.checkpointed >= boundary_ns:
            return 0
        book.checkpointed = boundary_ns
        if not book.synced:
            return 0
        try:
            payload = self._checkpoint_payload(book)
        except Exception:  # never let a checkpoint stop the book (or the recorder)
            log.exception("%s %s: checkpoint failed", self.venue, book.stream)
            return 0
        self._emit(book, BOOK_CHECKPOINT_CHANNEL, boundary_ns, payload)
        self._checkpoints += 1
        return 1

    def _checkpoint_payload(self, book: _Book) -> bytes:
        if isinstance(book, _BinanceBook):
            assert book.sync.book_id is not None
            payload = orjson.dumps(
                {
                    "lastUpdateId": book.sync.book_id,
                    "bids": book.bids.sorted(),
                    "asks": book.asks.sorted(),
                }
            )
        else:
            assert isinstance(book, _BybitBook)
            payload = bb.checkpoint_payload(
                self.venue,
                book.stream,
                book.ts_ms,
                bids=book.bids.sorted(),
                asks=book.asks.sorted(),
                update_id=book.update_id,
                cross_seq=book.cross_seq,
                cts_ms=book.cts_ms,
            )
        return payload

    def _next_boundary(self) -> int:
        return (self.clock_ns() // HOUR_NS + 1) * HOUR_NS

    async def _sleep_until_wall(self, target_ns: int) -> None:
        while (left := target_ns - self.clock_ns()) > 0:
            await trio.sleep(left / 1e9)

    async def _checkpoint_loop(self) -> None:
        grace_ns = int(self.checkpoint_grace * 1e9)
        while True:
            boundary = self._next_boundary()
            self._boundary = boundary
            await self._sleep_until_wall(boundary + grace_ns)
            try:
                n = self.checkpoint_all(boundary)
            except Exception:
                log.exception("%s: book checkpoints at %d failed", self.venue, boundary)
            else:
                log.info("%s: %d book checkpoints at %d", self.venue, n, boundary)

    # -- Binance --------------------------------------------------------------------------------

    def _binance_book(self, msg: Message) -> _BinanceBook:
        book = self._books.get(msg.stream)
        if book is None:
            book = _BinanceBook(msg.stream, msg.symbol, sync=bn.DepthSync(self.venue))
            self._books[msg.stream] = book
        assert isinstance(book, _BinanceBook)
        return book

    def _observe_binance(self, msg: Message) -> None:
        ev = _parse_depth(msg.payload, msg.recv_ns, self._usdm)
        book = self._binance_book(msg)
        self._before(book, msg.recv_ns)
        self._feed(book, ev)

    def _feed(self, book: _BinanceBook, ev: _DepthEvent) -> None:
        action = book.sync.event(ev.first, ev.final, ev.prev_final)
        if isinstance(action, bn.Apply):
            book.apply(*ev.levels(self._usdm))
            book.applied = True
            self._good(book, ev.recv_ns, "snapshot")
        elif isinstance(action, bn.Discard):
            pass
        elif isinstance(action, bn.Buffer):
            buf = book.buffer
            buf.append(ev.lean())
            if len(buf) > self.max_buffer or buf[0].recv_ns < ev.recv_ns - self._window_ns:
                self._trim(book, ev.recv_ns)
        elif isinstance(action, bn.NeedSnapshot):
            book.buffer = [ev.lean()]
            self._want_snapshot(book)
        elif isinstance(action, bn.Gap):
            if not book.applied:
                why = "the first event after the snapshot does not follow it"
            else:
                why = "pu != previous u" if self._usdm else "U > book update id + 1"
            self._open_gap(book, why, {"expected": action.expected, "got": action.got})
            book.buffer = [ev.lean()]
            self._want_snapshot(book)
        else:  # UseSnapshot / SnapshotTooOld come from snapshot(), never from event()
            raise TypeError(f"unexpected depth action {action!r}")

    def _trim(self, book: _BinanceBook, now_ns: int) -> None:
        """Drop buffered events older than ``buffer_window`` (and beyond ``max_buffer``).

        Any snapshot requested from now on is newer than they are, so it would discard
        them anyway; keeping them only costs memory -- with hundreds of books waiting their
        turn under the REST weight limit, minutes of events. Should a snapshot still turn
        out older than the first event kept, it is fetched again (``snapshots_too_old``).
        """
        buf = book.buffer
        cut = bisect.bisect_left(buf, now_ns - self._window_ns, key=lambda e: e.recv_ns)
        cut = min(max(cut, len(buf) - self.max_buffer), len(buf) - 1)
        if cut > 0:
            del buf[:cut]
            book.sync.first_update_id = buf[0].first
            self._overflows += 1

    def _want_snapshot(self, book: _BinanceBook) -> None:
        if book.fetching:
            return  # the running fetch re-checks the book's state when it is done
        book.fetching = True
        self._wanted_send.send_nowait(book.stream)

    async def _fetch(self, book: _BinanceBook) -> None:
        """Fetch snapshots until the book is in sync (or has nothing buffered).

        Never raises (except Cancelled): a failure here must not end the recorder."""
        assert self.rest is not None
        failures = 0
        try:
            try:
                path = bn.depth_path(self.venue, book.symbol, self.depth_limit)
                weight = bn.depth_weight(self.venue, self.depth_limit)
            except LocalProtocolError as exc:
                log.error("%s %s: cannot request a snapshot: %s", self.venue, book.stream, exc)
                return
            await trio.sleep(self.snapshot_delay)
            while not book.synced and book.buffer:
                resp: RestResponse | None = None
                async with self._snap_limiter:
                    try:
                        resp = await self.rest.get(path, weight=weight)
                    except RestError as exc:
                        log.warning("%s %s: snapshot failed: %s", self.venue, book.stream, exc)
                    except LocalProtocolError as exc:
                        log.error("%s %s: snapshot impossible: %s", self.venue, book.stream, exc)
                        return
                    except Exception:
                        log.exception("%s %s: snapshot request failed", self.venue, book.stream)
                try:
                    outcome = "failed" if resp is None else self._use_snapshot(book, resp)
                except Exception:
                    log.exception("%s %s: snapshot could not be used", self.venue, book.stream)
                    book.synced = False
                    book.buffer.clear()
                    book.sync.reset()
                    outcome = "failed"
                if outcome == "failed":
                    self._snap_failures += 1
                    delay = min(self.retry_cap, self.retry_base * 2**failures)
                    failures += 1
                    await trio.sleep(delay)
                elif outcome == "too_old":
                    await trio.sleep(self.snapshot_delay)
                else:
                    failures = 0
                    if not book.synced:  # the buffered events had a gap: buffer anew first
                        await trio.sleep(self.snapshot_delay)
        finally:
            book.fetching = False

    def _use_snapshot(self, book: _BinanceBook, resp: RestResponse) -> str:
        """Record a REST answer and, if it is a snapshot, load it and replay the buffer.

        Returns "failed", "too_old" or "done" (the book is synced or buffering anew)."""
        if resp.status != 200:
            log.warning(
                "%s %s: snapshot HTTP %d: %r",
                self.venue,
                book.stream,
                resp.status,
                resp.body[:200],
            )
            return "failed"
        self._snapshots += 1
        self._emit(book, DEPTH_SNAPSHOT_CHANNEL, resp.recv_ns, resp.body, rest=True)
        try:
            v = orjson.loads(resp.body)
            if not isinstance(v, dict):
                raise RemoteProtocolError("snapshot is not an object")
            last_id = _int(v.get("lastUpdateId"), "lastUpdateId")
            bids = _levels(v.get("bids"), "bids")
            asks = _levels(v.get("asks"), "asks")
        except (orjson.JSONDecodeError, RemoteProtocolError) as exc:
            log.warning("%s %s: bad snapshot: %s", self.venue, book.stream, exc)
            return "failed"
        if book.synced or not book.buffer:
            return "done"  # nothing waits for it any more (e.g. the buffer overflowed)
        action = book.sync.snapshot(last_id)
        if isinstance(action, bn.SnapshotTooOld):
            self._too_old += 1
            log.info(
                "%s %s: snapshot %d older than first event %d, fetching again",
                self.venue,
                book.stream,
                action.last_update_id,
                action.first_update_id,
            )
            return "too_old"
        book.load(bids, asks)
        book.synced = True
        book.snapshot_ns = resp.recv_ns
        book.applied = False
        book.resync_due = book.ever_synced
        book.ever_synced = True
        book.last_good_ns = resp.recv_ns if book.last_good_ns is None else book.last_good_ns
        buffered, book.buffer = book.buffer, []
        for ev in buffered:
            self._feed(book, ev)
        return "done"

    # -- Bybit ----------------------------------------------------------------------------------

    def _observe_bybit(self, msg: Message) -> None:
        try:
            v = orjson.loads(msg.payload)
        except orjson.JSONDecodeError as exc:
            raise RemoteProtocolError(f"orderbook: invalid JSON: {exc}") from None
        if not isinstance(v, dict) or not isinstance(v.get("data"), dict):
            raise RemoteProtocolError("orderbook: no data object")
        data = v["data"]
        typ = v.get("type")
        if typ not in ("snapshot", "delta"):
            raise RemoteProtocolError(f"orderbook: unknown type {typ!r}")
        u = _int(data.get("u"), "u")
        seq = data.get("seq")
        seq = _int(seq, "seq") if seq is not None else None
        bids = _levels(data.get("b"), "b")
        asks = _levels(data.get("a"), "a")
        ts = _int(v.get("ts"), "ts")
        cts = v.get("cts")
        cts = _int(cts, "cts") if cts is not None else None

        book = self._books.get(msg.stream)
        if book is None:
            book = _BybitBook(
                msg.stream,
                msg.symbol,
                sync=bb.BookSync(msg.stream, strict_increment=self.strict_increment),
            )
            self._books[msg.stream] = book
        assert isinstance(book, _BybitBook)
        self._before(book, msg.recv_ns)
        events = book.sync.on_message(typ, u, seq)

        if typ == "snapshot":
            reason = "snapshot"
            for e in events:
                if isinstance(e, bb.Reset):
                    reason = e.reason
                    if book.synced and book.gap_start_ns is None:
                        # The exchange replaced the book by itself (u = 1: service restart).
                        book.resync_due = True
            book.load(bids, asks)
            was_synced = book.ever_synced
            book.synced = book.ever_synced = True
            book.awaiting = 0
            if not was_synced:
                book.resync_due = False
            self._set_state(book, ts, cts, u, seq)
            self._good(book, msg.recv_ns, reason)
            return

        for e in events:
            if isinstance(e, bb.Gap):
                self._bybit_break(book, {"expected": e.expected, "got": e.got})
                return
            if isinstance(e, bb.Stale):
                if e.got < e.last and book.synced:
                    # Older data after newer: the book can no longer be trusted.
                    self._bybit_break(book, {"last": e.last, "got": e.got, "stale": True})
                return  # same u again: a duplicate, ignored
        if not (book.synced and book.sync.synced):
            return  # waiting for a snapshot
        book.apply(bids, asks)
        self._set_state(book, ts, cts, u, seq)
        self._good(book, msg.recv_ns, "snapshot")

    @staticmethod
    def _set_state(book: _BybitBook, ts: int, cts: int | None, u: int, seq: int | None) -> None:
        book.ts_ms, book.cts_ms, book.update_id, book.cross_seq = ts, cts, u, seq

    def _bybit_break(self, book: _BybitBook, detail: Mapping[str, Any]) -> None:
        if not book.synced and book.awaiting:
            return  # already waiting for a snapshot
        why = "stale delta (u went back)" if detail.get("stale") else "u != previous u + 1"
        self._open_gap(book, why, detail)
        self._request_resubscribe(book)

    def _request_resubscribe(self, book: _BybitBook) -> None:
        book.awaiting = max(1, book.awaiting)
        if self.resubscribe is None:
            log.warning(
                "%s %s: no resubscribe callback; waiting for a snapshot", self.venue, book.stream
            )
            return
        self._resubscribes += 1
        try:
            done = self.resubscribe(self.venue, [book.stream])
        except Exception:
            log.exception("%s %s: resubscribe failed", self.venue, book.stream)
            return
        if done is False:
            log.warning("%s %s: no live connection to resubscribe on", self.venue, book.stream)

    async def _resubscribe_loop(self) -> None:
        """Ask again for topics whose snapshot has not come after a whole retry period."""
        while True:
            await trio.sleep(self.resubscribe_retry)
            for book in list(self._books.values()):
                if isinstance(book, _BybitBook) and book.awaiting and not book.synced:
                    if book.awaiting >= 2:
                        self._request_resubscribe(book)
                    book.awaiting += 1
