"""Runtime state shared by the server, the venue handlers and REST: connections and venues.

Nothing here knows the :class:`~replay.sim._server.Simulator`; a venue's handler, source,
counters, ledger and payload clock are handed to :class:`VenueRuntime` when it is built, so the
handlers and the REST endpoints only ever see the venue they serve.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import trio

from replay.sim._ledger import Ledger
from replay.sim._types import MarketEvent, MarketSource, VenueConfig
from replay.sim._ws import OP_BINARY, OP_TEXT, WsConn, frame


class Handler(Protocol):
    """Venue protocol: handshake checks, control messages, and what the server does on its own."""

    server_pings: bool
    ping_interval: float
    pong_timeout: float
    max_age: float | None
    msg_rate: int
    max_streams: int
    conn_attempts: int  # per VenueConfig.conn_attempt_window; 0 = unlimited

    def handshake(self, conn: Conn, target: str, headers: dict[str, str]) -> tuple[int, str] | None:
        """Parse the upgrade request; (status, body) to refuse it."""
        ...

    def on_text(self, conn: Conn, text: str) -> None: ...

    def on_binary(self, conn: Conn, data: bytes) -> None: ...

    def on_op_ping_muted(self) -> None: ...

    def shutdown_message(self, conn: Conn, now_ns: int) -> bytes | None: ...


@dataclass(slots=True)
class Counters:
    connections_total: int = 0
    handshakes_refused: int = 0
    messages_sent: int = 0
    messages_dropped: int = 0
    messages_duplicated: int = 0
    control_received: int = 0
    closes: dict[str, int] = field(default_factory=dict)
    rate_limit_closes: int = 0
    pong_timeout_closes: int = 0
    max_age_closes: int = 0
    rest_requests: int = 0
    rest_rejected: int = 0


class Conn:
    """One accepted WebSocket connection."""

    def __init__(self, venue: VenueRuntime, cid: int, ws: WsConn, path: str) -> None:
        self.venue = venue
        self.id = cid
        self.ws = ws
        self.path = path
        self.opened_at = trio.current_time()
        self.combined = False
        self.micro = False
        self.route: str | None = None  # usdm: public/market/private/None (legacy)
        self.subs: dict[str, bool] = {}  # stream -> delivers data
        self.conn_id = ""  # bybit
        self.arg_chars = 0
        self.stalled_until = 0.0
        self.pings_off_until = 0.0
        self.ignore_pongs_until = 0.0
        self.mute_pongs_until = 0.0
        self.msg_times: deque[float] = deque()
        self.last_client_msg = self.opened_at
        self.outstanding: dict[bytes, float] = {}
        self.ping_seq = 0
        self.data_faults: list[list[object]] = []  # [kind, stream|None, remaining]
        self.scope = trio.CancelScope()
        self.server_closed = False

    # -- state --------------------------------------------------------------------------------

    def now(self) -> float:
        return trio.current_time()

    def stalled(self) -> bool:
        return self.stalled_until > trio.current_time()

    def subscribe(self, stream: str, delivers: bool) -> None:
        if stream in self.subs:
            return
        self.subs[stream] = delivers
        if delivers:
            self.venue.index.setdefault(stream, set()).add(self)

    def unsubscribe(self, stream: str) -> None:
        if self.subs.pop(stream, None):
            subs = self.venue.index.get(stream)
            if subs is not None:
                subs.discard(self)
                if not subs:
                    del self.venue.index[stream]

    def drop_all(self) -> None:
        for s in list(self.subs):
            self.unsubscribe(s)

    # -- output -------------------------------------------------------------------------------

    def send_control(self, payload: bytes) -> None:
        """A control reply (text frame, not in the ledger)."""
        self.ws.send_text(payload)

    def deliver(self, ev: MarketEvent) -> None:
        """Send one market event, applying this connection's faults, wrapper and time unit."""
        if self.ws.close_sent:
            return
        rt = self.venue
        if self.stalled_until and self.stalled():
            rt.counters.messages_dropped += 1
            return
        payload = ev.payload_us if (self.micro and ev.payload_us is not None) else ev.payload
        copies = 1
        if self.data_faults:
            for f in self.data_faults:
                kind, stream, remaining = f
                if stream is not None and stream != ev.stream:
                    continue
                assert isinstance(remaining, int)
                if remaining <= 0:
                    continue
                f[2] = remaining - 1
                if kind == "drop":
                    rt.counters.messages_dropped += 1
                    self.data_faults = [x for x in self.data_faults if x[2] != 0]
                    return
                if kind == "duplicate":
                    copies = 2
                    rt.counters.messages_duplicated += 1
                elif kind == "truncate":
                    payload = payload[: max(1, len(payload) // 2)]
                elif kind == "truncate_frame":  # half a frame on the wire, then TCP closed
                    whole = frame(OP_BINARY if ev.binary else OP_TEXT, payload)
                    self.ws.write_and_drop(whole[: max(2, len(whole) // 2)])
                    c = rt.counters
                    c.closes["fault truncated frame"] = c.closes.get("fault truncated frame", 0) + 1
                    self.server_closed = True
                    return
                elif kind == "extra_fields":
                    if not ev.binary and payload[:1] == b"{" and payload[-1:] == b"}":
                        payload = payload[:-1] + b',"simExtra":{"x":1},"zzUnknown":"sim"}'
                    else:
                        f[2] = remaining  # not applicable to this message
            self.data_faults = [x for x in self.data_faults if x[2] != 0]
        if ev.binary:
            wire = payload
        elif self.combined:
            wire = b'{"stream":"' + ev.stream.encode() + b'","data":' + payload + b"}"
        else:
            wire = payload
        ledger = rt.ledger
        if len(self.ws.out) > rt.cfg.max_send_buffer:
            rt.counters.messages_dropped += 1
            self.abort("slow consumer")
            return
        rt.sent += copies
        for _ in range(copies):
            if ev.binary:
                self.ws.send_binary(wire)
            else:
                self.ws.send_text(wire)
            rt.counters.messages_sent += 1
            if ledger is not None:
                ledger.record(rt.name, ev.stream, self.id, rt.clock(), wire, ev.binary)

    def close(self, code: int, reason: str, kind: str | None = None) -> None:
        if self.ws.close_sent:
            return
        self.server_closed = True
        key = kind or f"{code} {reason}".strip()
        c = self.venue.counters
        c.closes[key] = c.closes.get(key, 0) + 1
        self.ws.send_close(code, reason)

    def abort(self, kind: str = "abort") -> None:
        self.server_closed = True
        c = self.venue.counters
        c.closes[kind] = c.closes.get(kind, 0) + 1
        self.ws.close_sent = True
        self.scope.cancel()

    def count_incoming(self) -> bool:
        """Count a client message; False (and close 1008) when over the per-second limit."""
        now = trio.current_time()
        self.last_client_msg = now
        limit = self.venue.handler.msg_rate
        if limit <= 0:
            return True
        times = self.msg_times
        times.append(now)
        while times and times[0] <= now - 1.0:
            times.popleft()
        if len(times) > limit:
            code, reason = self.venue.cfg.rate_limit_close
            self.venue.counters.rate_limit_closes += 1
            self.close(code, reason, "rate limit")
            return False
        return True


class VenueRuntime:
    """Everything the simulator keeps for one venue."""

    def __init__(
        self,
        name: str,
        cfg: VenueConfig,
        source: MarketSource,
        handler: Handler,
        counters: Counters,
        ledger: Ledger | None,
        clock: Callable[[], int],
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.source = source
        self.handler = handler
        self.counters = counters
        self.ledger = ledger
        self.clock = clock
        self.conns: dict[int, Conn] = {}
        self.index: dict[str, set[Conn]] = {}
        self.attempts: deque[float] = deque()
        self.refusals: list[list[object]] = []  # [status, body, remaining]
        self.stale: list[float] = []  # pending stale REST snapshots (age in s)
        self.snap_history: deque[tuple[float, dict[str, object]]] = deque()
        self.rest_weight: dict[int, int] = {}
        self.rest_banned_until = 0.0
        self.rest_429_until = 0.0
        self.rest_times: deque[float] = deque()
        self.ws_url = ""
        self.rest_url = ""
        self.sent = 0


def wall_ns() -> int:
    return time.time_ns()
