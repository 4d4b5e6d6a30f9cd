"""The venue table: for each venue name, its synthetic market, WebSocket protocol and REST API.

Adding a venue is one :class:`VenueKind` entry here plus its market / handler modules; the
server (``_server``) only ever goes through this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from replay.sim._binance import BinanceHandler
from replay.sim._binance_market import BinanceMarket
from replay.sim._binance_rest import binance_rest
from replay.sim._bybit import BybitHandler
from replay.sim._bybit_market import BybitMarket
from replay.sim._bybit_rest import bybit_rest
from replay.sim._ledger import Ledger
from replay.sim._rest import RestApp
from replay.sim._runtime import Counters, Handler, VenueRuntime
from replay.sim._types import DEFAULT_SYMBOLS, MarketSource, SimConfig, VenueConfig

MarketFactory = Callable[[str, SimConfig, VenueConfig], MarketSource]
HandlerFactory = Callable[[str, VenueConfig, MarketSource, Callable[[], int]], Handler]


@dataclass(frozen=True, slots=True)
class VenueKind:
    """How one venue is served. ``max_concurrent``: open-connection cap when the venue's
    ``VenueConfig.max_concurrent`` is None (None: unlimited)."""

    market: MarketFactory
    handler: HandlerFactory
    rest: RestApp
    max_concurrent: int | None = None


def _rate(cfg: SimConfig, vcfg: VenueConfig) -> float:
    return vcfg.rate if vcfg.rate is not None else cfg.rate


def _binance_market(name: str, cfg: SimConfig, vcfg: VenueConfig) -> MarketSource:
    specs = vcfg.symbols if vcfg.symbols is not None else DEFAULT_SYMBOLS[name]
    return BinanceMarket(
        name, specs, seed=cfg.seed, rate=_rate(cfg, vcfg), levels=cfg.book_levels,
        cm_fields=vcfg.usdm_cm_fields, funding_fields=vcfg.coinm_funding_fields,
    )  # fmt: skip


def _bybit_market(name: str, cfg: SimConfig, vcfg: VenueConfig) -> MarketSource:
    specs = vcfg.symbols if vcfg.symbols is not None else DEFAULT_SYMBOLS[name]
    return BybitMarket(name, specs, seed=cfg.seed, rate=_rate(cfg, vcfg), levels=cfg.book_levels)


def _binance_handler(
    name: str, vcfg: VenueConfig, source: MarketSource, clock: Callable[[], int]
) -> Handler:
    return BinanceHandler(name, vcfg, source)


BINANCE = VenueKind(_binance_market, _binance_handler, binance_rest)
BYBIT = VenueKind(_bybit_market, BybitHandler, bybit_rest, max_concurrent=1000)

VENUE_TABLE: dict[str, VenueKind] = {
    "binance-spot": BINANCE,
    "binance-usdm": BINANCE,
    "binance-coinm": BINANCE,
    "binance-sbe": BINANCE,
    "bybit-spot": BYBIT,
    "bybit-linear": BYBIT,
    "bybit-inverse": BYBIT,
    "bybit-option": BYBIT,
}


def make_runtime(
    name: str,
    cfg: SimConfig,
    counters: Counters,
    ledger: Ledger | None,
    clock: Callable[[], int],
) -> VenueRuntime:
    """A venue's runtime: ``SimConfig.sources[name]`` if given, else the synthetic market."""
    kind = VENUE_TABLE[name]
    vcfg = cfg.venue(name)
    source = cfg.sources[name] if name in cfg.sources else kind.market(name, cfg, vcfg)
    handler = kind.handler(name, vcfg, source, clock)
    return VenueRuntime(name, vcfg, source, handler, counters, ledger, clock)
