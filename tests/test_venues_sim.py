"""Bybit V5 (all four categories) and Binance SBE recorded from the simulator, checked
against its ledger as for Binance JSON."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import trio

from recorder import ConfigError, Recorder, RecorderConfig, VenueJob
from recorder.archive._inspect import group_summary, summarize, verify
from recorder.net._ws import HandshakeRejected, connect
from recorder.venues import _adapters
from replay.sim import Fault, SimConfig, Simulator, VenueConfig
from tests.simrec import record_sim, streams_of

BYBIT = {
    "bybit-spot": [
        "orderbook.1.BTCUSDT",
        "orderbook.50.ETHUSDT",
        "publicTrade.BTCUSDT",
        "tickers.BTCUSDT",
        "kline.1.BTCUSDT",
    ],
    "bybit-linear": [
        "orderbook.50.BTCUSDT",
        "publicTrade.BTCUSDT",
        "tickers.BTCUSDT",
        "kline.1.BTCUSDT",
        "allLiquidation.BTCUSDT",
    ],
    "bybit-inverse": ["orderbook.50.BTCUSD", "publicTrade.BTCUSD", "tickers.BTCUSD"],
    "bybit-option": [
        "orderbook.25.BTC-27MAR26-70000-C",
        "publicTrade.BTC",
        "tickers.BTC-27MAR26-70000-C",
    ],
}
SBE = ["btcusdt@trade", "btcusdt@bestBidAsk", "btcusdt@depth", "btcusdt@depth20", "ethusdt@trade"]
KEY = "sim-ed25519-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def sbe_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKTAPE_TEST_SBE_KEY", KEY)


@pytest.mark.parametrize("venue", sorted(BYBIT))
async def test_bybit_category_everything_sent_is_archived_once(tmp_path: Path, venue: str) -> None:
    r = await record_sim(tmp_path, {venue: BYBIT[venue]}, duration=1.8)
    assert len(r.sent()) > 50
    r.check_exactly_once()
    channels = {m.channel for m in r.data()}
    assert {"orderbook", "publicTrade", "tickers"} <= channels
    assert not r.sessions("refused")
    for m in r.data():
        assert m.fields and m.event_ns is not None


async def test_bybit_pings_keep_an_idle_connection_alive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The simulator closes public connections idle for 1.5 s; our op pings every 0.5 s
    # (compressed from 20 s) keep the connection open through a 2 s stall of market data.
    cfg = {"bybit-linear": VenueConfig(idle_timeout=1.5)}
    orig = _adapters.BybitAdapter.__post_init__

    def fast_ping(self: _adapters.BybitAdapter) -> None:
        orig(self)
        self.limits = replace(self.limits, client_ping_interval_s=0.5, heartbeat_s=0.5)

    monkeypatch.setattr(_adapters.BybitAdapter, "__post_init__", fast_ping)

    async def act(sim: Simulator, rec: Recorder) -> None:
        await trio.sleep(0.2)
        sim.inject(Fault("stall", venue="bybit-linear", duration=2.0))

    r = await record_sim(
        tmp_path,
        {"bybit-linear": ["publicTrade.BTCUSDT"]},
        duration=2.5,
        venue_config=cfg,
        action=act,
    )
    pongs = [m for m in r.messages if m.channel == "control" and b'"pong"' in m.payload]
    assert len(pongs) >= 3
    assert not r.sessions("gap")


async def test_bybit_too_many_args_on_spot_is_never_sent(tmp_path: Path) -> None:
    # 25 spot topics go out in requests of at most 10 args; none is refused.
    topics = [f"kline.{i}.BTCUSDT" for i in ("1", "3", "5", "15", "30", "60", "120", "240")]
    topics += [f"publicTrade.{s}" for s in ("BTCUSDT", "ETHUSDT")]
    topics += [f"orderbook.{d}.{s}" for d in (1, 50, 200) for s in ("BTCUSDT", "ETHUSDT")]
    topics += [f"tickers.{s}" for s in ("BTCUSDT", "ETHUSDT")]
    topics += [f"kline.{i}.ETHUSDT" for i in ("1", "3", "5", "15", "30", "60", "120")]
    assert len(topics) == 25
    r = await record_sim(tmp_path, {"bybit-spot": topics}, duration=1.2)
    assert not r.sessions("refused")
    acks = [m for m in r.messages if m.channel == "control" and b'"subscribe"' in m.payload]
    assert len(acks) == 3
    subscribed = {s for e in r.sessions("subscribed") for s in e["streams"]}  # type: ignore[attr-defined]
    assert subscribed == set(topics)


async def test_bybit_unknown_topic_is_reported_and_the_rest_recorded(tmp_path: Path) -> None:
    # A topic the simulator does not know (valid name, unknown symbol) is refused by name;
    # the other topics of the same request are subscribed again without it.
    r = await record_sim(
        tmp_path,
        {"bybit-linear": ["publicTrade.BTCUSDT", "publicTrade.NOPEUSDT", "tickers.BTCUSDT"]},
        duration=1.5,
    )
    refused = {s for e in r.sessions("refused") for s in e["streams"]}  # type: ignore[attr-defined]
    assert "publicTrade.NOPEUSDT" in refused
    assert {"publicTrade.BTCUSDT", "tickers.BTCUSDT"} <= {m.stream for m in r.data()}
    r.check_exactly_once()


async def test_bybit_book_reset_is_recorded_as_sent(tmp_path: Path) -> None:
    async def act(sim: Simulator, rec: Recorder) -> None:
        await trio.sleep(0.6)
        sim.inject(Fault("book_reset", venue="bybit-linear", symbol="BTCUSDT"))

    r = await record_sim(
        tmp_path, {"bybit-linear": ["orderbook.50.BTCUSDT"]}, duration=1.5, action=act
    )
    r.check_exactly_once()
    resets = [m for m in r.data() if m.fields.get("update_id") == 1]
    assert resets and resets[0].fields["msg_type"] == "snapshot"


async def test_sbe_everything_sent_is_archived_once_byte_exact(tmp_path: Path) -> None:
    r = await record_sim(tmp_path, {"binance-sbe": SBE}, duration=1.8)
    assert len(r.sent()) > 100
    r.check_exactly_once()
    channels = {m.channel for m in r.data()}
    assert channels == {"trade", "bestBidAsk", "depth", "depth20"}
    trade = next(m for m in r.data() if m.channel == "trade")
    assert trade.stream in {"btcusdt@trade", "ethusdt@trade"}
    assert trade.fields["trades"][0]["price"] > 0
    assert trade.event_ns is not None and trade.event_ns % 1000 == 0  # µs precision
    # The API key is in no archived byte.
    for m in r.messages:
        assert KEY.encode() not in m.payload


async def test_sbe_handshake_refused_with_an_unknown_key(tmp_path: Path) -> None:
    cfg = {"binance-sbe": VenueConfig(sbe_api_keys=frozenset({"some-other-key"}))}
    r = await record_sim(tmp_path, {"binance-sbe": SBE[:1]}, duration=1.0, venue_config=cfg)
    reasons = [str(e["reason"]) for e in r.sessions("disconnected")]
    assert reasons and all("handshake rejected" in x for x in reasons)
    assert not r.data()
    for m in r.messages:
        assert KEY.encode() not in m.payload
    assert all(KEY not in x for x in reasons)


def test_sbe_without_a_key_is_a_config_error_before_connecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TICKTAPE_TEST_SBE_KEY")
    cfg = RecorderConfig(
        root=str(tmp_path),
        jobs=(VenueJob("binance-sbe", tuple(SBE), api_key_env="TICKTAPE_TEST_SBE_KEY"),),
    )
    with pytest.raises(ConfigError, match="TICKTAPE_TEST_SBE_KEY"):
        Recorder(cfg)


async def test_sbe_sim_refuses_a_handshake_without_the_header() -> None:
    async with trio.open_nursery() as nursery:
        sim = Simulator(SimConfig(venues=("binance-sbe",)))
        urls = await nursery.start(sim.run)
        with pytest.raises(HandshakeRejected) as info:
            await connect(urls.ws("binance-sbe") + "/ws/btcusdt@trade")
        assert info.value.status == 400
        assert b"No X-MBX-APIKEY header" in info.value.body
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("venue", sorted(BYBIT))
async def test_bybit_category_survives_a_forced_close_and_records_the_gap(
    tmp_path: Path, venue: str
) -> None:
    async def act(sim: Simulator, rec: Recorder) -> None:
        await trio.sleep(0.6)
        # A close frame (not a TCP reset, which discards bytes the ledger already counted).
        sim.inject(Fault("close", venue=venue, code=1011, reason="test"))

    r = await record_sim(tmp_path, {venue: BYBIT[venue]}, duration=2.0, action=act)
    r.check_exactly_once()
    conn_gaps = [e for e in r.sessions("gap") if sorted(streams_of(e)) == sorted(BYBIT[venue])]
    assert len(conn_gaps) == 1
    assert len({m.conn for m in r.data()}) == 2
    # The new connection starts every book with a snapshot again.
    books = [m for m in r.data() if m.channel == "orderbook" and m.conn != r.data()[0].conn]
    assert books and books[0].fields["msg_type"] == "snapshot"
    assert verify(str(r.root)).ok


async def test_sbe_archive_verifies_and_lists(tmp_path: Path) -> None:
    r = await record_sim(tmp_path, {"binance-sbe": SBE}, duration=1.2)
    rep = verify(str(r.root))
    assert rep.ok and rep.rows > 50 and not rep.duplicates
    groups = {g["channel"] for g in group_summary(summarize(str(r.root)))}
    assert {"trade", "bestBidAsk", "depth", "depth20", "session"} <= groups
