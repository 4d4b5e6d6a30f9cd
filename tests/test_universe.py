"""Symbol selections resolved through the exchange and refreshed without a restart."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
import trio

from recorder import Recorder, RecorderConfig, VenueJob
from recorder.capture import _supervisor
from recorder.capture._universe import select_symbols
from recorder.venues import Instrument, UniverseSelect
from replay import open_archive
from replay.sim import SimConfig, Simulator
from tests.simrec import FAST

LISTED = [
    Instrument("BTCUSDT", "TRADING", "BTC", "USDT"),
    Instrument("ETHUSDT", "TRADING", "ETH", "USDT"),
    Instrument("ETHBTC", "TRADING", "ETH", "BTC"),
    Instrument("LUNAUSDT", "BREAK", "LUNA", "USDT"),
    Instrument("SOLUSDT", "Trading", "SOL", "USDT"),
]


@pytest.mark.parametrize(
    ("sel", "expected"),
    [
        (UniverseSelect(quote="USDT"), ["BTCUSDT", "ETHUSDT", "SOLUSDT"]),
        (UniverseSelect(quote="usdt", status=None), ["BTCUSDT", "ETHUSDT", "LUNAUSDT", "SOLUSDT"]),
        (UniverseSelect(base="ETH"), ["ETHBTC", "ETHUSDT"]),
        (UniverseSelect(match="(BTC|SOL).*"), ["BTCUSDT", "SOLUSDT"]),
        (UniverseSelect(quote="USDT", max_symbols=2), ["BTCUSDT", "ETHUSDT"]),
    ],
)
def test_selection_is_a_pure_filter(sel: UniverseSelect, expected: list[str]) -> None:
    assert select_symbols(LISTED, sel) == expected


async def test_every_trading_usdt_symbol_is_recorded_from_exchange_info(tmp_path: Path) -> None:
    sim = Simulator(SimConfig(venues=("binance-spot",), rate=300.0))
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(sim.run)
        job = VenueJob(
            "binance-spot",
            (),
            ws_url=urls.ws("binance-spot"),
            rest_url=urls.rest("binance-spot"),
            select=UniverseSelect(quote="USDT"),
            channels=("trade",),
        )
        cfg = RecorderConfig(
            root=str(tmp_path), jobs=(job,), flush_interval=0.5, fsync=False, timing=FAST
        )
        with trio.move_on_after(1.5):
            await Recorder(cfg).run()
        nursery.cancel_scope.cancel()
    symbols = {m.symbol for m in open_archive(str(tmp_path)) if m.channel == "trade"}
    assert symbols == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}


async def test_listings_and_delistings_apply_without_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = [LISTED[0], LISTED[1]]  # BTCUSDT, ETHUSDT

    async def fake_fetch(venue: str, rest: object) -> list[Instrument]:
        return list(listed)

    monkeypatch.setattr(_supervisor, "fetch_instruments", fake_fetch)
    sim = Simulator(SimConfig(venues=("binance-spot",), rate=300.0))
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(sim.run)
        job = VenueJob(
            "binance-spot",
            (),
            ws_url=urls.ws("binance-spot"),
            select=UniverseSelect(quote="USDT"),
            channels=("trade",),
        )
        cfg = RecorderConfig(
            root=str(tmp_path), jobs=(job,), flush_interval=0.5, fsync=False, timing=FAST
        )
        rec = Recorder(cfg)
        async with trio.open_nursery() as rn:
            await rn.start(rec.run)
            await trio.sleep(0.8)
            listed[:] = [LISTED[1], LISTED[4]]  # BTCUSDT delisted, SOLUSDT listed
            switch_ns = time.time_ns()
            await rec.refresh("binance-spot")
            await trio.sleep(1.0)
            rn.cancel_scope.cancel()
        nursery.cancel_scope.cancel()
    msgs = list(open_archive(str(tmp_path)))
    trades = [m for m in msgs if m.channel == "trade"]
    sol = [m for m in trades if m.symbol == "SOLUSDT"]
    btc = [m for m in trades if m.symbol == "BTCUSDT"]
    assert sol and min(m.recv_ns for m in sol) > switch_ns
    assert btc and max(m.recv_ns for m in btc) < switch_ns + 500_000_000
    assert len({m.conn for m in trades}) == 1  # same connection: no restart
    events = [orjson.loads(m.payload) for m in msgs if m.channel == "session"]
    assert any(e["event"] == "subscribed" and e.get("streams") == ["solusdt@trade"] for e in events)
    assert any(
        e["event"] == "unsubscribed" and e.get("streams") == ["btcusdt@trade"] for e in events
    )
