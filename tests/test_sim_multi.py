"""Several venues in one simulator, and the statistics API (README simulator section)."""

from __future__ import annotations

import orjson
import trio
from trio_websocket import open_websocket_url

from replay.sim import VENUES, SimConfig
from tests.test_sim_support import running

FIRST_STREAM = {
    "binance-spot": "/ws/btcusdt@trade",
    "binance-usdm": "/public/ws/btcusdt@bookTicker",
    "binance-coinm": "/ws/btcusd_perp@bookTicker",
    "binance-sbe": "/ws/btcusdt@trade",
}
BYBIT_TOPIC = {
    "bybit-spot": "publicTrade.BTCUSDT",
    "bybit-linear": "publicTrade.BTCUSDT",
    "bybit-inverse": "publicTrade.BTCUSD",
    "bybit-option": "publicTrade.BTC",
}


async def test_all_venues_in_one_simulator_and_statistics() -> None:
    """README simulator section: every venue served at once (one port pair each); statistics
    count connections, messages per venue and closes by reason."""
    async with running(SimConfig(venues=VENUES, rate=400)) as (sim, urls):
        assert len({urls.ws(v) for v in VENUES}) == len(VENUES)
        for venue in VENUES:
            headers = [(b"X-MBX-APIKEY", b"k")] if venue == "binance-sbe" else None
            if venue in FIRST_STREAM:
                url = urls.ws(venue) + FIRST_STREAM[venue]
            else:
                url = f"{urls.ws(venue)}/v5/public/{venue.split('-')[1]}"
            async with open_websocket_url(url, extra_headers=headers) as ws:
                if venue in BYBIT_TOPIC:
                    sub = {"op": "subscribe", "args": [BYBIT_TOPIC[venue]]}
                    await ws.send_message(orjson.dumps(sub).decode())
                with trio.fail_after(10):
                    while True:
                        msg = await ws.get_message()
                        if isinstance(msg, bytes) or "topic" in msg or '"e"' in msg:
                            break
                assert sim.statistics().connections_open_by_venue[venue] == 1
        await trio.sleep(0.1)
        stats = sim.statistics()
    assert stats.connections_total == len(VENUES) and stats.connections_open == 0
    assert all(stats.messages_by_venue[v] > 0 for v in VENUES)
    assert stats.messages_sent == sum(stats.messages_by_venue.values())
    assert stats.closes_by_reason == {"client close": len(VENUES)}
