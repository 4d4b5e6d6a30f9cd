"""The synthetic markets as pure MarketSources (no server): determinism and book invariants."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from decimal import Decimal

import httpx
import orjson
import pytest
from trio_websocket import open_websocket_url

from replay.sim import (
    DEFAULT_SYMBOLS,
    DepthSnapshot,
    MarketEvent,
    MarketSource,
    SimConfig,
    SymbolSpec,
)
from replay.sim._binance_market import BinanceMarket
from replay.sim._bybit_market import BybitMarket
from tests.test_sim_support import running

T0 = 1_767_225_600_000_000_000


def make(venue: str, seed: int = 7) -> MarketSource:
    if venue.startswith("binance"):
        return BinanceMarket(venue, DEFAULT_SYMBOLS[venue], seed=seed, rate=2000)
    return BybitMarket(venue, DEFAULT_SYMBOLS[venue], seed=seed, rate=2000)


@pytest.mark.parametrize("venue", ["binance-spot", "binance-usdm", "binance-sbe", "bybit-linear"])
def test_same_seed_same_market_whatever_is_listened_to(venue: str) -> None:
    """README simulator section: a deterministic (seeded) synthetic market; what clients listen
    to does not change the market itself (same snapshots at the same times)."""
    a, b = make(venue), make(venue)
    c = make(venue, seed=8)
    listen = {"btcusdt@trade", "btcusdt@depth", "publicTrade.BTCUSDT", "btcusdt@bookTicker"}
    for i in range(1, 200):
        now = T0 + i * 10_000_000
        a.advance(now, listen)
        b.advance(now, set())
        c.advance(now, set())
    now = T0 + 200 * 10_000_000
    sa, sb = a.depth_snapshot("BTCUSDT", 50, now), b.depth_snapshot("BTCUSDT", 50, now)
    sc = c.depth_snapshot("BTCUSDT", 50, now)
    assert sa is not None and sb is not None and sc is not None
    assert (sa.last_update_id, sa.bids, sa.asks) == (sb.last_update_id, sb.bids, sb.asks)
    assert (sa.bids, sa.asks) != (sc.bids, sc.asks)


def test_spot_diff_events_rebuild_the_rest_book() -> None:
    """binance-spot.md §8: snapshot + every later diff event == a later snapshot (pure source,
    no network), across both diff speeds."""
    m = make("binance-spot")
    m.advance(T0, set())
    snap = m.depth_snapshot("BTCUSDT", 5000, T0)
    assert snap is not None
    for name in ("btcusdt@depth", "btcusdt@depth@100ms"):
        book = {
            True: {Decimal(p): q for p, q in snap.bids},
            False: {Decimal(p): q for p, q in snap.asks},
        }
        mm = make("binance-spot")
        mm.advance(T0, set())
        last = snap.last_update_id
        now = T0
        for i in range(1, 301):
            now = T0 + i * 10_000_000
            for ev in mm.advance(now, {name}):
                d = orjson.loads(ev.payload)
                if d["u"] <= last:
                    continue
                assert d["U"] == last + 1
                for side, key in ((True, "b"), (False, "a")):
                    for p, q in d[key]:
                        if Decimal(q) == 0:
                            book[side].pop(Decimal(p), None)
                        else:
                            book[side][Decimal(p)] = q
                last = d["u"]
        later = mm.depth_snapshot("BTCUSDT", 5000, now)
        assert later is not None and later.last_update_id == last  # flushed at t0 + 3 s
        assert sorted(book[True].items(), reverse=True) == [(Decimal(p), q) for p, q in later.bids]
        assert sorted(book[False].items()) == [(Decimal(p), q) for p, q in later.asks]


class ListSource:
    """A minimal MarketSource: fixed payloads, sent once (as a recorded archive would)."""

    def __init__(self, events: list[MarketEvent]) -> None:
        self.events = events

    @property
    def venue(self) -> str:
        return "binance-spot"

    def instruments(self) -> Sequence[SymbolSpec]:
        return DEFAULT_SYMBOLS["binance-spot"]

    def advance(self, now_ns: int, active: Collection[str]) -> Sequence[MarketEvent]:
        if not active:
            return ()
        out, self.events = self.events, []
        return out

    def on_subscribe(self, stream: str, now_ns: int) -> Sequence[MarketEvent]:
        return ()

    def depth_snapshot(self, symbol: str, limit: int, now_ns: int) -> DepthSnapshot | None:
        return DepthSnapshot(42, [("1.00000000", "2.00000000")], [], now_ns // 1_000_000)

    def reset_book(self, symbol: str | None) -> None:
        return None


async def test_custom_source_is_served_verbatim() -> None:
    """README simulator section: the server can be fed by another MarketSource (e.g. recorded
    payloads); Binance payloads are wrapped per connection mode, REST uses the source's book."""
    payload = b'{"e":"trade","E":1,"s":"BTCUSDT","t":7,"p":"1.0","q":"2.0","T":1,"m":true,"M":true}'
    src = ListSource([MarketEvent("btcusdt@trade", payload)])
    assert isinstance(src, MarketSource)
    cfg = SimConfig(venues=("binance-spot",), sources={"binance-spot": src})
    async with running(cfg) as (_sim, urls):
        url = f"{urls.ws('binance-spot')}/stream?streams=btcusdt@trade"
        async with open_websocket_url(url) as ws:
            msg = await ws.get_message()
        assert msg == '{"stream":"btcusdt@trade","data":' + payload.decode() + "}"
        async with httpx.AsyncClient() as http:
            r = await http.get(f"{urls.rest('binance-spot')}/api/v3/depth?symbol=BTCUSDT")
        assert r.json() == {"lastUpdateId": 42, "bids": [["1.00000000", "2.00000000"]], "asks": []}
