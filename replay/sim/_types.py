"""Configuration, faults, events and statistics of the local exchange simulator.

Everything a caller needs to describe a simulation is a frozen dataclass here. Values the
protocol reference marks as unconfirmed ((U) in ``shared/protocols/README.md``) are fields with
a documented default so that tests can change them.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args, runtime_checkable

import trio

Venue = Literal[
    "binance-spot",
    "binance-usdm",
    "binance-coinm",
    "binance-sbe",
    "bybit-spot",
    "bybit-linear",
    "bybit-inverse",
    "bybit-option",
]

VENUES: tuple[Venue, ...] = get_args(Venue)

BINANCE_VENUES = frozenset({"binance-spot", "binance-usdm", "binance-coinm", "binance-sbe"})
BYBIT_VENUES = frozenset({"bybit-spot", "bybit-linear", "bybit-inverse", "bybit-option"})


def trio_clock(epoch_ns: int = 1_767_225_600_000_000_000) -> Callable[[], int]:
    """A payload clock that follows Trio's clock (for MockClock tests): epoch + current_time()."""

    def now() -> int:
        return epoch_ns + int(trio.current_time() * 1e9)

    return now


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One instrument of the synthetic market.

    Prices and quantities are integers in units of ``10**-price_decimals`` /
    ``10**-qty_decimals``; ``wire_price_decimals`` / ``wire_qty_decimals`` are the number of
    decimals printed on the wire (Binance spot prints 8 for everything).
    """

    symbol: str
    base: str
    quote: str
    mid: str
    price_decimals: int
    qty_decimals: int
    tick: int = 1
    lot: int = 1
    wire_price_decimals: int | None = None
    wire_qty_decimals: int | None = None
    contract_size: int | None = None  # COIN-M: USD per contract (quantities are contracts)

    @property
    def wire_pd(self) -> int:
        return self.price_decimals if self.wire_price_decimals is None else self.wire_price_decimals

    @property
    def wire_qd(self) -> int:
        return self.qty_decimals if self.wire_qty_decimals is None else self.wire_qty_decimals


def _spot(sym: str, base: str, mid: str, pd: int, qd: int) -> SymbolSpec:
    return SymbolSpec(sym, base, "USDT", mid, pd, qd, wire_price_decimals=8, wire_qty_decimals=8)


DEFAULT_SYMBOLS: dict[str, tuple[SymbolSpec, ...]] = {
    "binance-spot": (
        _spot("BTCUSDT", "BTC", "65000.00", 2, 5),
        _spot("ETHUSDT", "ETH", "3200.00", 2, 4),
        _spot("SOLUSDT", "SOL", "150.00", 2, 3),
    ),
    "binance-sbe": (
        SymbolSpec("BTCUSDT", "BTC", "USDT", "65000.00", 2, 5),
        SymbolSpec("ETHUSDT", "ETH", "USDT", "3200.00", 2, 4),
        SymbolSpec("SOLUSDT", "SOL", "USDT", "150.00", 2, 3),
    ),
    "binance-usdm": (
        SymbolSpec("BTCUSDT", "BTC", "USDT", "65000.0", 1, 3),
        SymbolSpec("ETHUSDT", "ETH", "USDT", "3200.00", 2, 3),
        SymbolSpec("SOLUSDT", "SOL", "USDT", "150.000", 3, 0),
    ),
    "binance-coinm": (
        SymbolSpec("BTCUSD_PERP", "BTC", "USD", "65000.0", 1, 0, contract_size=100),
        SymbolSpec("ETHUSD_PERP", "ETH", "USD", "3200.00", 2, 0, contract_size=10),
        SymbolSpec("BTCUSD_251226", "BTC", "USD", "66000.0", 1, 0, contract_size=100),
    ),
    "bybit-spot": (
        SymbolSpec("BTCUSDT", "BTC", "USDT", "65000.00", 2, 6),
        SymbolSpec("ETHUSDT", "ETH", "USDT", "3200.00", 2, 5),
        SymbolSpec("SOLUSDT", "SOL", "USDT", "150.00", 2, 3),
    ),
    "bybit-linear": (
        SymbolSpec("BTCUSDT", "BTC", "USDT", "65000.00", 2, 3, tick=10),
        SymbolSpec("ETHUSDT", "ETH", "USDT", "3200.00", 2, 2),
        SymbolSpec("SOLUSDT", "SOL", "USDT", "150.000", 3, 1, tick=10),
    ),
    "bybit-inverse": (
        SymbolSpec("BTCUSD", "BTC", "USD", "65000.00", 2, 0, tick=50),
        SymbolSpec("ETHUSD", "ETH", "USD", "3200.00", 2, 0, tick=5),
    ),
    "bybit-option": (
        SymbolSpec("BTC-27MAR26-70000-C", "BTC", "USDT", "2500", 0, 2, tick=5),
        SymbolSpec("BTC-27MAR26-70000-P", "BTC", "USDT", "3100", 0, 2, tick=5),
        SymbolSpec("ETH-27MAR26-3500-C", "ETH", "USDT", "180.0", 1, 1, tick=1),
    ),
}

FaultKind = Literal[
    "close",  # send a close frame with `code`/`reason` (abort=True: drop TCP, no close frame)
    "stall",  # send nothing (no data, no pings) for `duration` s; data produced meanwhile is lost
    "delay",  # hold outgoing frames for `duration` s, then send them all (nothing lost)
    "stop_pings",  # the server stops sending ping frames (for `duration` s, 0 = forever)
    "ignore_pongs",  # the server ignores the client's pongs, so it closes on the pong timeout
    "mute_pongs",  # the server stops answering client pings (WS ping frames and Bybit op ping)
    "drop",  # drop the next `count` market messages (of `stream` if given): a sequence gap
    "duplicate",  # send the next `count` market messages twice
    "truncate",  # send the next `count` market messages cut in half (invalid JSON / SBE)
    "truncate_frame",  # write half of the next message's frame, then drop the TCP connection
    "malformed",  # write one invalid WebSocket frame (reserved opcode) on the connection
    "extra_fields",  # add an unknown field to the next `count` JSON object messages
    "refuse_handshake",  # refuse the next `count` handshakes with `status` and `body`
    "server_shutdown",  # Binance: send serverShutdown; close after `duration` s if > 0
    "book_reset",  # Bybit: restart the order book of `symbol` (or all) with a u = 1 snapshot
    "book_snapshot",  # Bybit: send a fresh snapshot (next u) instead of the next delta
    "stale_snapshot",  # REST: the next `count` depth snapshots are `duration` s old
]


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault; applied at ``at`` seconds after the simulator started (schedule) or at once.

    ``venue`` / ``conn`` / ``stream`` / ``symbol`` narrow which connections or data it hits; None
    means every open connection of the venue(s) (``conn`` is the id in ``sim.connections()``).
    """

    kind: FaultKind
    venue: str | None = None
    at: float | None = None
    conn: int | None = None
    stream: str | None = None
    symbol: str | None = None
    count: int = 1
    duration: float = 0.0
    code: int = 1000
    reason: str = ""
    abort: bool = False
    status: int = 503
    body: str = "Service Unavailable"


@dataclass(frozen=True, slots=True)
class VenueConfig:
    """Per-venue protocol parameters; ``None`` means "use the venue's documented default"."""

    symbols: tuple[SymbolSpec, ...] | None = None
    rate: float | None = None  # market steps per second (None: SimConfig.rate)
    ws_port: int = 0
    rest_port: int = 0
    max_streams: int | None = None
    msg_rate_limit: int | None = None  # client messages per second (None: venue default)
    rate_limit_close: tuple[int, str] = (1008, "Too many requests")
    conn_attempt_limit: int | None = None  # per conn_attempt_window (None: venue default)
    conn_attempt_window: float = 300.0
    conn_limit_status: int = 429  # (U)
    conn_limit_body: str = "Too many connection attempts"  # (U)
    ping_interval: float | None = None  # None: venue default (Bybit: no server pings)
    pong_timeout: float | None = None
    pong_timeout_close: tuple[int, str] | None = (1008, "Pong timeout")  # None: drop TCP (U)
    unsolicited_pong_resets: bool = False  # USDⓈ-M docs disagree (U); Spot: they do not
    max_send_buffer: int = 64 << 20  # bytes queued for a slow reader before the TCP is dropped
    max_connection_age: float | None = None  # None: 24 h on Binance, unlimited on Bybit
    max_age_close: tuple[int, str] = (1000, "Connection lifetime exceeded")  # (U)
    idle_timeout: float | None = None  # Bybit public idle disconnect (U; default off)
    too_many_subscriptions: tuple[int, str] = (4, "Too many subscriptions")  # (U)
    invalid_json_close: tuple[int, str] = (1008, "Invalid JSON")  # USDⓈ-M (U)
    max_concurrent: int | None = None  # open connections (None: Bybit 1000, Binance unlimited)
    bybit_args_chars: int = 21_000
    bybit_option_args: int = 2000
    bybit_args_chars_msg: str = "args length exceeds 21000"  # (U)
    bybit_option_args_msg: str = "args size exceeds 2000"  # (U)
    sbe_api_keys: frozenset[str] | None = None  # None: any key accepted; else only these
    sbe_bad_key: tuple[int, str] = (401, "Invalid API-key")  # (U)
    sbe_culling: bool = True  # bestBidAsk keeps only the newest per symbol and tick
    usdm_cm_fields: bool = False  # add connector-era `st`/`ps` fields
    # USDⓈ-M `<symbol>@trade` is undocumented; like aggTrade it is "regular market data", so it
    # is served on /market by default (U)
    usdm_trade_route: Literal["public", "market"] = "market"
    # USDⓈ-M documents `id` as an unsigned integer, but Binance's SDKs send UUID strings; the
    # real server's answer to string ids is (U): accepted (≤ 36 chars) unless this is True
    usdm_strict_ids: bool = False
    # COIN-M (dstream): whether the 2026 /public|/market route split applies is (U); off: every
    # stream is served on every path, on: routed exactly like USDⓈ-M
    coinm_route_split: bool = False
    # COIN-M markPrice: funding rate `r` / next funding `T` (delivery contracts: "" / 0) (U)
    coinm_funding_fields: bool = True
    # server-side TLS for this venue's WebSocket and REST ports (wss:// and https:// URLs);
    # None: SimConfig.ssl_context
    ssl_context: ssl.SSLContext | None = None
    rest_weight_limit: int | None = None  # per minute (None: 6000 spot / 2400 usdm)
    rest_ban_seconds: float = 120.0
    bybit_rest_limit: int = 600  # requests per bybit_rest_window
    bybit_rest_window: float = 5.0
    instruments_page_size: int = 500


@dataclass(frozen=True, slots=True)
class SimConfig:
    """The whole simulation: which venues, market parameters and faults."""

    venues: tuple[str, ...] = ("binance-spot",)
    host: str = "127.0.0.1"
    seed: int = 1
    rate: float = 200.0  # market steps per second per venue (each step: a trade or book change)
    tick: float = 0.01  # pump period in seconds (events are batched per tick)
    book_levels: int = 200  # price levels kept per side
    venue_config: dict[str, VenueConfig] = field(default_factory=dict)
    faults: tuple[Fault, ...] = ()
    ledger_path: str | None = None
    ledger_flush_interval: float = 1.0
    clock: Callable[[], int] | None = None  # wall clock in ns for payload timestamps
    sources: dict[str, MarketSource] = field(default_factory=dict)  # replace the synthetic market
    ssl_context: ssl.SSLContext | None = None  # server-side TLS for every venue (None: plain)

    def venue(self, name: str) -> VenueConfig:
        return self.venue_config.get(name, VenueConfig())


@dataclass(slots=True)
class MarketEvent:
    """One market-data message, unwrapped.

    ``stream`` is the subscription key (Binance stream name in lowercase, Bybit topic).
    ``payload`` is the exact wire text (ms timestamps) or SBE bytes (``binary``);
    ``payload_us`` the Binance spot ``timeUnit=MICROSECOND`` rendering if it differs.
    ``cull_key``: events with the same key in one tick may be culled to the newest (SBE BBO).
    """

    stream: str
    payload: bytes
    binary: bool = False
    payload_us: bytes | None = None
    cull_key: str | None = None


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    """A REST order-book snapshot (levels as wire strings, best first)."""

    last_update_id: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    time_ms: int
    seq: int = 0
    cts_ms: int = 0


@runtime_checkable
class MarketSource(Protocol):
    """A pull-based producer of market data for one venue.

    The server calls :meth:`advance` every tick (``SimConfig.tick``) with the payload clock
    (``SimConfig.clock``, ns) and the streams that currently have at least one listener that
    receives data; it returns the events due since the previous call, in send order. Events
    whose ``stream`` nobody listens to are ignored, so a source may skip rendering them.
    Binance payloads must be unwrapped (the server adds ``{"stream":…,"data":…}`` per
    connection); Binance stream names are validated against ``instruments()``.

    Optional extras the server uses when present: ``valid_topic(topic) -> bool`` (Bybit topic
    validation; without it every topic is accepted), ``resend_snapshot(symbol)`` (fault
    ``book_snapshot``) and ``async run(*, task_status)``, a task the server starts in its
    nursery before the first ``advance`` (the recorded-archive source reads ahead in it, so
    that ``advance`` never waits for a file). A recorded-archive source implements the same
    protocol.
    """

    @property
    def venue(self) -> str: ...

    def instruments(self) -> Sequence[SymbolSpec]: ...

    def advance(self, now_ns: int, active: Collection[str]) -> Sequence[MarketEvent]: ...

    def on_subscribe(self, stream: str, now_ns: int) -> Sequence[MarketEvent]:
        """Messages only the new subscriber gets first (Bybit snapshots); usually empty."""
        ...

    def depth_snapshot(self, symbol: str, limit: int, now_ns: int) -> DepthSnapshot | None: ...

    def reset_book(self, symbol: str | None) -> None:
        """Restart the book sequence (Bybit ``u = 1``); may be a no-op."""
        ...


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    conn: int
    venue: str
    path: str
    streams: tuple[str, ...]
    opened_at: float
    combined: bool


@dataclass(frozen=True, slots=True)
class Statistics:
    connections_open: int
    connections_total: int
    handshakes_refused: int
    messages_sent: int
    messages_dropped: int
    messages_duplicated: int
    control_messages_received: int
    closes_by_reason: dict[str, int]
    rate_limit_closes: int
    pong_timeout_closes: int
    max_age_closes: int
    rest_requests: int
    rest_rejected: int
    messages_by_venue: dict[str, int]
    connections_open_by_venue: dict[str, int]


@dataclass(frozen=True, slots=True)
class VenueUrls:
    venue: str
    ws_url: str
    rest_url: str


@dataclass(frozen=True, slots=True)
class SimUrls:
    venues: dict[str, VenueUrls]

    def ws(self, venue: str) -> str:
        return self.venues[venue].ws_url

    def rest(self, venue: str) -> str:
        return self.venues[venue].rest_url
