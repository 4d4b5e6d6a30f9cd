from __future__ import annotations

import math
import random

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.capture._policy import (
    Backoff,
    Dedup,
    Liveness,
    LivenessStatistics,
    Reconnects,
    RolloverSchedule,
    StallWatchdog,
    stream_kind,
)
from recorder.core._errors import ConfigError
from recorder.venues._adapters import (
    BINANCE_SPOT_HEARTBEAT_S,
    BINANCE_USDM_HEARTBEAT_S,
    BYBIT_HEARTBEAT_S,
)


class FixedRandom(random.Random):
    """rng.random() always returns ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


# --- Backoff -------------------------------------------------------------------------------


def test_backoff_raw_delays() -> None:
    b = Backoff()
    assert [b.raw_delay(a) for a in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert b.raw_delay(10_000) == 30  # no overflow, unlimited attempts
    with pytest.raises(ValueError):
        b.raw_delay(-1)


def test_backoff_jitter_bounds_exact() -> None:
    assert Backoff(rng=FixedRandom(0.0)).delay(3) == 4.0
    assert Backoff(rng=FixedRandom(0.5)).delay(3) == 4.0 * 0.9
    assert Backoff(rng=FixedRandom(0.5)).delay(50) == 30 * 0.9
    assert Backoff(jitter=0.0, rng=FixedRandom(0.99)).delay(2) == 2.0


def test_backoff_is_reproducible_with_seeded_rng() -> None:
    a = Backoff(rng=random.Random(42))
    b = Backoff(rng=random.Random(42))
    da = [a.delay(i) for i in range(10)]
    assert da == [b.delay(i) for i in range(10)]
    for i, d in enumerate(da):
        raw = Backoff().raw_delay(i)
        assert 0.8 * raw < d <= raw


def test_backoff_factor_one_and_bad_config() -> None:
    assert Backoff(factor=1).raw_delay(100) == 0.5
    for kwargs in (
        {"base": 0.0},
        {"base": 40.0},
        {"factor": 0.5},
        {"jitter": 1.0},
        {"healthy_after": -1.0},
        {"cap": math.inf},
    ):
        with pytest.raises(ConfigError):
            Backoff(**kwargs)  # type: ignore[arg-type]


def test_reconnects_grow_then_reset_after_healthy_connection() -> None:
    r = Reconnects(Backoff(jitter=0.0, healthy_after=60.0))
    assert [r.failed(t) for t in (0.0, 1.0, 2.0, 3.0)] == [0.5, 1.0, 2.0, 4.0]
    r.connected(10.0)
    assert r.failed(69.9) == 8.0  # up 59.9 s: not healthy, keep growing
    r.connected(100.0)
    assert r.failed(160.0) == 0.5  # up 60 s: healthy, start over
    assert r.failed(161.0) == 1.0
    stats = r.statistics()
    assert (stats.attempt, stats.failures, stats.connects, stats.last_delay_s) == (2, 7, 2, 1.0)


# --- StallWatchdog -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("btcusdt@depth@100ms", "depth@100ms"),
        ("btcusdt@depth20@100ms", "depth@100ms"),
        ("btcusdt@depth", "depth"),
        ("btcusdt@depth5", "depth"),
        ("btcusdt@depth@500ms", "depth"),
        ("btcusdt@rpiDepth@500ms", "depth"),
        ("btcusdt@bookTicker", "bookTicker"),
        ("btcusdt@bestBidAsk", "bookTicker"),
        ("!bookTicker", "bookTicker"),
        ("btcusdt@ticker", "ticker"),
        ("btcusdt@ticker_1h", "ticker"),
        ("!miniTicker@arr", "ticker"),
        ("btcusdt@avgPrice", "ticker"),
        ("btcusdt@markPrice@1s", "markPrice"),
        ("!markPrice@arr", "markPrice"),
        ("btcusdt@compositeIndex", "index"),
        ("!assetIndex@arr", "index"),
        ("tradingSession", "index"),
        ("btcusdt@kline_1m", "kline"),
        ("btcusdt_perpetual@continuousKline_1m", "kline"),
        ("btcusdt@trade", "trade"),
        ("btcusdt@aggTrade", "trade"),
        ("btcusdt@forceOrder", "liquidation"),
        ("!forceOrder@arr", "liquidation"),
        ("!contractInfo", "event"),
        ("btcusdt@somethingNew", "unknown"),
        ("orderbook.50.BTCUSDT", "orderbook"),
        ("publicTrade.BTCUSDT", "trade"),
        ("tickers.BTCUSDT", "ticker"),
        ("kline.5.BTCUSDT", "kline"),
        ("allLiquidation.ROSEUSDT", "liquidation"),
        ("insurance.USDT", "unknown"),
    ],
)
def test_stream_kind(name: str, kind: str) -> None:
    assert stream_kind(name) == kind


def test_stall_after_examples() -> None:
    w = StallWatchdog()
    usdm = BINANCE_USDM_HEARTBEAT_S
    assert w.stall_after(["depth@100ms", "trade"], usdm) == 10.0
    assert w.stall_after(["kline"], usdm) == 30.0
    assert w.stall_after(["trade"], usdm) == 90.0
    assert w.stall_after(["trade"], BINANCE_SPOT_HEARTBEAT_S) == 60.0  # 3 missed server pings
    assert w.stall_after(["trade"], BYBIT_HEARTBEAT_S) == 60.0  # 3 missed pongs
    assert w.stall_after(["liquidation"], usdm) == 540.0
    assert w.stall_after(["liquidation"]) == 600.0  # ceiling
    assert w.stall_after([]) == 600.0
    assert w.stall_after(["unknown"]) == 90.0
    assert w.stall_after_streams(["btcusdt@depth@100ms", "btcusdt@aggTrade"], usdm) == 10.0
    assert w.stall_after_streams(["publicTrade.BTCUSDT"], BYBIT_HEARTBEAT_S) == 60.0


def test_stall_after_custom_table() -> None:
    w = StallWatchdog(silence={"trade": 300.0}, default=45.0, ceiling=1000.0)
    assert w.stall_after(["trade"]) == 300.0
    assert w.stall_after(["depth"]) == 45.0


def test_liveness_exact() -> None:
    live = Liveness(stall_after=10.0, now=100.0)
    assert live.deadline == 110.0
    assert not live.stalled(109.9)
    live.seen(104.0)  # a ping frame counts too
    assert live.deadline == 114.0
    assert not live.stalled(110.0)
    assert live.stalled(114.0)
    live.seen(115.0)
    assert (live.frames, live.max_silence_s) == (2, 11.0)
    assert live.statistics() == LivenessStatistics(
        frames=2, last_seen=115.0, deadline=125.0, max_silence_s=11.0
    )
    with pytest.raises(ConfigError):
        Liveness(0.0, 0.0)


async def test_liveness_drives_a_trio_deadline(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    live = Liveness(stall_after=10.0, now=start)
    send, recv = trio.open_memory_channel[None](0)

    async def feed() -> None:
        for at in (3.0, 8.0):
            await trio.sleep_until(start + at)
            await send.send(None)

    stalled_at = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed)
        while stalled_at is None:
            with trio.move_on_at(live.deadline):
                await recv.receive()
                live.seen(trio.current_time())
                continue
            stalled_at = trio.current_time() - start
        nursery.cancel_scope.cancel()
    assert stalled_at == 18.0  # last frame at 8 s, stalled 10 s later
    assert live.frames == 2
    assert live.max_silence_s == 5.0


# --- RolloverSchedule ----------------------------------------------------------------------


def test_rollover_even_spread_exact() -> None:
    s = RolloverSchedule()  # window [22 h, 23 h 50 min], span 6600 s
    assert s.span == 6600.0
    times = [s.rollover_at(i, 0.0, shard_count=12) for i in range(12)]
    assert times == [79_200.0 + 550.0 * i for i in range(12)]
    assert times[-1] <= 86_400.0 - 600.0


def test_rollover_without_count_uses_min_spacing() -> None:
    s = RolloverSchedule(min_spacing_s=120.0)
    assert [s.rollover_at(i, 0.0) for i in range(3)] == [79_200.0, 79_320.0, 79_440.0]
    # phases wrap after span / min_spacing = 55 shards
    assert s.rollover_at(55, 0.0) == 79_200.0


def test_rollover_is_phase_locked_whatever_the_connect_time() -> None:
    s = RolloverSchedule()
    # connected at 1000 s: window opens at 80_200; shard 0's phase is 0 mod 6600 -> 85_800
    assert s.rollover_at(0, 1000.0, 12) == 85_800.0
    # shard 1's phase is 550: 79_750 is before the window, so 79_750 + 6600
    assert s.rollover_at(1, 1000.0, 12) == 86_350.0
    assert s.rollover_at(2, 1000.0, 12) == 80_300.0
    # the next cycle, from the new connection (up 30 s after the rollover), keeps the phase
    t = s.rollover_at(1, 86_380.0, 12)
    assert t == 165_550.0 + 6600.0
    assert 86_380.0 + 79_200.0 <= t <= 86_380.0 + 85_800.0


def test_rollover_overlap_and_validation() -> None:
    s = RolloverSchedule(overlap_s=45.0)
    assert s.close_old_at(1000.0) == 1045.0
    with pytest.raises(ConfigError):
        RolloverSchedule(latest_s=7200.0)
    with pytest.raises(ConfigError):
        RolloverSchedule(overlap_s=601.0)
    with pytest.raises(ConfigError):
        RolloverSchedule(min_spacing_s=0.0)
    with pytest.raises(ConfigError):
        RolloverSchedule(earliest_s=90_000.0)
    with pytest.raises(ValueError):
        s.phase(-1)
    with pytest.raises(ValueError):
        s.phase(0, 0)


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(1, 40),
    connects=st.lists(st.floats(0.0, 200_000.0, allow_nan=False), min_size=40, max_size=40),
)
def test_property_rollovers_never_coincide(count: int, connects: list[float]) -> None:
    s = RolloverSchedule()
    times = [s.rollover_at(i, connects[i], count) for i in range(count)]
    for i, t in enumerate(times):
        lo = connects[i] + s.max_age_s - s.earliest_s
        assert lo <= t <= connects[i] + s.max_age_s - s.latest_s
    # any two shards: their rollover times differ by at least the spacing modulo the span
    spacing = max(s.min_spacing_s, s.span / count)
    for i in range(count):
        for j in range(i + 1, count):
            d = (times[i] - times[j]) % s.span
            assert min(d, s.span - d) >= spacing - 1e-6


# --- Dedup ---------------------------------------------------------------------------------


def test_dedup_drops_cross_connection_copies() -> None:
    d = Dedup()
    assert d.admit("old", "btcusdt@trade", b'{"t":1}')
    assert d.admit("old", "btcusdt@trade", b'{"t":2}')
    assert not d.admit("new", "btcusdt@trade", b'{"t":1}')  # old had it
    assert d.admit("new", "btcusdt@trade", b'{"t":3}')  # new first
    assert not d.admit("old", "btcusdt@trade", b'{"t":3}')
    assert not d.admit("new", "btcusdt@trade", b'{"t":2}')
    # same payload on another stream is another message
    assert d.admit("new", "ethusdt@trade", b'{"t":1}')
    stats = d.statistics()
    assert (stats.kept, stats.dropped, stats.evicted, stats.streams) == (4, 3, 0, 2)
    assert stats.tracked == 4


def test_dedup_keeps_repeats_from_one_connection() -> None:
    # an unchanged partial book pushed twice by the old connection, once by the new
    d = Dedup()
    book = b'{"lastUpdateId":7,"bids":[],"asks":[]}'
    assert d.admit("old", "btcusdt@depth5", book)
    assert d.admit("old", "btcusdt@depth5", book)
    assert not d.admit("new", "btcusdt@depth5", book)
    assert not d.admit("new", "btcusdt@depth5", book)
    assert d.admit("new", "btcusdt@depth5", book)  # a third occurrence: new information


def test_dedup_by_sequence_id() -> None:
    d = Dedup()
    assert d.admit(1, "BTCUSDT", b"old framing", seq=100)
    assert not d.admit(2, "BTCUSDT", b"new framing", seq=100)
    assert d.admit(2, "BTCUSDT", b"new framing", seq=101)


def test_dedup_memory_is_bounded() -> None:
    d = Dedup(max_per_stream=3)
    for i in range(5):
        assert d.admit("old", "s", str(i).encode())
    stats = d.statistics()
    assert (stats.tracked, stats.evicted) == (3, 2)
    # "0" and "1" were forgotten: a late copy is (wrongly but boundedly) kept
    assert d.admit("new", "s", b"0")
    assert not d.admit("new", "s", b"4")
    d.clear("s")
    assert d.statistics().streams == 0
    d.admit("old", "a", b"x")
    d.admit("old", "b", b"x")
    d.clear()
    assert d.statistics().tracked == 0
    with pytest.raises(ConfigError):
        Dedup(0)


def test_dedup_forget_source() -> None:
    d = Dedup()
    assert d.admit("old", "s", b"a")
    assert d.admit("new", "s", b"b")
    assert not d.admit("new", "s", b"a")  # the old connection had it
    d.forget_source("old")
    # "a" is still remembered for "new" (its copy was counted); "b" untouched
    assert d.statistics().tracked == 2
    assert not d.admit("newer", "s", b"b")
    d.forget_source("new")
    d.forget_source("newer")
    assert d.statistics().tracked == 0
    assert d.admit("newest", "s", b"a")


def test_adapter_kind_aliases() -> None:
    w = StallWatchdog()
    assert w.stall_after(["depth_fast", "trade"]) == 10.0
    assert w.stall_after(["book"]) == 15.0
