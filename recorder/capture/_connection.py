"""One shard's connection lifecycle: connect, subscribe, receive, survive, roll over.

A *shard* is a fixed set of streams that the planner assigned to one connection. Its
:class:`ShardRunner` keeps that set recorded for as long as the job runs:

* a *session* is one WebSocket connection. It subscribes in batches paced by the
  connection's rate limiter, checks every reply by request id (a refused stream is a
  ``refused`` session event and an error in the status, never a silent hole), then hands each
  frame to the sink with its receive time and a per-connection sequence number;
* a watchdog ends a session that received nothing at all for the shard's stall time;
* a failed session is retried forever with capped exponential backoff and jitter; the time
  without a live session is recorded as a ``gap`` event naming the shard's streams;
* before the 24-hour forced disconnect, and on ``serverShutdown``, the runner opens the next
  session *before* closing the current one (make-before-break); while both run, a bounded
  dedup filter drops the frames the two connections have in common.

Nothing here parses market data: the sink gets the exact bytes; control frames are decoded by
the venue adapter. Every transport failure arrives as a :class:`~recorder.net._ws.TransportError`
(translated in ``_ws.py``).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import trio

from recorder.capture._policy import Backoff, Dedup, RolloverSchedule
from recorder.core._errors import RemoteProtocolError
from recorder.core._frame import Frame
from recorder.core._message import (
    ALL_SYMBOLS,
    CONTROL_CHANNEL,
    SESSION_CHANNEL,
    Message,
    SessionEvent,
)
from recorder.core._secrets import redact_secrets
from recorder.net._limiter import RateLimit, TrioRateLimiter
from recorder.net._ws import TransportError, WsClient, connect
from recorder.venues._channels import session_payload
from recorder.venues._contract import Ack, Refusal, Request, Shutdown, VenueAdapter

log = logging.getLogger("ticktape.connection")


class Connector(Protocol):
    """Opens a WebSocket connection (``_ws.connect``; tests pass an in-memory exchange)."""

    def __call__(
        self,
        url: str,
        *,
        headers: Sequence[tuple[str, str]] = ...,
        on_control_sent: Callable[[], None] | None = ...,
        ssl_context: ssl.SSLContext | None = ...,
    ) -> Awaitable[WsClient]: ...


class Sink(Protocol):
    """Where recorded messages go (the archive writer's front, taps, book keepers)."""

    def put(self, msg: Message) -> None: ...


@dataclass(frozen=True)
class Timing:
    """Timing policy of a shard, in seconds of Trio's clock. The bounds on connecting and
    subscribing live here, in the supervisor's configuration, not in the code below it."""

    connect_timeout: float = 15.0
    subscribe_timeout: float = 15.0
    stall_after: float = 60.0
    backoff: Backoff = field(default_factory=Backoff)
    rollover: RolloverSchedule | None = None
    dedup_per_stream: int = 10_000


@dataclass(frozen=True, slots=True)
class ShardStatistics:
    """A snapshot of one shard's state, for the live status and tests."""

    shard_id: str
    venue: str
    streams: int
    connected: bool
    conn: str | None
    messages: int
    bytes: int
    reconnects: int
    rollovers: int
    gaps: int
    refused: tuple[str, ...]
    duplicates_dropped: int
    last_recv_ns: int | None
    last_error: str | None


@dataclass
class _Session:
    gen: int
    conn: str
    url: str
    client: WsClient | None = None
    limiter: TrioRateLimiter | None = None
    subscribed: trio.Event = field(default_factory=trio.Event)
    retire_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    pending: dict[str, Request] = field(default_factory=dict)
    replies: trio.Event = field(default_factory=trio.Event)
    seq: int = 0
    connected_at: float = 0.0
    has_successor: bool = False
    nursery: trio.Nursery | None = None


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


def _session_error(eg: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that ended a session, out of its nursery's exception group.

    A transport or protocol error is what the lifecycle reacts to; any other error is a bug
    and propagates unchanged (a Cancelled lost here is raised again by Trio at the next
    checkpoint, since its scope stays cancelled).
    """
    for leaf in _leaves(eg):
        if isinstance(leaf, TransportError | RemoteProtocolError):
            return leaf
    return eg


class ShardRunner:
    """Keeps one shard's streams recorded; see the module docstring."""

    def __init__(
        self,
        *,
        shard_id: str,
        adapter: VenueAdapter,
        ws_base: str,
        route: str,
        streams: Sequence[str],
        sink: Sink,
        timing: Timing,
        connect_limiter: TrioRateLimiter,
        run_token: str,
        shard_index: int = 0,
        shard_count: int = 1,
        clock_ns: Callable[[], int] = time.time_ns,
        connector: Connector = connect,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.shard_id = shard_id
        self.adapter = adapter
        self.venue = adapter.venue
        self.ws_base = ws_base
        self.route = route
        self.streams = list(streams)
        self.sink = sink
        self.timing = timing
        self.connect_limiter = connect_limiter
        self.run_token = run_token
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.clock_ns = clock_ns
        self.connector = connector
        self.ssl_context = ssl_context
        self._dedup = Dedup(timing.dedup_per_stream)
        self._overlapping = False
        self._next_id = 1
        self._gen = 0
        self._live: _Session | None = None
        self._gap_since_ns: int | None = None
        self._gap_reason: str | None = None
        self._messages = 0
        self._bytes = 0
        self._reconnects = 0
        self._rollovers = 0
        self._gaps = 0
        self._refused: set[str] = set()
        self._last_recv_ns: int | None = None
        self._last_error: str | None = None
        self._session_seq = 0
        self._active = 0

    # -- public ------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run forever (until cancelled). Started means: the first session is subscribed or
        has failed at least once (so a bad endpoint does not block the job's start-up)."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                first_done = trio.Event()
                nursery.start_soon(self._lifecycle, None, first_done)
                await first_done.wait()
                task_status.started()
        finally:
            self._close_open_gap()

    def add_streams(self, streams: Sequence[str]) -> None:
        """Record more streams on this shard (subscribed now if a session is live)."""
        new = [x for x in streams if x not in self.streams]
        self.streams.extend(new)
        s = self._live
        if new and s is not None and s.nursery is not None:
            reqs = self.adapter.subscribe_requests(new, self._next_id)
            self._next_id += len(reqs)
            self._spawn(s, self._send_requests, s, reqs)
            self._event(s.conn, s.seq, SessionEvent.SUBSCRIBED, streams=new, reason="listed")

    def remove_streams(self, streams: Sequence[str]) -> None:
        """Stop recording streams (unsubscribed now if a session is live)."""
        gone = [x for x in streams if x in self.streams]
        self.streams = [x for x in self.streams if x not in gone]
        s = self._live
        if gone and s is not None and s.nursery is not None:
            reqs = self.adapter.unsubscribe_requests(gone, self._next_id)
            self._next_id += len(reqs)
            self._spawn(s, self._send_requests, s, reqs)
            self._event(s.conn, s.seq, SessionEvent.UNSUBSCRIBED, streams=gone, reason="delisted")

    def stop(self) -> None:
        """End this shard (its streams were all delisted or moved)."""
        self._nursery.cancel_scope.cancel()

    def resubscribe(self, streams: Sequence[str]) -> bool:
        """Unsubscribe and subscribe ``streams`` again on the live connection (e.g. to get a
        fresh Bybit book snapshot after a continuity break). False if no session is live."""
        s = self._live
        if s is None or s.nursery is None or s.client is None:
            return False
        wanted = [x for x in streams if x in self.streams]
        if not wanted:
            return False
        unsub = self.adapter.unsubscribe_requests(wanted, self._next_id)
        self._next_id += len(unsub)
        sub = self.adapter.subscribe_requests(wanted, self._next_id)
        self._next_id += len(sub)
        self._spawn(s, self._send_requests, s, [*unsub, *sub])
        return True

    def statistics(self) -> ShardStatistics:
        live = self._live
        return ShardStatistics(
            shard_id=self.shard_id,
            venue=self.venue,
            streams=len(self.streams),
            connected=live is not None and live.subscribed.is_set(),
            conn=live.conn if live else None,
            messages=self._messages,
            bytes=self._bytes,
            reconnects=self._reconnects,
            rollovers=self._rollovers,
            gaps=self._gaps,
            refused=tuple(sorted(self._refused)),
            duplicates_dropped=self._dedup.statistics().dropped,
            last_recv_ns=self._last_recv_ns,
            last_error=self._last_error,
        )

    # -- session events ----------------------------------------------------------------------

    def _event(self, conn: str, seq: int, event: str, **kw: object) -> None:
        now = self.clock_ns()
        payload = session_payload(event, now, **kw)  # type: ignore[arg-type]
        self._session_seq += 1
        self.sink.put(
            Message(
                venue=self.venue,
                stream=f"{self.shard_id}",
                channel=SESSION_CHANNEL,
                symbol=ALL_SYMBOLS,
                recv_ns=now,
                conn=conn,
                seq=seq,
                payload=payload,
            )
        )

    def _new_conn_id(self) -> tuple[int, str]:
        self._gen += 1
        return self._gen, f"{self.shard_id}#{self._gen}@{self.run_token}"

    # -- lifecycle ---------------------------------------------------------------------------

    async def _lifecycle(self, predecessor: _Session | None, first_done: trio.Event | None) -> None:
        """Sessions one after another until one hands over to a successor (rollover)."""
        attempt = 0
        while True:
            gen, conn = self._new_conn_id()
            url = self.adapter.connection_url(self.ws_base, self.route)
            s = _Session(gen=gen, conn=conn, url=url)
            started = trio.current_time()
            self._active += 1
            try:
                await self._session(s, predecessor, first_done)
            except (TransportError, RemoteProtocolError, trio.TooSlowError) as exc:
                # A protocol error may quote a server's frame, which may echo a secret.
                reason = getattr(exc, "reason", None) or (
                    redact_secrets(f"protocol error: {exc}")
                    if isinstance(exc, RemoteProtocolError)
                    else "timed out"
                )
            except BaseException as exc:
                if s.client is not None:  # stopped (or a bug): it ended like any other session
                    stop = trio.current_effective_deadline() == float("-inf")
                    why = "stopped" if stop else f"error: {type(exc).__name__}"
                    self._event(
                        s.conn, s.seq + 1, SessionEvent.DISCONNECTED, reason=why, planned=stop
                    )
                raise
            else:
                # Retired after a successful handover: the successor carries on, no gap.
                self._event(
                    s.conn,
                    s.seq + 1,
                    SessionEvent.DISCONNECTED,
                    reason="rollover complete",
                    planned=True,
                )
                return
            finally:
                self._active -= 1
                self._dedup.forget_source(s.conn)
                if self._active <= 1:
                    self._overlapping = False
                if s.client is not None:
                    await s.client.aclose()
            self._last_error = reason
            ended_ns = self.clock_ns()
            was_live = self._live is s
            self._event(
                s.conn,
                s.seq + 1,
                SessionEvent.DISCONNECTED,
                reason=reason,
                url=url,
                attempt=attempt,
            )
            log.warning("%s %s disconnected: %s", self.shard_id, s.conn, reason)
            if first_done is not None:
                first_done.set()
                first_done = None
            predecessor = None
            if was_live:
                self._live = None
            if self._live is None and self._gap_since_ns is None:
                self._gap_since_ns = self._last_recv_ns or ended_ns
                self._gap_reason = reason
            if s.has_successor:
                return  # the successor is already connecting; it closes the gap
            if trio.current_time() - started >= self.timing.backoff.healthy_after:
                attempt = 0
            delay = self.timing.backoff.delay(attempt)
            attempt += 1
            self._reconnects += 1
            await trio.sleep(delay)

    async def _session(
        self, s: _Session, predecessor: _Session | None, first_done: trio.Event | None
    ) -> None:
        """One connection, from connect to its end. Returns normally only when retired."""
        await self.connect_limiter.acquire()
        limits = self.adapter.limits
        capacity = limits.outgoing_msgs_per_s - limits.outgoing_headroom
        limiter = TrioRateLimiter(
            RateLimit(
                limit=limits.outgoing_msgs_per_s,
                window_s=1.0,
                headroom=limits.outgoing_headroom,
                urgent_reserve=1 if capacity > 1 else 0,
            )
        )
        s.limiter = limiter
        with trio.fail_after(self.timing.connect_timeout):
            s.client = await self.connector(
                s.url,
                headers=self.adapter.headers(),
                on_control_sent=limiter.record_urgent_now,
                ssl_context=self.ssl_context,
            )
        client = s.client
        s.connected_at = trio.current_time()
        self._event(s.conn, 0, SessionEvent.CONNECTED, url=s.url)
        try:
            async with trio.open_nursery() as nursery:
                s.nursery = nursery
                nursery.start_soon(self._subscribe, s)
                nursery.start_soon(self._watchdog, s)
                if limits.client_ping_interval_s:
                    nursery.start_soon(self._pinger, s, limits.client_ping_interval_s)
                nursery.start_soon(self._supervise_rollover, s, predecessor, first_done)
                with s.retire_scope:
                    await self._receive_loop(s, client)
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as eg:
            raise _session_error(eg) from None

    async def _subscribe(self, s: _Session) -> None:
        assert s.client is not None and s.limiter is not None
        reqs = self.adapter.subscribe_requests(self.streams, self._next_id)
        self._next_id += len(reqs)
        await self._send_requests(s, reqs)
        with trio.move_on_after(self.timing.subscribe_timeout) as scope:
            while s.pending:
                await s.replies.wait()
                s.replies = trio.Event()
        if scope.cancelled_caught:
            missing = sorted({st for r in s.pending.values() for st in r.streams})
            self._event(
                s.conn, 0, SessionEvent.REFUSED, reason="no reply to subscribe", streams=missing
            )
            log.error("%s: no subscribe reply for %d streams", self.shard_id, len(missing))
        s.subscribed.set()
        self._became_live(s)

    async def _send_requests(self, s: _Session, reqs: Sequence[Request]) -> None:
        assert s.client is not None and s.limiter is not None
        for req in reqs:
            await s.limiter.acquire()
            s.pending[req.req_id] = req
            await s.client.send_text(req.text)

    def _became_live(self, s: _Session) -> None:
        self._live = s
        accepted = [x for x in self.streams if x not in self._refused]
        self._event(s.conn, 0, SessionEvent.SUBSCRIBED, streams=accepted)
        if self._gap_since_ns is not None:
            end = self.clock_ns()
            self._gaps += 1
            self._event(
                s.conn,
                0,
                SessionEvent.GAP,
                reason=self._gap_reason or "disconnected",
                streams=accepted,
                gap_start_ns=self._gap_since_ns,
                gap_end_ns=end,
            )
            self._event(s.conn, 0, SessionEvent.RECONNECTED, streams=accepted)
            self._gap_since_ns = None

    def _close_open_gap(self) -> None:
        """Stopped while down: the gap ends now (no reader may take the streams for quiet)."""
        if self._gap_since_ns is not None:
            self._gaps += 1
            reason = f"{self._gap_reason or 'disconnected'} (still down when stopped)"
            streams = [x for x in self.streams if x not in self._refused]
            conn = f"{self.shard_id}#{self._gen}@{self.run_token}"
            since, self._gap_since_ns = self._gap_since_ns, None
            self._event(conn, 0, SessionEvent.GAP, reason=reason, streams=streams,
                        gap_start_ns=since, gap_end_ns=self.clock_ns())  # fmt: skip

    async def _pinger(self, s: _Session, every: float) -> None:
        assert s.client is not None and s.limiter is not None
        n = 0
        while True:
            await trio.sleep(every)
            n += 1
            text = self.adapter.client_ping(n)
            if text is not None:
                await s.limiter.acquire(urgent=True)
                await s.client.send_text(text)

    async def _watchdog(self, s: _Session) -> None:
        assert s.client is not None
        stall = self.timing.stall_after
        while True:
            due = s.client.last_activity + stall
            if trio.current_time() >= due:
                raise _Stalled(f"stalled: nothing received for {stall:g} s")
            await trio.sleep_until(due)

    async def _supervise_rollover(
        self, s: _Session, predecessor: _Session | None, first_done: trio.Event | None
    ) -> None:
        await s.subscribed.wait()
        if first_done is not None:
            first_done.set()
        schedule = self.timing.rollover
        if predecessor is not None:
            # Make-before-break: both run for the overlap; the dedup filter drops doubles.
            overlap = schedule.overlap_s if schedule is not None else 0.0
            await trio.sleep(overlap)
            predecessor.retire_scope.cancel()
        if schedule is not None:
            at = schedule.rollover_at(self.shard_index, s.connected_at, self.shard_count)
            await trio.sleep_until(at)
            self._start_successor(s, reason="max connection age")

    def _start_successor(self, s: _Session, *, reason: str) -> None:
        if s.has_successor:
            return
        s.has_successor = True
        self._rollovers += 1
        self._overlapping = True
        self._event(s.conn, s.seq, SessionEvent.ROLLOVER, reason=reason, planned=True)
        self._nursery.start_soon(self._lifecycle, s, None)

    async def _receive_loop(self, s: _Session, client: WsClient) -> None:
        adapter = self.adapter
        venue = self.venue
        conn = s.conn
        sink = self.sink
        dedup = self._dedup
        while True:
            frame = await client.receive()
            s.seq += 1
            routed = adapter.classify(frame)
            if routed.channel == CONTROL_CHANNEL:
                self._control(s, frame, routed.stream)
                continue
            if self._overlapping and not dedup.admit(conn, routed.stream, frame.payload):
                continue
            self._messages += 1
            self._bytes += len(frame.payload)
            self._last_recv_ns = frame.recv_ns
            sink.put(
                Message(
                    venue=venue,
                    stream=routed.stream,
                    channel=routed.channel,
                    symbol=routed.symbol,
                    recv_ns=frame.recv_ns,
                    conn=conn,
                    seq=s.seq,
                    payload=frame.payload,
                )
            )

    def _control(self, s: _Session, frame: Frame, stream: str) -> None:
        self.sink.put(
            Message(
                venue=self.venue,
                stream=stream,
                channel=CONTROL_CHANNEL,
                symbol=ALL_SYMBOLS,
                recv_ns=frame.recv_ns,
                conn=s.conn,
                seq=s.seq,
                payload=frame.payload,
            )
        )
        ctl = self.adapter.parse_control(frame)
        if isinstance(ctl, Ack):
            req = s.pending.pop(ctl.req_id, None) if ctl.req_id is not None else None
            if req is None and ctl.req_id is None and s.pending:
                # Replies without ids (Bybit option) come back in request order.
                s.pending.pop(next(iter(s.pending)))
            if ctl.refused:
                self._refuse(s, ctl.refused, ctl.reason or "refused by server")
            s.replies.set()
        elif isinstance(ctl, Refusal):
            req = s.pending.pop(ctl.req_id, None) if ctl.req_id is not None else None
            if req is None and ctl.req_id is None and s.pending:
                req = s.pending.pop(next(iter(s.pending)))
            if req is not None and len(req.streams) > 1 and not ctl.streams:
                # One bad name fails the whole batch: narrow it down to the culprits.
                retry = self.adapter.retry_refused(req, self._next_id)
                self._next_id += len(retry)
                self._spawn(s, self._send_requests, s, retry)
            else:
                self._refuse(s, ctl.streams or (req.streams if req else ()), ctl.reason)
                rest = [x for x in (req.streams if req else ()) if x not in ctl.streams]
                if ctl.streams and rest:
                    # The server named the culprits; the rest of the batch was not subscribed.
                    again = self.adapter.subscribe_requests(rest, self._next_id)
                    self._next_id += len(again)
                    self._spawn(s, self._send_requests, s, again)
            s.replies.set()
        elif isinstance(ctl, Shutdown):
            log.warning("%s: serverShutdown received; rolling over", self.shard_id)
            self._start_successor(s, reason="serverShutdown")

    @staticmethod
    def _spawn(s: _Session, fn: Callable[..., Awaitable[None]], *args: object) -> None:
        """Start a task that lives and dies with the session (not the shard)."""
        assert s.nursery is not None
        s.nursery.start_soon(fn, *args)

    def _refuse(self, s: _Session, streams: Sequence[str], reason: str) -> None:
        reason = redact_secrets(reason)  # the server's words
        new = [x for x in streams if x not in self._refused]
        self._refused.update(streams)
        if new:
            log.error("%s: server refused %s: %s", self.shard_id, ", ".join(new), reason)
            self._event(s.conn, s.seq, SessionEvent.REFUSED, reason=reason, streams=list(new))


class _Stalled(TransportError):
    """The watchdog saw nothing at all arrive for the shard's stall time."""
