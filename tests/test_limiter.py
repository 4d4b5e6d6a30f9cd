from __future__ import annotations

# Trio tests run on pytest-trio's ``autojump_clock`` (MockClock(autojump_threshold=0)): time
# only advances when every task is blocked, so the asserted times are exact.
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.core._errors import ConfigError, LocalProtocolError
from recorder.net._limiter import (
    BINANCE_CONNECTS,
    BINANCE_SPOT_MESSAGES,
    BINANCE_USDM_MESSAGES,
    BYBIT_CONNECTS,
    Pacer,
    RateLimit,
    RollingWindow,
    TrioRateLimiter,
)

# --- RollingWindow (pure) -------------------------------------------------------------------


def test_window_allows_limit_then_waits_exactly_one_window() -> None:
    w = RollingWindow(4, 1.0)
    for _ in range(4):
        assert w.next_allowed(0.0) == 0.0
        w.record(0.0)
    assert w.next_allowed(0.0) == 1.0
    assert w.next_allowed(0.5) == 1.0
    assert w.next_allowed(1.0) == 1.0
    assert w.next_allowed(7.0) == 7.0


def test_window_is_half_open() -> None:
    # Events at 0.0 and 1.0 are never in the same [t, t + 1) window.
    w = RollingWindow(1, 1.0)
    w.record(0.0)
    assert w.next_allowed(0.999) == 1.0
    w.record(1.0)
    assert w.next_allowed(1.0) == 2.0


def test_window_rolls_not_per_calendar_second() -> None:
    w = RollingWindow(2, 1.0)
    w.record(0.9)
    w.record(0.95)
    # a fixed-second bucket would allow t=1.0; the rolling window does not
    assert w.next_allowed(1.0) == 1.9
    w.record(1.9)
    assert w.next_allowed(1.9) == 1.95


def test_window_capacity_reserves_slots() -> None:
    w = RollingWindow(3, 1.0)
    w.record(0.0, capacity=2)
    w.record(0.0, capacity=2)
    assert w.next_allowed(0.0, capacity=2) == 1.0
    assert w.next_allowed(0.0) == 0.0  # the reserved slot
    w.record(0.0)
    assert w.next_allowed(0.0) == 1.0
    with pytest.raises(ValueError):
        w.next_allowed(0.0, capacity=4)


def test_window_record_rejects_violations_and_time_travel() -> None:
    w = RollingWindow(1, 1.0)
    w.record(5.0)
    with pytest.raises(LocalProtocolError):
        w.record(5.5)
    with pytest.raises(ValueError):
        w.record(4.0)
    assert w.count(5.5) == 1
    assert w.count(6.0) == 0


@pytest.mark.parametrize(("limit", "window"), [(0, 1.0), (1, 0.0), (1, -1.0), (1, float("inf"))])
def test_window_rejects_bad_config(limit: int, window: float) -> None:
    with pytest.raises(ConfigError):
        RollingWindow(limit, window)


def _max_in_any_window(times: list[float], window: float) -> int:
    # Any half-open window [t, t+w) holding the most events can start at an event time.
    best = 0
    for i, start in enumerate(times):
        best = max(best, sum(1 for t in times[i:] if t < start + window))
    return best


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 6),
    window=st.sampled_from([0.5, 1.0, 3.0]),
    gaps=st.lists(st.floats(0.0, 2.0, allow_nan=False), min_size=1, max_size=40),
)
def test_property_no_window_exceeds_limit(limit: int, window: float, gaps: list[float]) -> None:
    """Requests at arbitrary times, each granted at next_allowed: never more than the limit."""
    w = RollingWindow(limit, window)
    t = 0.0
    granted: list[float] = []
    for gap in gaps:
        t += gap  # request time
        at = w.next_allowed(t)
        assert at >= t
        w.record(at)
        granted.append(at)
        t = at  # one requester: the next request comes after the previous grant
    assert granted == sorted(granted)
    assert _max_in_any_window(granted, window) <= limit


@settings(max_examples=200, deadline=None)
@given(
    reqs=st.lists(
        st.tuples(st.floats(0.0, 1.5, allow_nan=False), st.booleans()), min_size=1, max_size=40
    )
)
def test_property_pacer_urgent_and_ordinary_share_the_limit(
    reqs: list[tuple[float, bool]],
) -> None:
    lim = RateLimit(limit=5, window_s=1.0, headroom=1, urgent_reserve=1)
    p = Pacer([lim])
    t = 0.0
    all_times: list[float] = []
    ordinary: list[float] = []
    for gap, urgent in reqs:
        t = p.next_allowed(t + gap, urgent=urgent)
        p.record(t, urgent=urgent)
        all_times.append(t)
        if not urgent:
            ordinary.append(t)
    assert _max_in_any_window(all_times, 1.0) <= 4
    assert _max_in_any_window(ordinary, 1.0) <= 3


# --- RateLimit presets ---------------------------------------------------------------------


def test_presets_stay_inside_documented_limits() -> None:
    assert BINANCE_SPOT_MESSAGES.capacity == 4
    assert BINANCE_SPOT_MESSAGES.ordinary_capacity == 3
    assert BINANCE_USDM_MESSAGES.capacity == 8
    assert BINANCE_USDM_MESSAGES.ordinary_capacity == 7
    assert BINANCE_CONNECTS[0].capacity == 200
    assert BINANCE_CONNECTS[0].window_s == 300.0
    assert BYBIT_CONNECTS[0].capacity == 300


def test_shared_by_splits_capacity() -> None:
    share = BINANCE_CONNECTS[0].shared_by(3)
    assert share.capacity == 66
    assert share.window_s == 300.0
    spot = BINANCE_SPOT_MESSAGES.shared_by(2)
    assert (spot.capacity, spot.urgent_reserve) == (2, 1)
    spot4 = BINANCE_SPOT_MESSAGES.shared_by(4)
    assert (spot4.capacity, spot4.urgent_reserve) == (1, 0)
    assert BINANCE_SPOT_MESSAGES.shared_by(1) is BINANCE_SPOT_MESSAGES
    with pytest.raises(ConfigError):
        BINANCE_SPOT_MESSAGES.shared_by(5)
    with pytest.raises(ConfigError):
        BINANCE_SPOT_MESSAGES.shared_by(0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 5, "window_s": 1.0, "headroom": 5},
        {"limit": 5, "window_s": 1.0, "headroom": -1},
        {"limit": 2, "window_s": 1.0, "headroom": 1, "urgent_reserve": 1},
    ],
)
def test_rate_limit_rejects_bad_config(kwargs: dict[str, int | float]) -> None:
    with pytest.raises(ConfigError):
        RateLimit(**kwargs)  # type: ignore[arg-type]


def test_pacer_needs_every_window() -> None:
    p = Pacer(BINANCE_CONNECTS)
    for _ in range(5):
        p.record(0.0)
    assert p.next_allowed(0.0) == 1.0
    with pytest.raises(LocalProtocolError):
        p.record(0.5)
    with pytest.raises(ConfigError):
        Pacer([])


# --- TrioRateLimiter on MockClock -----------------------------------------------------------


async def test_twelve_acquires_at_four_per_second(autojump_clock: trio.testing.MockClock) -> None:
    limiter = TrioRateLimiter(RateLimit(limit=4, window_s=1.0))
    start = trio.current_time()
    times = []
    for _ in range(12):
        await limiter.acquire()
        times.append(trio.current_time() - start)
    assert times == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    stats = limiter.statistics()
    assert stats.acquired == 12
    assert stats.urgent_acquired == 0
    assert stats.waited_s == 2.0  # the 5th and the 9th acquire wait a full second
    assert stats.max_wait_s == 1.0
    assert stats.waiting == 0


async def test_concurrent_acquires_are_fifo(autojump_clock: trio.testing.MockClock) -> None:
    limiter = TrioRateLimiter(RateLimit(limit=2, window_s=1.0))
    start = trio.current_time()
    got: list[tuple[int, float]] = []

    async def one(i: int) -> None:
        await limiter.acquire()
        got.append((i, trio.current_time() - start))

    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(one, i)
            await trio.testing.wait_all_tasks_blocked()
    assert got == [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2), (5, 2)]
    stats = limiter.statistics()
    assert stats.waited_s == 0 + 0 + 1 + 1 + 2 + 2
    assert stats.max_wait_s == 2


async def test_headroom(autojump_clock: trio.testing.MockClock) -> None:
    limiter = TrioRateLimiter(RateLimit(limit=5, window_s=1.0, headroom=2))
    start = trio.current_time()
    times = []
    for _ in range(7):
        await limiter.acquire()
        times.append(trio.current_time() - start)
    assert times == [0, 0, 0, 1, 1, 1, 2]


async def test_pong_is_never_delayed_by_subscribe_burst(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = TrioRateLimiter(BINANCE_SPOT_MESSAGES)  # 4/s in total, 3/s for subscribes
    start = trio.current_time()
    subscribes: list[float] = []
    pongs: list[float] = []

    async def subscriber() -> None:
        for _ in range(9):
            await limiter.acquire()
            subscribes.append(trio.current_time() - start)

    async def ponger() -> None:
        for at in (0.5, 1.25, 2.75):
            await trio.sleep_until(start + at)
            await limiter.acquire(urgent=True)
            pongs.append(trio.current_time() - start)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(subscriber)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(ponger)
    # Every pong goes out the moment it is requested ...
    assert pongs == [0.5, 1.25, 2.75]
    # ... and still counts: the subscribes make room for it. By hand: an ordinary acquire needs
    # the 3rd most recent message to be >= 1 s old. The 6th subscribe (asked at 1.0) sees
    # 0.5, 1, 1 -> 1.5; by then the pong at 1.25 is in, so it sees 1, 1, 1.25 -> waits for 2.0.
    assert subscribes == [0, 0, 0, 1, 1, 2, 2, 2.25, 3]
    assert limiter.statistics().urgent_acquired == 3
    assert limiter.statistics().acquired == 12


async def test_urgent_jumps_the_queue(autojump_clock: trio.testing.MockClock) -> None:
    limiter = TrioRateLimiter(RateLimit(limit=3, window_s=1.0, urgent_reserve=1))
    start = trio.current_time()
    order: list[tuple[str, float]] = []

    async def one(name: str, urgent: bool) -> None:
        await limiter.acquire(urgent=urgent)
        order.append((name, trio.current_time() - start))

    async with trio.open_nursery() as nursery:
        for name in ("s1", "s2", "s3", "s4"):
            nursery.start_soon(one, name, False)
            await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(one, "pong", True)
    assert order == [("s1", 0), ("s2", 0), ("pong", 0), ("s3", 1), ("s4", 1)]


async def test_cancelled_acquire_records_nothing(autojump_clock: trio.testing.MockClock) -> None:
    limiter = TrioRateLimiter(RateLimit(limit=1, window_s=1.0))
    start = trio.current_time()
    await limiter.acquire()
    with trio.move_on_after(0.5) as scope:
        await limiter.acquire()
    assert scope.cancelled_caught
    stats = limiter.statistics()
    assert (stats.acquired, stats.waiting, stats.waited_s) == (1, 0, 0.0)
    # the cancelled attempt did not use the slot at t=1
    await limiter.acquire()
    assert trio.current_time() - start == 1.0
    await limiter.acquire()
    assert trio.current_time() - start == 2.0


async def test_cancelled_urgent_acquire_records_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = TrioRateLimiter(RateLimit(limit=1, window_s=1.0))
    await limiter.acquire(urgent=True)
    with trio.CancelScope() as scope:
        scope.cancel()
        await limiter.acquire(urgent=True)  # already cancelled: raises at once
    assert limiter.statistics().acquired == 1
    assert limiter.next_allowed(urgent=True) == trio.current_time() + 1.0


async def test_acquire_is_a_checkpoint(autojump_clock: trio.testing.MockClock) -> None:
    limiter = TrioRateLimiter(RateLimit(limit=10, window_s=1.0))
    with trio.CancelScope() as scope:
        scope.cancel()
        await limiter.acquire()
    assert scope.cancelled_caught
    assert limiter.statistics().acquired == 0
    with trio.testing.assert_checkpoints():
        await limiter.acquire()
    with trio.testing.assert_checkpoints():
        await limiter.acquire(urgent=True)


async def test_connection_attempt_pacing(autojump_clock: trio.testing.MockClock) -> None:
    limiter = TrioRateLimiter(BINANCE_CONNECTS)
    start = trio.current_time()
    times = []
    for _ in range(12):
        await limiter.acquire()
        times.append(trio.current_time() - start)
    assert times == [0] * 5 + [1] * 5 + [2] * 2


def test_window_force_records_over_the_limit() -> None:
    w = RollingWindow(1, 1.0)
    assert w.record(0.0, force=True)
    assert not w.record(0.5, force=True)  # already happened: counted, reported as over
    assert w.next_allowed(0.5) == 1.5
    assert w.count(0.5) == 1  # only the last `limit` events are kept


async def test_record_urgent_now_counts_auto_pongs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # what the WebSocket layer does when it answers a server ping by itself
    limiter = TrioRateLimiter(BINANCE_SPOT_MESSAGES)  # 4/s, 3/s ordinary
    start = trio.current_time()
    for _ in range(3):
        await limiter.acquire()
    limiter.record_urgent_now()  # the reserved slot: within the limit
    assert limiter.statistics().overruns == 0
    limiter.record_urgent_now()  # a second pong in the same second: over, but counted
    stats = limiter.statistics()
    assert (stats.acquired, stats.urgent_acquired, stats.overruns) == (5, 2, 1)
    # the next ordinary message waits until only 2 of the 5 are left in its window
    await limiter.acquire()
    assert trio.current_time() - start == 1.0
    assert limiter.statistics().acquired == 6


@settings(max_examples=60, deadline=None)
@given(
    reqs=st.lists(
        st.tuples(st.integers(0, 3000), st.booleans()),  # (request time in ms, urgent)
        min_size=1,
        max_size=30,
    )
)
def test_property_trio_limiter_never_exceeds_limit(reqs: list[tuple[int, bool]]) -> None:
    """Concurrent tasks asking at arbitrary times: no 1-s window holds more than the limit."""
    lim = RateLimit(limit=5, window_s=1.0, headroom=1, urgent_reserve=1)
    granted: list[tuple[float, bool, float]] = []

    async def main() -> None:
        limiter = TrioRateLimiter(lim)
        start = trio.current_time()

        async def one(at_ms: int, urgent: bool) -> None:
            await trio.sleep_until(start + at_ms / 1000)
            asked = trio.current_time() - start
            await limiter.acquire(urgent=urgent)
            granted.append((trio.current_time() - start, urgent, asked))

        async with trio.open_nursery() as nursery:
            for at_ms, urgent in reqs:
                nursery.start_soon(one, at_ms, urgent)
        assert limiter.statistics().acquired == len(reqs)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    times = sorted(t for t, _, _ in granted)
    assert _max_in_any_window(times, 1.0) <= lim.capacity
    ordinary = sorted(t for t, urgent, _ in granted if not urgent)
    assert _max_in_any_window(ordinary, 1.0) <= lim.ordinary_capacity
    assert all(t >= asked for t, _, asked in granted)
    # An urgent request is never delayed unless another urgent message went out in the second
    # before it: ordinary messages alone leave the reserved slot free.
    for i, (t, urgent, asked) in enumerate(granted):
        others = [g for j, (g, u, _) in enumerate(granted) if u and j != i]
        if urgent and not any(asked - 1.0 < g <= asked for g in others):
            assert t == asked
