"""The simulator: listeners, connection lifecycle, market pump, timers, faults, statistics."""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from functools import partial
from typing import Any

import trio
from wsproto.events import Ping

from replay.sim._ledger import Ledger
from replay.sim._rest import serve_rest
from replay.sim._runtime import Conn, Counters, VenueRuntime, wall_ns
from replay.sim._types import (
    VENUES,
    ConnectionInfo,
    Fault,
    MarketEvent,
    SimConfig,
    SimUrls,
    Statistics,
    VenueUrls,
)
from replay.sim._venues import VENUE_TABLE, make_runtime
from replay.sim._ws import WsConn

log = logging.getLogger(__name__)


class Simulator:
    """A local exchange: ``urls = await nursery.start(sim.run)``; cancel the nursery to stop."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        for v in self.config.venues:
            if v not in VENUES or v not in VENUE_TABLE:
                raise ValueError(f"unknown venue {v!r}; known: {', '.join(VENUES)}")
        self.clock: Callable[[], int] = self.config.clock or wall_ns
        self.counters = Counters()
        self.ledger: Ledger | None = (
            Ledger(self.config.ledger_path, self.config.ledger_flush_interval)
            if self.config.ledger_path
            else None
        )
        self.venues: dict[str, VenueRuntime] = {
            name: make_runtime(name, self.config, self.counters, self.ledger, self.clock)
            for name in self.config.venues
        }
        self._next_id = 0
        self._nursery: trio.Nursery | None = None
        self._t0 = 0.0
        self.urls: SimUrls | None = None

    # -- public API ------------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``task_status.started`` gets the :class:`SimUrls`."""
        host = self.config.host
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._t0 = trio.current_time()
                urls: dict[str, VenueUrls] = {}
                for name, rt in self.venues.items():
                    tls = rt.cfg.ssl_context or self.config.ssl_context
                    ws_l, ws_port = await _listeners(rt.cfg.ws_port, host, tls)
                    rest_l, rest_port = await _listeners(rt.cfg.rest_port, host, tls)
                    ws_scheme, rest_scheme = ("wss", "https") if tls else ("ws", "http")
                    rt.ws_url = f"{ws_scheme}://{host}:{ws_port}"
                    rt.rest_url = f"{rest_scheme}://{host}:{rest_port}"
                    urls[name] = VenueUrls(name, rt.ws_url, rt.rest_url)
                    nursery.start_soon(trio.serve_listeners, partial(self._serve_ws, rt), ws_l)
                    app = VENUE_TABLE[name].rest
                    nursery.start_soon(trio.serve_listeners, partial(serve_rest, rt, app), rest_l)
                    source_task = getattr(rt.source, "run", None)
                    if source_task is not None:  # a source that reads ahead (ArchiveSource)
                        await nursery.start(source_task)
                    nursery.start_soon(self._pump, rt)
                for f in self.config.faults:
                    nursery.start_soon(self._scheduled, f)
                if self.ledger is not None:
                    nursery.start_soon(self.ledger.run)
                self.urls = SimUrls(urls)
                task_status.started(self.urls)
        finally:
            self._nursery = None
            if self.ledger is not None:
                self.ledger.close()

    def inject(self, fault: Fault, conn: int | None = None) -> None:
        """Apply a fault now (``conn`` overrides ``fault.conn``)."""
        if conn is not None:
            fault = _replace(fault, conn=conn)
        self._apply(fault)

    def connections(self, venue: str | None = None) -> list[ConnectionInfo]:
        out = []
        for rt in self.venues.values():
            if venue is not None and rt.name != venue:
                continue
            for c in rt.conns.values():
                out.append(
                    ConnectionInfo(c.id, rt.name, c.path, tuple(c.subs), c.opened_at, c.combined)
                )
        return out

    def statistics(self) -> Statistics:
        c = self.counters
        return Statistics(
            connections_open=sum(len(rt.conns) for rt in self.venues.values()),
            connections_total=c.connections_total,
            handshakes_refused=c.handshakes_refused,
            messages_sent=c.messages_sent,
            messages_dropped=c.messages_dropped,
            messages_duplicated=c.messages_duplicated,
            control_messages_received=c.control_received,
            closes_by_reason=dict(c.closes),
            rate_limit_closes=c.rate_limit_closes,
            pong_timeout_closes=c.pong_timeout_closes,
            max_age_closes=c.max_age_closes,
            rest_requests=c.rest_requests,
            rest_rejected=c.rest_rejected,
            messages_by_venue={name: rt.sent for name, rt in self.venues.items()},
            connections_open_by_venue={name: len(rt.conns) for name, rt in self.venues.items()},
        )

    # -- market pump -----------------------------------------------------------------------------

    async def _pump(self, rt: VenueRuntime) -> None:
        tick = self.config.tick
        culling = rt.cfg.sbe_culling
        next_hist = 0.0
        while True:
            await trio.sleep(tick)
            now_ns = self.clock()
            events = rt.source.advance(now_ns, rt.index.keys())
            if culling and events:
                events = _cull(events)
            index = rt.index
            for ev in events:
                subs = index.get(ev.stream)
                if subs:
                    for c in list(subs):
                        c.deliver(ev)
            t = trio.current_time()
            if t >= next_hist:
                next_hist = t + 1.0
                self._remember_snapshots(rt, t, now_ns)

    def _remember_snapshots(self, rt: VenueRuntime, t: float, now_ns: int) -> None:
        """Keep ~30 s of REST snapshots per symbol for the stale_snapshot fault."""
        snaps: dict[str, object] = {}
        for spec in rt.source.instruments():
            snap = rt.source.depth_snapshot(spec.symbol, 5000, now_ns)
            if snap is not None:
                snaps[spec.symbol] = snap
        rt.snap_history.append((t, snaps))
        while rt.snap_history and rt.snap_history[0][0] < t - 30:
            rt.snap_history.popleft()

    # -- connections -----------------------------------------------------------------------------

    async def _serve_ws(self, rt: VenueRuntime, stream: trio.abc.Stream) -> None:
        ws = WsConn(stream)
        try:
            with trio.move_on_after(10):
                request = await ws.read_request()
            if request is None:
                if ws.bad_request:
                    self.counters.handshakes_refused += 1
                    await ws.reject(400, b"Bad Request: not a WebSocket upgrade")
                return
            refusal = self._refusal(rt)
            headers = {k.decode().lower(): v.decode() for k, v in request.extra_headers}
            self._next_id += 1
            conn = Conn(rt, self._next_id, ws, request.target)
            if refusal is None:
                refusal = rt.handler.handshake(conn, request.target, headers)
            if refusal is not None:
                conn.drop_all()
                self.counters.handshakes_refused += 1
                await ws.reject(refusal[0], refusal[1].encode())
                return
            self.counters.connections_total += 1
            rt.conns[conn.id] = conn
            try:
                await ws.accept()
                await self._run_conn(rt, conn)
            finally:
                conn.drop_all()
                rt.conns.pop(conn.id, None)
                if not conn.server_closed:
                    key = "client close" if ws.close_reason == "client" else "client disconnect"
                    self.counters.closes[key] = self.counters.closes.get(key, 0) + 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            with trio.CancelScope(shield=True), suppress(trio.BrokenResourceError):
                await stream.aclose()  # a TLS close_notify to a vanished peer may fail

    def _refusal(self, rt: VenueRuntime) -> tuple[int, str] | None:
        now = trio.current_time()
        for r in rt.refusals:
            remaining = r[2]
            assert isinstance(remaining, int)
            if remaining > 0:
                r[2] = remaining - 1
                rt.refusals = [x for x in rt.refusals if x[2] != 0]
                return int(str(r[0])), str(r[1])
        concurrent = rt.cfg.max_concurrent
        if concurrent is None:
            concurrent = VENUE_TABLE[rt.name].max_concurrent
        if concurrent is not None and len(rt.conns) >= concurrent:
            return rt.cfg.conn_limit_status, rt.cfg.conn_limit_body
        limit = rt.handler.conn_attempts
        if limit:
            window = rt.cfg.conn_attempt_window
            rt.attempts.append(now)
            while rt.attempts and rt.attempts[0] <= now - window:
                rt.attempts.popleft()
            if len(rt.attempts) > limit:
                return rt.cfg.conn_limit_status, rt.cfg.conn_limit_body
        return None

    async def _run_conn(self, rt: VenueRuntime, conn: Conn) -> None:
        h = rt.handler
        for s in list(conn.subs):
            for ev in rt.source.on_subscribe(s, self.clock()):
                conn.deliver(ev)
        with conn.scope:
            async with trio.open_nursery() as n:
                n.start_soon(conn.ws.writer)
                n.start_soon(
                    conn.ws.reader,
                    partial(self._on_text, conn),
                    partial(self._on_binary, conn),
                    partial(self._on_ping, conn),
                    partial(self._on_pong, conn),
                )
                if h.server_pings and h.ping_interval > 0:
                    n.start_soon(self._heartbeat, conn)
                if h.max_age is not None:
                    n.start_soon(self._lifetime, conn, h.max_age)
                idle = rt.cfg.idle_timeout
                if idle is not None:
                    n.start_soon(self._idle, conn, idle)
                await conn.ws.done.wait()
                n.cancel_scope.cancel()

    def _on_text(self, conn: Conn, text: str) -> None:
        if conn.ws.close_sent or not conn.count_incoming():
            return
        self.counters.control_received += 1
        try:
            conn.venue.handler.on_text(conn, text)
        except Exception:  # a hostile request must not take the simulator down
            log.exception("handler failed on %r", text[:200])
            conn.close(1011, "Internal error", "internal error")

    def _on_binary(self, conn: Conn, data: bytes) -> None:
        if conn.ws.close_sent or not conn.count_incoming():
            return
        conn.venue.handler.on_binary(conn, data)

    def _on_ping(self, conn: Conn, ping: Ping) -> None:
        if conn.ws.close_sent or not conn.count_incoming():
            return
        if conn.mute_pongs_until > trio.current_time():
            return
        conn.ws.pong(ping)

    def _on_pong(self, conn: Conn, payload: bytes) -> None:
        if conn.ws.close_sent or not conn.count_incoming():
            return
        if conn.ignore_pongs_until > trio.current_time():
            return
        sent = conn.outstanding.pop(payload, None)
        if sent is None and conn.venue.cfg.unsolicited_pong_resets:
            conn.outstanding.clear()
        if sent is not None:  # a solicited pong also answers every older ping
            for k, t in list(conn.outstanding.items()):
                if t <= sent:
                    del conn.outstanding[k]

    async def _heartbeat(self, conn: Conn) -> None:
        h = conn.venue.handler
        interval, timeout = h.ping_interval, h.pong_timeout
        next_ping = trio.current_time() + interval
        while True:
            oldest = min(conn.outstanding.values(), default=math.inf)
            await trio.sleep_until(min(next_ping, oldest + timeout))
            now = trio.current_time()
            oldest = min(conn.outstanding.values(), default=math.inf)
            if now >= oldest + timeout:
                self.counters.pong_timeout_closes += 1
                close = conn.venue.cfg.pong_timeout_close
                if close is None:
                    conn.abort("pong timeout")
                else:
                    conn.close(close[0], close[1], "pong timeout")
                return
            if now >= next_ping:
                next_ping = now + interval
                if conn.pings_off_until > now or conn.stalled():
                    continue
                conn.ping_seq = max(conn.ping_seq + 1, self.clock() // 1_000_000)
                payload = str(conn.ping_seq).encode()
                conn.outstanding[payload] = now
                conn.ws.send_ping(payload)

    async def _lifetime(self, conn: Conn, age: float) -> None:
        await trio.sleep_until(conn.opened_at + age)
        self.counters.max_age_closes += 1
        code, reason = conn.venue.cfg.max_age_close
        conn.close(code, reason, "max age")

    async def _idle(self, conn: Conn, idle: float) -> None:
        while True:
            deadline = conn.last_client_msg + idle
            if trio.current_time() >= deadline:
                conn.close(1000, "Idle timeout", "idle timeout")
                return
            await trio.sleep_until(deadline)

    # -- faults ----------------------------------------------------------------------------------

    async def _scheduled(self, fault: Fault) -> None:
        if fault.at is not None:
            await trio.sleep_until(self._t0 + fault.at)
        self._apply(fault)

    def _targets(self, fault: Fault) -> list[Conn]:
        out = []
        for rt in self.venues.values():
            if fault.venue is not None and rt.name != fault.venue:
                continue
            for c in rt.conns.values():
                if fault.conn is None or c.id == fault.conn:
                    out.append(c)
        return out

    def _apply(self, fault: Fault) -> None:
        kind = fault.kind
        now = trio.current_time()
        until = now + fault.duration if fault.duration > 0 else math.inf
        venues = [rt for rt in self.venues.values() if fault.venue in (None, rt.name)]
        if kind == "refuse_handshake":
            for rt in venues:
                rt.refusals.append([fault.status, fault.body, fault.count])
            return
        if kind == "book_reset":
            for rt in venues:
                rt.source.reset_book(fault.symbol)
            return
        if kind == "book_snapshot":
            for rt in venues:
                resend = getattr(rt.source, "resend_snapshot", None)
                if resend is not None:
                    resend(fault.symbol)
            return
        if kind == "stale_snapshot":
            for rt in venues:
                rt.stale.extend([fault.duration] * fault.count)
            return
        for c in self._targets(fault):
            if kind == "close":
                if fault.abort:
                    c.abort("fault abort")
                else:
                    c.close(fault.code, fault.reason, "fault close")
            elif kind == "stall":
                c.stalled_until = now + fault.duration
            elif kind == "delay":
                c.ws.hold_until = now + fault.duration
                c.ws.wake.set()
            elif kind == "stop_pings":
                c.pings_off_until = until
            elif kind == "ignore_pongs":
                c.ignore_pongs_until = until
            elif kind == "mute_pongs":
                c.mute_pongs_until = until
            elif kind in ("drop", "duplicate", "truncate", "truncate_frame", "extra_fields"):
                c.data_faults.append([kind, fault.stream, fault.count])
            elif kind == "malformed":
                c.ws.write(b"\x83\x00")  # FIN + reserved opcode 0x3, empty payload
            elif kind == "server_shutdown":
                msg = c.venue.handler.shutdown_message(c, self.clock())
                if msg is not None:
                    c.send_control(msg)
                    if c.venue.ledger is not None:
                        stream = "!serverShutdown"
                        c.venue.ledger.record(c.venue.name, stream, c.id, self.clock(), msg, False)
                if fault.duration > 0 and self._nursery is not None:
                    self._nursery.start_soon(self._close_later, c, fault)

    async def _close_later(self, conn: Conn, fault: Fault) -> None:
        await trio.sleep(fault.duration)
        conn.close(fault.code, fault.reason or "Server shutdown", "server shutdown")


Listener = trio.SocketListener | trio.SSLListener[trio.SocketStream]


async def _listeners(
    port: int, host: str, tls: ssl.SSLContext | None
) -> tuple[list[Listener], int]:
    """Listeners on ``host:port`` (TLS-wrapped if ``tls``) and the port they got."""
    plain = await trio.open_tcp_listeners(port, host=host)
    got: int = plain[0].socket.getsockname()[1]
    if tls is None:
        return list(plain), got
    return [trio.SSLListener(x, tls, https_compatible=True) for x in plain], got


def _cull(events: list[MarketEvent] | Any) -> list[MarketEvent]:
    """Keep only the newest event per cull key within one batch (SBE bestBidAsk)."""
    last: dict[str, int] = {}
    for i, ev in enumerate(events):
        if ev.cull_key is not None:
            last[ev.cull_key] = i
    if not last:
        return list(events)
    return [ev for i, ev in enumerate(events) if ev.cull_key is None or last[ev.cull_key] == i]


def _replace(fault: Fault, **kw: Any) -> Fault:
    return replace(fault, **kw)
