"""The recorder against the local exchange simulator: what was sent is what was archived.

Each test records the simulator for a couple of seconds (real time, loopback) and compares the
archive with the simulator's ledger of every market-data message it sent: each must be in the
archive exactly once, byte-exact, under the right stream -- across the faults injected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from recorder import Recorder
from recorder.archive._inspect import verify
from replay.sim import Fault, Simulator, VenueConfig
from tests.simrec import FAST, record_sim, rolling

SPOT = [
    "btcusdt@trade",
    "ethusdt@trade",
    "btcusdt@aggTrade",
    "btcusdt@depth@100ms",
    "ethusdt@depth",
    "btcusdt@bookTicker",
    "btcusdt@kline_1m",
    "btcusdt@depth5@100ms",
    "btcusdt@ticker",
    "!miniTicker@arr",
]


async def test_binance_spot_everything_sent_is_archived_once_byte_exact(tmp_path: Path) -> None:
    r = await record_sim(tmp_path, {"binance-spot": SPOT}, duration=2.5)
    assert len(r.sent()) > 300
    r.check_exactly_once()
    streams = {m.stream for m in r.data()}
    assert {"btcusdt@trade", "btcusdt@depth@100ms", "btcusdt@bookTicker"} <= streams
    for m in r.data()[:200]:
        assert m.fields  # decodes
        assert m.recv_ns > 0 and m.symbol in ("BTCUSDT", "ETHUSDT", "ALL")
    assert r.sessions("subscribed") and not r.sessions("refused")
    assert r.recorder.writer.statistics().raw_rows <= 1  # the control reply


async def test_binance_usdm_routes_are_respected(tmp_path: Path) -> None:
    streams = [
        "btcusdt@aggTrade",
        "btcusdt@depth@100ms",
        "btcusdt@bookTicker",
        "btcusdt@markPrice@1s",
    ]
    r = await record_sim(tmp_path, {"binance-usdm": streams}, duration=2.5)
    r.check_exactly_once()
    got = {m.stream for m in r.data()}
    # /public (book) and /market (trades, mark price) streams both arrive: each was
    # subscribed on its own route's connection.
    assert {"btcusdt@depth@100ms", "btcusdt@aggTrade"} <= got
    urls = {str(e["url"]) for e in r.sessions("connected")}
    assert any("/public/stream" in u for u in urls) and any("/market/stream" in u for u in urls)


async def test_forced_close_reconnects_and_records_the_gap(tmp_path: Path) -> None:
    async def act(sim: Simulator, rec: Recorder) -> None:
        await trio.sleep(0.8)
        sim.inject(Fault("close", venue="binance-spot", code=1011, reason="test close"))

    r = await record_sim(tmp_path, {"binance-spot": SPOT[:4]}, duration=2.5, action=act)
    r.check_exactly_once()
    gaps = r.sessions("gap")
    # The connection's gap; and if the book moved meanwhile, the book keeper's own gap for
    # the diff-depth stream, which it repairs with a new snapshot (that symbol only).
    (g,) = [e for e in gaps if "1011" in str(e["reason"])]
    book_gaps = [e for e in gaps if e is not g]
    assert all(e["streams"] == ["btcusdt@depth@100ms"] for e in book_gaps)
    assert len(r.sessions("resync")) == len(book_gaps)
    assert int(g["gap_end_ns"]) > int(g["gap_start_ns"])  # type: ignore[call-overload]
    assert set(g["streams"]) == set(SPOT[:4])  # type: ignore[call-overload]
    assert r.sessions("disconnected") and r.sessions("reconnected")
    assert len({m.conn for m in r.data()}) == 2


async def test_stall_is_detected_by_the_watchdog(tmp_path: Path) -> None:
    async def act(sim: Simulator, rec: Recorder) -> None:
        await trio.sleep(0.5)
        sim.inject(Fault("stall", venue="binance-spot", duration=30))

    timing = replace(FAST, stall_after=0.8)
    r = await record_sim(
        tmp_path,
        {"binance-spot": ["btcusdt@trade", "btcusdt@depth@100ms"]},
        duration=3.0,
        action=act,
        timing=timing,
    )
    reasons = [str(e["reason"]) for e in r.sessions("disconnected")]
    assert any("stalled" in x for x in reasons)
    assert r.sessions("gap") and r.sessions("reconnected")
    r.check_exactly_once()


async def test_planned_rollover_is_make_before_break_without_gap(tmp_path: Path) -> None:
    timing = replace(FAST, rollover=rolling(2.0))
    cfg = {"binance-spot": VenueConfig(max_connection_age=2.5)}
    r = await record_sim(
        tmp_path, {"binance-spot": SPOT[:4]}, duration=4.0, timing=timing, venue_config=cfg
    )
    assert r.sessions("rollover")
    assert not r.sessions("gap")
    assert r.sim.statistics().max_age_closes == 0  # we always left before the server's limit
    r.check_exactly_once()
    assert len({m.conn for m in r.data()}) >= 2


async def test_server_shutdown_triggers_rollover(tmp_path: Path) -> None:
    async def act(sim: Simulator, rec: Recorder) -> None:
        await trio.sleep(0.7)
        sim.inject(Fault("server_shutdown", venue="binance-spot", duration=1.2))

    r = await record_sim(tmp_path, {"binance-spot": SPOT[:4]}, duration=3.0, action=act)
    roll = r.sessions("rollover")
    assert roll and roll[0]["reason"] == "serverShutdown"
    assert not r.sessions("gap")
    r.check_exactly_once()


async def test_truncated_frames_and_unknown_fields_lose_nothing(tmp_path: Path) -> None:
    async def act(sim: Simulator, rec: Recorder) -> None:
        await trio.sleep(0.5)
        sim.inject(Fault("truncate", venue="binance-spot", count=3))
        await trio.sleep(0.3)
        sim.inject(Fault("extra_fields", venue="binance-spot", count=5))

    r = await record_sim(tmp_path, {"binance-spot": SPOT[:4]}, duration=2.0, action=act)
    unparsed = [m for m in r.messages if m.channel == "unparsed"]
    assert len(unparsed) == 3 and all(m.fields["error"] for m in unparsed)
    extra = [m for m in r.data() if b"zzUnknown" in m.payload]
    assert len(extra) == 5 and all(m.fields for m in extra)
    assert r.recorder.writer.statistics().raw_rows >= 5
    # Unparsed frames and unknown fields are kept byte for byte, exactly once.
    r.check_exactly_once()


async def test_dropped_message_is_visible_as_a_sequence_break(tmp_path: Path) -> None:
    async def act(sim: Simulator, rec: Recorder) -> None:
        await trio.sleep(0.8)
        sim.inject(Fault("drop", venue="binance-spot", stream="btcusdt@depth@100ms", count=1))

    r = await record_sim(
        tmp_path,
        {"binance-spot": ["btcusdt@depth@100ms", "btcusdt@trade"]},
        duration=2.0,
        action=act,
    )
    r.check_exactly_once()
    rep = verify(str(r.root))
    assert rep.ok
    assert any("btcusdt@depth@100ms" in b for b in rep.sequence_breaks)
    # The book keeper saw the break too: a gap for that stream only, then a new REST snapshot.
    gaps = [e for e in r.sessions("gap") if e.get("reason") != "test"]
    assert gaps and all(e["streams"] == ["btcusdt@depth@100ms"] for e in gaps)
    assert r.sessions("resync")
    snaps = [m for m in r.messages if m.channel == "depth_snapshot"]
    assert len(snaps) >= 2 and all(m.stream == "btcusdt@depth@100ms" for m in snaps)
    assert snaps[0].fields["last_update_id"] > 0


async def test_refused_stream_is_reported_not_silent(tmp_path: Path) -> None:
    cfg = {"binance-spot": VenueConfig(max_streams=3)}
    r = await record_sim(tmp_path, {"binance-spot": SPOT[:5]}, duration=1.5, venue_config=cfg)
    refused = r.sessions("refused")
    assert refused
    names = {s for e in refused for s in e["streams"]}  # type: ignore[attr-defined]
    assert names and names <= set(SPOT[:5])
    stats = r.recorder.statistics()
    assert any(s.refused for s in stats.shards)
    r.check_exactly_once()


@pytest.mark.slow
async def test_three_thousand_streams_without_tripping_rate_limits(tmp_path: Path) -> None:
    kinds = ["trade", "aggTrade", "bookTicker", "depth", "kline_1m", "miniTicker", "ticker"]
    symbols = [f"s{i:04d}usdt" for i in range(440)]
    streams = [f"{s}@{k}" for s in symbols for k in kinds][:3080]
    r = await record_sim(
        tmp_path,
        {"binance-spot": streams},
        duration=6.0,
        rate=200.0,
        max_streams_per_connection=1024,
    )
    st = r.sim.statistics()
    assert st.rate_limit_closes == 0
    assert st.connections_total == 4
    subscribed = {s for e in r.sessions("subscribed") for s in e["streams"]}  # type: ignore[attr-defined]
    assert len(subscribed) == len(streams)


class _SpyWriter:
    """Stands in for the archive writer: notes when the recorder stages and flushes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self.buffered = 0

    def take_pending(self) -> dict[str, list[int]]:
        pending, self.buffered = ({"p": [1] * self.buffered} if self.buffered else {}), 0
        return pending

    def stage(self, pending: object) -> int:
        self.calls.append(("stage", trio.current_time()))
        return 1

    def flush(self, pending: object) -> int:
        self.calls.append(("flush", trio.current_time()))
        return 1

    def compact_closed_hours(self, now_ns: int, grace_ns: int) -> int:
        return 0


async def test_messages_are_encoded_every_second_and_written_every_flush_interval(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recorder import RecorderConfig, VenueJob

    async def inline(fn: Callable[..., object], *args: object) -> object:
        return fn(*args)  # a worker thread would let the mock clock jump meanwhile

    monkeypatch.setattr(trio.to_thread, "run_sync", inline)

    rec = Recorder(
        RecorderConfig(
            root=str(tmp_path),
            jobs=(VenueJob("binance-spot", ("btcusdt@trade",)),),
            flush_interval=5.0,
            encode_interval=1.0,
            writer_process=False,
        )
    )
    spy = _SpyWriter()
    rec.writer = spy  # type: ignore[assignment]

    async def produce() -> None:
        while True:
            spy.buffered += 1
            await trio.sleep(0.5)

    with trio.move_on_after(10.5):
        async with trio.open_nursery() as n:
            n.start_soon(produce)
            n.start_soon(rec._flush_loop, 0)
    assert spy.calls == [
        ("stage", 1.0),
        ("stage", 2.0),
        ("stage", 3.0),
        ("stage", 4.0),
        ("flush", 5.0),
        ("stage", 6.0),
        ("stage", 7.0),
        ("stage", 8.0),
        ("stage", 9.0),
        ("flush", 10.0),
    ]


async def test_a_flush_slower_than_the_interval_is_reported(
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from recorder import RecorderConfig, VenueJob

    rec = Recorder(
        RecorderConfig(
            root=str(tmp_path),
            jobs=(VenueJob("binance-spot", ("btcusdt@trade",)),),
            flush_interval=5.0,
            writer_process=False,
        )
    )
    slow = rec.writer.flush

    async def run(fn: Callable[..., object], *args: object) -> object:
        if fn == slow:
            await trio.sleep(7.5)  # a disk that cannot keep up
        return fn(*args)

    monkeypatch.setattr(trio.to_thread, "run_sync", run)
    with caplog.at_level("WARNING", logger="ticktape"):
        await rec._flush(0)
    assert "falling behind: a flush took 7.5 s (flush_interval 5.0 s)" in caplog.text
