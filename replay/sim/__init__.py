"""A faithful local exchange simulator (Binance spot/USDⓈ-M/COIN-M/SBE, Bybit V5 public streams).

Usage::

    sim = Simulator(SimConfig(venues=("binance-spot", "bybit-linear")))
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(sim.run)  # SimUrls
        urls.ws("binance-spot")    # ws://127.0.0.1:<port>  (+ /ws/<s>, /stream?streams=a/b ...)
        urls.rest("binance-spot")  # http://127.0.0.1:<port> (+ /api/v3/depth ...)
        sim.inject(Fault("drop", count=3), conn=sim.connections()[0].conn)
        print(sim.statistics())
        nursery.cancel_scope.cancel()

Each venue gets its own WebSocket port and REST port (``VenueConfig.ws_port/rest_port``, 0 =
ephemeral) on ``SimConfig.host`` (127.0.0.1). Venue paths are the real ones: Binance spot/SBE
``/ws``, ``/ws/<a>/<b>``, ``/stream?streams=a/b[&timeUnit=MICROSECOND]``; USDⓈ-M
``[/public|/market|/private]/ws…`` and ``…/stream?streams=``; COIN-M (``binance-coinm``) the
same with contract symbols (``btcusd_perp@aggTrade``) and REST under ``/dapi/v1``; Bybit
``/v5/public/<category>``. ``SimConfig.ssl_context`` / ``VenueConfig.ssl_context`` serve
``wss://`` and ``https://`` instead.

Market data come from one :class:`MarketSource` per venue: a deterministic synthetic market
(seeded, ``SimConfig.rate`` steps/s) unless ``SimConfig(sources={venue: source})`` supplies
another one (e.g. a recorded archive). Binance payloads are produced unwrapped; the server adds
the combined wrapper per connection. Timers (pings, pong timeouts, lifetimes, rate windows,
faults) use ``trio.current_time()`` so ``MockClock`` tests work; payload timestamps use
``SimConfig.clock`` (wall clock; :func:`trio_clock` makes them follow Trio's clock).

Module layout: ``_types`` (config, faults, events, protocol, statistics), ``_book`` (random
order book), ``_binance_market`` / ``_bybit_market`` (synthetic sources; Binance's split into
``_binance_streams`` (stream names), ``_binance_state`` (per-symbol state), ``_binance_timed``
(timed streams) and ``_binance_coinm`` (COIN-M specifics)), ``_binance`` /
``_bybit`` (WebSocket protocol handlers), ``_ws`` (wsproto connection), ``_runtime``
(connection and venue state, delivery with faults), ``_rest`` (h11 REST server) with
``_binance_rest`` / ``_bybit_rest`` (endpoints), ``_venues`` (the venue table: market, handler
and REST of each venue), ``_server`` (:class:`Simulator`), ``_ledger`` (NDJSON ledger),
``_sbe_enc`` (SBE encoders from ``recorder.venues._sbe``).
"""

from replay.sim._server import Simulator
from replay.sim._types import (
    DEFAULT_SYMBOLS,
    VENUES,
    ConnectionInfo,
    DepthSnapshot,
    Fault,
    FaultKind,
    MarketEvent,
    MarketSource,
    SimConfig,
    SimUrls,
    Statistics,
    SymbolSpec,
    Venue,
    VenueConfig,
    VenueUrls,
    trio_clock,
)

__all__ = [
    "DEFAULT_SYMBOLS",
    "VENUES",
    "ConnectionInfo",
    "DepthSnapshot",
    "Fault",
    "FaultKind",
    "MarketEvent",
    "MarketSource",
    "SimConfig",
    "SimUrls",
    "Simulator",
    "Statistics",
    "SymbolSpec",
    "Venue",
    "VenueConfig",
    "VenueUrls",
    "trio_clock",
]
