"""Reconnect, backoff, watchdog, rollover and gap timing of a shard, on Trio's MockClock.

An in-memory exchange stands in for the network, so Trio's autojump clock can fast-forward
through hours while every time the recorder acts on is exact.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import pytest
import trio
import trio.testing

from recorder import Message
from recorder.capture._connection import ShardRunner, Timing
from recorder.capture._policy import Backoff, RolloverSchedule
from recorder.core._frame import Frame
from recorder.net._limiter import RateLimit, TrioRateLimiter
from recorder.net._ws import ClosedByPeer, ConnectionLost, WsClient
from recorder.venues._adapters import BinanceAdapter

STREAMS = ["btcusdt@trade", "btcusdt@depth@100ms"]


class FakeClient:
    """The client end of one in-memory connection."""

    def __init__(self, ex: FakeExchange) -> None:
        self.ex = ex
        self.send, self.recv = trio.open_memory_channel[Frame | BaseException](1000)
        self.last_activity = trio.current_time()
        self.closed = False

    async def receive(self) -> Frame:
        item = await self.recv.receive()
        if isinstance(item, BaseException):
            raise item
        self.last_activity = trio.current_time()
        return item

    async def send_text(self, text: str) -> None:
        req = orjson.loads(text)
        self.ex.requests.append((trio.current_time(), req))
        if req.get("method") in ("SUBSCRIBE", "UNSUBSCRIBE"):
            self.push(orjson.dumps({"result": None, "id": req["id"]}))

    def push(self, payload: bytes) -> None:
        self.send.send_nowait(Frame(int(trio.current_time() * 1e9), payload, True))

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True


@dataclass
class FakeExchange:
    fail_next: int = 0
    connects: list[float] = field(default_factory=list)
    clients: list[FakeClient] = field(default_factory=list)
    requests: list[tuple[float, Any]] = field(default_factory=list)

    async def connect(
        self,
        url: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        on_control_sent: Callable[[], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> WsClient:
        self.connects.append(trio.current_time())
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionLost("connection refused")
        c = FakeClient(self)
        self.clients.append(c)
        return cast(WsClient, c)

    def live(self) -> list[FakeClient]:
        return [c for c in self.clients if not c.closed]

    def trade(self, i: int) -> None:
        data = (
            b'{"e":"trade","E":1,"s":"BTCUSDT","t":%d,"p":"1.0","q":"1.0","T":1,"m":true,"M":true}'
        )
        payload = b'{"stream":"btcusdt@trade","data":' + data % i + b"}"
        for c in self.live():
            c.push(payload)

    def close_all(self, code: int, reason: str) -> None:
        for c in self.live():
            c.send.send_nowait(ClosedByPeer(code, reason))


class ListSink:
    def __init__(self) -> None:
        self.msgs: list[Message] = []

    def put(self, msg: Message) -> None:
        self.msgs.append(msg)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = [orjson.loads(m.payload) for m in self.msgs if m.channel == "session"]
        return [e for e in out if name is None or e["event"] == name]


def make_runner(ex: FakeExchange, sink: ListSink, timing: Timing) -> ShardRunner:
    return ShardRunner(
        shard_id="binance-spot.0",
        adapter=BinanceAdapter("binance-spot"),
        ws_base="ws://exchange.invalid",
        route="",
        streams=STREAMS,
        sink=sink,
        timing=timing,
        connect_limiter=TrioRateLimiter(RateLimit(limit=1000, window_s=1.0)),
        run_token="t",
        clock_ns=lambda: round(trio.current_time() * 1e9),
        connector=ex.connect,
    )


NO_JITTER = Backoff(base=0.5, factor=2.0, cap=4.0, jitter=0.0, healthy_after=60.0)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_reconnect_backoff_is_capped_exponential(clock: trio.testing.MockClock) -> None:
    ex, sink = FakeExchange(fail_next=6), ListSink()
    runner = make_runner(ex, sink, Timing(stall_after=1e9, backoff=NO_JITTER))
    async with trio.open_nursery() as n:
        await n.start(runner.run)
        await trio.sleep(100)
        n.cancel_scope.cancel()
    # Delays 0.5, 1, 2, 4, 4, 4 (capped) between attempts; the 7th attempt succeeds.
    assert ex.connects == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    failed = [e for e in sink.events("disconnected") if e["reason"] != "stopped"]
    assert [e["attempt"] for e in failed] == [0, 1, 2, 3, 4, 5]
    assert sink.events("disconnected")[-1]["time_ns"] == 100_000_000_000  # the stop
    assert len(sink.events("subscribed")) == 1


async def test_watchdog_ends_a_silent_connection_at_exactly_stall_after(
    clock: trio.testing.MockClock,
) -> None:
    ex, sink = FakeExchange(), ListSink()
    runner = make_runner(ex, sink, Timing(stall_after=10.0, backoff=NO_JITTER))
    async with trio.open_nursery() as n:
        await n.start(runner.run)
        await trio.sleep(3.0)
        ex.trade(1)  # activity at t=3 pushes the deadline to t=13
        await trio.sleep(20.0)
        n.cancel_scope.cancel()
    disc = sink.events("disconnected")
    assert disc[0]["time_ns"] == 13_000_000_000
    assert "stalled" in disc[0]["reason"]
    assert ex.connects[:2] == [0.0, 13.5]  # reconnect after the first backoff step


async def test_gap_spans_from_last_message_to_resubscription(
    clock: trio.testing.MockClock,
) -> None:
    ex, sink = FakeExchange(), ListSink()
    runner = make_runner(ex, sink, Timing(stall_after=1e9, backoff=NO_JITTER))
    async with trio.open_nursery() as n:
        await n.start(runner.run)
        await trio.sleep(2.0)
        ex.trade(1)
        await trio.sleep(3.0)
        ex.fail_next = 1
        ex.close_all(1001, "going away")
        await trio.sleep(10.0)
        n.cancel_scope.cancel()
    (gap,) = sink.events("gap")
    # Last message at t=2; closed at t=5; reconnect fails at 5.5, succeeds at 6.5.
    assert gap["gap_start_ns"] == 2_000_000_000
    assert gap["gap_end_ns"] == 6_500_000_000
    assert "1001 going away" in gap["reason"]
    assert sorted(gap["streams"]) == sorted(STREAMS)
    assert ex.connects == [0.0, 5.5, 6.5]


async def test_rollover_opens_the_new_connection_first_and_closes_the_old_after_overlap(
    clock: trio.testing.MockClock,
) -> None:
    schedule = RolloverSchedule(
        max_age_s=100.0, earliest_s=20.0, latest_s=5.0, min_spacing_s=1.0, overlap_s=2.0
    )
    ex, sink = FakeExchange(), ListSink()
    runner = make_runner(ex, sink, Timing(stall_after=1e9, backoff=NO_JITTER, rollover=schedule))
    async with trio.open_nursery() as n:
        await n.start(runner.run)
        await trio.sleep(91.0)
        ex.trade(7)  # both connections are open: the duplicate is dropped
        await trio.sleep(5.0)
        n.cancel_scope.cancel()
    # Connected at 0: the window is [80, 95]; shard 0's phase puts its rollover at 90.
    assert ex.connects == [0.0, 90.0]
    (roll,) = sink.events("rollover")
    assert roll["time_ns"] == 90_000_000_000
    retired = [e for e in sink.events("disconnected") if e["reason"] == "rollover complete"]
    assert [e["time_ns"] for e in retired] == [92_000_000_000]  # subscribed at 90 + overlap 2
    (stopped,) = [e for e in sink.events("disconnected") if e["reason"] == "stopped"]
    assert stopped["time_ns"] == 96_000_000_000 and stopped["planned"] is True
    assert not sink.events("gap")
    trades = [m for m in sink.msgs if m.channel == "trade"]
    assert len(trades) == 1
    assert runner.statistics().duplicates_dropped == 1


async def test_rollovers_of_several_shards_never_coincide(clock: trio.testing.MockClock) -> None:
    schedule = RolloverSchedule(
        max_age_s=100.0, earliest_s=20.0, latest_s=5.0, min_spacing_s=1.0, overlap_s=2.0
    )
    times = [schedule.rollover_at(i, 0.0, 5) for i in range(5)]
    # The 15 s window is shared out evenly: phases 3 s apart, whatever the connect times.
    assert times == [90.0, 93.0, 81.0, 84.0, 87.0]
    later = [schedule.rollover_at(i, 37.5, 5) for i in range(5)]
    assert sorted(b - a for a in later for b in later if b > a)[0] == 3.0
