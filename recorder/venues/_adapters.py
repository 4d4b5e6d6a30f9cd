"""Venue adapters: the runtime's uniform view of each venue's sans-IO protocol module.

Each adapter is a small table of limits plus glue around ``_binance``, ``_bybit`` or ``_sbe``;
all protocol knowledge stays in those modules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson

from recorder.core._errors import ConfigError, LocalProtocolError, RemoteProtocolError
from recorder.core._frame import Frame
from recorder.core._message import ALL_SYMBOLS, CONTROL_CHANNEL, UNPARSED_CHANNEL
from recorder.venues import binance as bn
from recorder.venues import bybit as bb
from recorder.venues import sbe
from recorder.venues._contract import (
    Ack,
    Control,
    OtherControl,
    Pong,
    Refusal,
    Request,
    Routed,
    RuntimeLimits,
    Shutdown,
    VenueAdapter,
    VenueJob,
    VenueLimits,
    subscribe_batches,
)

#: Server pings (Binance) or our op-ping pongs (Bybit): a frame at least this often.
BINANCE_SPOT_HEARTBEAT_S = 20.0
BINANCE_USDM_HEARTBEAT_S = 180.0
BYBIT_HEARTBEAT_S = 20.0

BINANCE_SPOT_LIMITS = VenueLimits(max_streams_per_connection=1024, max_per_request=200)
BINANCE_USDM_LIMITS = VenueLimits(max_streams_per_connection=1024, max_per_request=200)
BYBIT_SPOT_LIMITS = VenueLimits(
    max_streams_per_connection=None, max_chars_per_connection=21_000, max_per_request=10
)
#: Linear and inverse. No documented per-request cap; 100 stays well below the sizes that were
#: reported to close connections.
BYBIT_LINEAR_LIMITS = VenueLimits(
    max_streams_per_connection=None, max_chars_per_connection=21_000, max_per_request=100
)
BYBIT_OPTION_LIMITS = VenueLimits(
    max_streams_per_connection=None,
    max_chars_per_connection=21_000,
    max_args_per_connection=2000,
    max_per_request=100,
)


_CONTROL = Routed("", CONTROL_CHANNEL, ALL_SYMBOLS)


def _batched(
    streams: Sequence[str],
    first_id: int,
    per_request: int,
    encode: Callable[[list[str], int], bytes],
) -> list[Request]:
    """Requests of at most ``per_request`` streams each, with consecutive ids."""
    batches = subscribe_batches(list(streams), per_request)
    return [
        Request(str(first_id + i), encode(b, first_id + i).decode(), tuple(b))
        for i, b in enumerate(batches)
    ]


def _halves(
    request: Request, first_id: int, make: Callable[[Sequence[str], int], list[Request]]
) -> list[Request]:
    """After a refused batch, the same streams in two narrower requests (bisection finds the
    stream the server refuses without giving up on the others)."""
    half = len(request.streams) // 2
    out: list[Request] = []
    for part in (request.streams[:half], request.streams[half:]):
        if part:
            out.extend(make(part, first_id + len(out)))
    return out


# Expected message rates (msgs/s) by channel, only used to spread heavy streams evenly.
_BINANCE_WEIGHT = {
    "depth": 4.0,
    "depthPartial": 4.0,
    "bookTicker": 20.0,
    "trade": 5.0,
    "aggTrade": 3.0,
    "kline": 0.5,
    "continuousKline": 4.0,
}
_BINANCE_KIND = {
    "depth": "depth",
    "depthPartial": "depth",
    "rpiDepth": "depth",
    "bookTicker": "book",
    "trade": "trade",
    "aggTrade": "trade",
    "blockTrade": "event",
    "kline": "kline",
    "continuousKline": "kline",
    "forceOrder": "event",
    "forceOrder_arr": "event",
    "contractInfo": "event",
}


@dataclass
class BinanceAdapter:
    """binance-spot and binance-usdm (JSON, combined streams, SUBSCRIBE after connecting)."""

    venue: str
    limits: RuntimeLimits = field(init=False)
    plan_limits: VenueLimits = field(init=False)
    default_ws_url: str = field(init=False)
    default_rest_url: str = field(init=False)
    _routes: dict[str, Routed] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        spot = self.venue == "binance-spot"
        if self.venue not in ("binance-spot", "binance-usdm"):
            raise ConfigError(f"not a Binance JSON venue: {self.venue}")
        self.limits = RuntimeLimits(
            outgoing_msgs_per_s=5 if spot else 10,
            outgoing_headroom=1,
            heartbeat_s=BINANCE_SPOT_HEARTBEAT_S if spot else BINANCE_USDM_HEARTBEAT_S,
        )
        self.plan_limits = BINANCE_SPOT_LIMITS if spot else BINANCE_USDM_LIMITS
        self.default_ws_url = bn.SPOT_WS_BASE if spot else bn.USDM_WS_BASE
        self.default_rest_url = bn.SPOT_REST_BASE if spot else bn.USDM_REST_BASE

    def validate_stream(self, stream: str) -> Routed:
        try:
            info = bn.parse_stream_name(self.venue, stream)
        except LocalProtocolError as exc:
            raise ConfigError(str(exc)) from None
        return Routed(stream, info.channel, info.symbol)

    def _info(self, stream: str) -> bn.StreamInfo:
        return bn.parse_stream_name(self.venue, stream)

    def route_of(self, stream: str) -> str:
        return str(self._info(stream).route or "")

    def weight_of(self, stream: str) -> float:
        ch = self._info(stream).channel
        w = _BINANCE_WEIGHT.get(ch, 1.0)
        if ch == "depth" and "@100ms" in stream:
            w = 10.0
        return w

    def kind_of(self, stream: str) -> str:
        ch = self._info(stream).channel
        if ch == "depth" and ("@100ms" in stream or "@0ms" in stream):
            return "depth_fast"
        return _BINANCE_KIND.get(ch, "ticker")

    def connection_url(self, ws_base: str, route: str) -> str:
        base = ws_base.rstrip("/")
        return f"{base}/{route}/stream" if route else f"{base}/stream"

    def headers(self) -> Sequence[tuple[str, str]]:
        return ()

    def subscribe_requests(self, streams: Sequence[str], first_id: int) -> list[Request]:
        return _batched(
            streams,
            first_id,
            self.plan_limits.max_per_request,
            lambda b, i: bn.subscribe(self.venue, b, i),
        )

    def unsubscribe_requests(self, streams: Sequence[str], first_id: int) -> list[Request]:
        return _batched(
            streams,
            first_id,
            self.plan_limits.max_per_request,
            lambda b, i: bn.unsubscribe(self.venue, b, i),
        )

    def retry_refused(self, request: Request, first_id: int) -> list[Request]:
        return _halves(request, first_id, self.subscribe_requests)

    def client_ping(self, req_id: int) -> str | None:
        return None

    def classify(self, frame: Frame) -> Routed:
        payload = frame.payload
        stream = bn.stream_of(payload) if frame.text else None
        if stream is None:
            if frame.text:
                try:
                    if bn.parse_control(payload) is not None:
                        return _CONTROL
                except RemoteProtocolError:
                    pass
            return Routed("", UNPARSED_CHANNEL, ALL_SYMBOLS)
        routed = self._routes.get(stream)
        if routed is None:
            if stream == "!serverShutdown":
                return Routed(stream, CONTROL_CHANNEL, ALL_SYMBOLS)
            info = bn.classify(self.venue, stream)
            if info is None:
                routed = Routed(stream, UNPARSED_CHANNEL, ALL_SYMBOLS)
            else:
                routed = Routed(stream, info.channel, info.symbol)
            if len(self._routes) < 100_000:
                self._routes[stream] = routed
        return routed

    def parse_control(self, frame: Frame) -> Control:
        return _binance_control(frame)


_SBE_STREAM = re.compile(r"([a-z0-9]{1,40})@(trade|bestBidAsk|depth20|depth)\Z")
_SBE_WEIGHT = {"trade": 5.0, "bestBidAsk": 20.0, "depth20": 20.0, "depth": 50.0}
_SBE_KIND = {"trade": "trade", "bestBidAsk": "book", "depth20": "depth_fast", "depth": "depth_fast"}


@dataclass
class SbeAdapter:
    """binance-sbe: binary SBE events and JSON control frames on one connection; the
    handshake carries the Ed25519 API key (never logged, never archived)."""

    api_key: sbe.ApiKey
    venue: str = sbe.VENUE
    limits: RuntimeLimits = field(
        default_factory=lambda: RuntimeLimits(
            outgoing_msgs_per_s=5, heartbeat_s=BINANCE_SPOT_HEARTBEAT_S
        )
    )
    plan_limits: VenueLimits = field(default_factory=lambda: BINANCE_SPOT_LIMITS)
    default_ws_url: str = "wss://stream-sbe.binance.com:9443"
    default_rest_url: str = bn.SPOT_REST_BASE

    def validate_stream(self, stream: str) -> Routed:
        m = _SBE_STREAM.match(stream)
        if m is None:
            raise ConfigError(
                f"binance-sbe: invalid stream {stream!r}: expected <symbol>@trade, @bestBidAsk, "
                "@depth or @depth20 with a lowercase symbol"
            )
        return Routed(stream, m.group(2), m.group(1).upper())

    def route_of(self, stream: str) -> str:
        return ""

    def weight_of(self, stream: str) -> float:
        return _SBE_WEIGHT[self.validate_stream(stream).channel]

    def kind_of(self, stream: str) -> str:
        return _SBE_KIND[self.validate_stream(stream).channel]

    def connection_url(self, ws_base: str, route: str) -> str:
        return ws_base.rstrip("/") + "/stream"

    def headers(self) -> Sequence[tuple[str, str]]:
        return (self.api_key.header(),)

    def _requests(self, method: str, streams: Sequence[str], first_id: int) -> list[Request]:
        # Binance's JSON control protocol; SBE stream names are checked by validate_stream.
        return _batched(
            streams,
            first_id,
            self.plan_limits.max_per_request,
            lambda b, i: orjson.dumps({"method": method, "params": b, "id": i}),
        )

    def subscribe_requests(self, streams: Sequence[str], first_id: int) -> list[Request]:
        return self._requests("SUBSCRIBE", streams, first_id)

    def unsubscribe_requests(self, streams: Sequence[str], first_id: int) -> list[Request]:
        return self._requests("UNSUBSCRIBE", streams, first_id)

    def retry_refused(self, request: Request, first_id: int) -> list[Request]:
        return _halves(request, first_id, self.subscribe_requests)

    def client_ping(self, req_id: int) -> str | None:
        return None

    def classify(self, frame: Frame) -> Routed:
        if frame.text:
            return _CONTROL  # JSON control replies and serverShutdown
        try:
            tid, sym = sbe.frame_info(frame.payload)
        except RemoteProtocolError:
            return Routed("", UNPARSED_CHANNEL, ALL_SYMBOLS)
        return Routed(sbe.stream_name(tid, sym), sbe.channel_of(tid), sym)

    def parse_control(self, frame: Frame) -> Control:
        return _binance_control(frame)


def _binance_control(frame: Frame) -> Control:
    try:
        reply = bn.parse_control(frame.payload)
    except RemoteProtocolError as exc:
        return OtherControl(str(exc))
    if isinstance(reply, bn.CommandResult):
        return Ack(None if reply.id is None else str(reply.id))
    if isinstance(reply, bn.CommandError):
        return Refusal(
            None if reply.id is None else str(reply.id), f"error {reply.code}: {reply.msg}"
        )
    if isinstance(reply, bn.ServerShutdown):
        return Shutdown(reply.event_time)
    return OtherControl()


_BYBIT_PLAN = {
    "spot": BYBIT_SPOT_LIMITS,
    "linear": BYBIT_LINEAR_LIMITS,
    "inverse": BYBIT_LINEAR_LIMITS,
    "option": BYBIT_OPTION_LIMITS,
}
_BYBIT_WEIGHT = {"orderbook": 10.0, "publicTrade": 5.0, "tickers": 10.0, "kline": 0.5}
_BYBIT_KIND = {
    "orderbook": "book",
    "publicTrade": "trade",
    "tickers": "ticker",
    "kline": "kline",
    "allLiquidation": "event",
}


@dataclass
class BybitAdapter:
    """bybit-spot/linear/inverse/option: one endpoint per category, ``op`` requests, and our
    own ``{"op":"ping"}`` every 20 s (Bybit sends no ping frames)."""

    venue: str
    limits: RuntimeLimits = field(init=False)
    plan_limits: VenueLimits = field(init=False)
    default_ws_url: str = "wss://stream.bybit.com"
    default_rest_url: str = "https://api.bybit.com"

    def __post_init__(self) -> None:
        if self.venue not in bb.VENUES:
            raise ConfigError(f"not a Bybit venue: {self.venue}")
        self.category = bb.category_of(self.venue)
        self.limits = RuntimeLimits(
            outgoing_msgs_per_s=10,
            outgoing_headroom=1,
            connections_per_window=500,
            connection_window_s=300.0,
            max_connection_age_s=None,
            client_ping_interval_s=BYBIT_HEARTBEAT_S,
            heartbeat_s=BYBIT_HEARTBEAT_S,
        )
        self.plan_limits = _BYBIT_PLAN[self.category]

    def validate_stream(self, stream: str) -> Routed:
        try:
            info = bb.validate_topic(self.venue, stream)
        except LocalProtocolError as exc:
            raise ConfigError(str(exc)) from None
        return Routed(stream, info.channel, info.symbol)

    def route_of(self, stream: str) -> str:
        return ""

    def weight_of(self, stream: str) -> float:
        ch = self.validate_stream(stream).channel
        w = _BYBIT_WEIGHT.get(ch, 1.0)
        if ch == "orderbook" and stream.split(".")[1] in ("1", "50", "25"):
            w = 30.0
        return w

    def kind_of(self, stream: str) -> str:
        return _BYBIT_KIND.get(self.validate_stream(stream).channel, "ticker")

    def connection_url(self, ws_base: str, route: str) -> str:
        return f"{ws_base.rstrip('/')}/v5/public/{self.category}"

    def headers(self) -> Sequence[tuple[str, str]]:
        return ()

    def _requests(self, op: str, streams: Sequence[str], first_id: int) -> list[Request]:
        build = bb.subscribe_request if op == "subscribe" else bb.unsubscribe_request
        batches = bb.plan_requests(
            self.venue, streams, per_request=self.plan_limits.max_per_request
        )
        return [
            Request(str(first_id + i), build(b, str(first_id + i)).decode(), tuple(b))
            for i, b in enumerate(batches)
        ]

    def subscribe_requests(self, streams: Sequence[str], first_id: int) -> list[Request]:
        return self._requests("subscribe", streams, first_id) if streams else []

    def unsubscribe_requests(self, streams: Sequence[str], first_id: int) -> list[Request]:
        return self._requests("unsubscribe", streams, first_id) if streams else []

    def retry_refused(self, request: Request, first_id: int) -> list[Request]:
        return _halves(request, first_id, self.subscribe_requests)

    def client_ping(self, req_id: int) -> str | None:
        return bb.ping_request(str(req_id)).decode()

    def classify(self, frame: Frame) -> Routed:
        try:
            r = bb.route(self.venue, frame.payload)
        except RemoteProtocolError:  # includes UnsupportedMessage (legacy v2)
            return Routed(bb.topic_of(frame.payload) or "", UNPARSED_CHANNEL, ALL_SYMBOLS)
        if r.channel == CONTROL_CHANNEL or r.topic is None:
            return _CONTROL
        return Routed(r.topic, r.channel, r.symbol)

    def parse_control(self, frame: Frame) -> Control:
        try:
            reply = bb.parse_control(frame.payload)
        except RemoteProtocolError as exc:
            return OtherControl(str(exc))
        if reply is None:
            return OtherControl()
        if reply.op == "pong" or (reply.op == "ping" and reply.success):
            return Pong()
        if reply.op not in ("subscribe", "unsubscribe"):
            return OtherControl(reply.op)
        if reply.success:
            return Ack(reply.req_id, refused=reply.refused, reason=reply.message)
        return Refusal(reply.req_id, reply.message or "subscribe failed", reply.refused)


def make_adapter(job: VenueJob) -> VenueAdapter:
    """The adapter for a job's venue (raises ConfigError before anything connects)."""
    if job.venue in ("binance-spot", "binance-usdm"):
        return BinanceAdapter(job.venue)
    if job.venue == sbe.VENUE:
        if job.api_key_file:
            key = sbe.ApiKey.from_file(job.api_key_file)
        else:
            key = sbe.ApiKey.from_env(job.api_key_env or sbe.API_KEY_ENV)
        return SbeAdapter(key)
    if job.venue in bb.VENUES:
        return BybitAdapter(job.venue)
    raise ConfigError(
        f"unknown venue {job.venue!r}; known: binance-spot, binance-usdm, binance-sbe, "
        "bybit-spot, bybit-linear, bybit-inverse, bybit-option"
    )
