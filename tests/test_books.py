"""BookKeeper: Binance diff-depth sync with REST snapshots, Bybit resubscribe, checkpoints."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson
import pytest
import trio
import trio.testing
from trio_websocket import open_websocket_url

from recorder import HOUR_NS
from recorder.capture._bookkeeper import BookKeeper
from recorder.core._codec import codec_for
from recorder.core._errors import ConfigError
from recorder.core._message import Message
from recorder.net._rest import RestClient, RestResponse, binance_policy
from recorder.venues import binance as bn
from recorder.venues import bybit as bb
from replay.sim import Fault
from tests._shared import corpus
from tests.test_sim_support import config, running

SPOT = "binance-spot"
USDM = "binance-usdm"
LINEAR = "bybit-linear"

Levels = list[list[str]]


# --------------------------------------------------------------------------------------------
# helpers


class Sink:
    """Like the recorder's FanOut: keeps every message and calls the observers (re-entrantly)."""

    def __init__(self) -> None:
        self.msgs: list[Message] = []
        self.observers: list[Callable[[Message], None]] = []

    def put(self, msg: Message) -> None:
        self.msgs.append(msg)
        for obs in self.observers:
            obs(msg)

    def of(self, channel: str) -> list[Message]:
        return [m for m in self.msgs if m.channel == channel]

    def sessions(self) -> list[dict[str, Any]]:
        return [orjson.loads(m.payload) for m in self.of("session")]


Reply = RestResponse | Callable[[str], RestResponse]


class FakeRest:
    """Answers GETs from a queue of replies (or per-path callables); records each call."""

    def __init__(self, replies: Sequence[Reply] = ()) -> None:
        self.replies: list[Reply] = list(replies)
        self.calls: list[tuple[str, int, float]] = []

    async def get(
        self, path: str, params: Mapping[str, str] | None = None, *, weight: int = 1
    ) -> RestResponse:
        await trio.sleep(0.05)  # network time
        self.calls.append((path, weight, trio.current_time()))
        reply = self.replies.pop(0)
        return reply(path) if callable(reply) else reply


def snapshot_body(last_id: int, bids: Levels, asks: Levels) -> bytes:
    return orjson.dumps({"lastUpdateId": last_id, "bids": bids, "asks": asks})


def ok(body: bytes, recv_ns: int = 0) -> RestResponse:
    return RestResponse(200, (("Content-Type", "application/json"),), body, recv_ns)


def depth_msg(
    stream: str,
    first: int,
    final: int,
    bids: Levels,
    asks: Levels,
    recv_ns: int,
    *,
    venue: str = SPOT,
    pu: int | None = None,
    seq: int = 0,
) -> Message:
    sym = stream.split("@", maxsplit=1)[0].upper()
    data: dict[str, Any] = {"e": "depthUpdate", "E": recv_ns // 1_000_000}
    if venue == USDM:
        data["T"] = recv_ns // 1_000_000
    data.update({"s": sym, "U": first, "u": final})
    if venue == USDM:
        data["pu"] = pu
    data.update({"b": bids, "a": asks})
    payload = orjson.dumps({"stream": stream, "data": data})
    return Message(
        venue=venue,
        stream=stream,
        channel="depth",
        symbol=sym,
        recv_ns=recv_ns,
        conn="c1",
        seq=seq,
        payload=payload,
    )


def bybit_msg(
    topic: str,
    typ: str,
    u: int,
    bids: Levels,
    asks: Levels,
    recv_ns: int,
    *,
    venue: str = LINEAR,
    seq: int | None = None,
) -> Message:
    sym = topic.rsplit(".", maxsplit=1)[-1]
    data: dict[str, Any] = {"s": sym, "b": bids, "a": asks, "u": u}
    if seq is not None:
        data["seq"] = seq
    ts = recv_ns // 1_000_000
    payload = orjson.dumps(
        {"topic": topic, "type": typ, "ts": ts, "data": data, "cts": ts - 2},
    )
    return Message(
        venue=venue,
        stream=topic,
        channel="orderbook",
        symbol=sym,
        recv_ns=recv_ns,
        conn="c1",
        seq=u,
        payload=payload,
    )


class Ref:
    """An independent reference book (Decimal prices, exact texts)."""

    def __init__(self, bids: Levels, asks: Levels) -> None:
        self.bids: dict[Decimal, list[str]] = {}
        self.asks: dict[Decimal, list[str]] = {}
        self.apply(bids, asks)

    def apply(self, bids: Levels, asks: Levels) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for p, q in levels:
                if Decimal(q) == 0:
                    side.pop(Decimal(p), None)
                else:
                    side[Decimal(p)] = [p, q]

    def levels(self) -> tuple[Levels, Levels]:
        return (
            [self.bids[k] for k in sorted(self.bids, reverse=True)],
            [self.asks[k] for k in sorted(self.asks)],
        )


def as_lists(book: tuple[Sequence[Sequence[str]], Sequence[Sequence[str]]] | None) -> Any:
    assert book is not None
    return [[list(lv) for lv in book[0]], [list(lv) for lv in book[1]]]


def binance_keeper(sink: Sink, rest: FakeRest, venue: str = SPOT, **kw: Any) -> BookKeeper:
    kw.setdefault("checkpoints", False)
    kw.setdefault("snapshot_delay", 0.1)
    keeper = BookKeeper(venue, sink, rest=rest, **kw)
    sink.observers.append(keeper.observe)
    return keeper


S = 1_000_000_000
T0 = 1_700_000_000 * S  # some wall-clock time, well inside an hour


# --------------------------------------------------------------------------------------------
# Binance


def test_keeper_config_checks() -> None:
    with pytest.raises(ConfigError):
        BookKeeper(SPOT, Sink())  # Binance needs REST
    with pytest.raises(ConfigError):
        BookKeeper("kraken", Sink())
    with pytest.raises(ConfigError):
        BookKeeper(LINEAR, Sink(), snapshot_delay=-1)


async def test_snapshot_fetched_after_first_events(autojump_clock: trio.testing.MockClock) -> None:
    sink, stream = Sink(), "btcusdt@depth@100ms"
    body = snapshot_body(105, [["100.00", "1.00"], ["99.00", "2.00"]], [["101.00", "3.00"]])
    rest = FakeRest([ok(body, T0 + 5)])
    keeper = binance_keeper(sink, rest)
    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run)
        sink.put(depth_msg(stream, 100, 103, [["99.00", "5.00"]], [], T0 + 1))
        sink.put(depth_msg(stream, 104, 107, [["100.00", "0.00"]], [], T0 + 2))
        assert rest.calls == []  # the fetch starts after snapshot_delay
        assert keeper.book(stream) is None
        await trio.sleep(1)
        assert [(p, w) for p, w, _ in rest.calls] == [
            ("/api/v3/depth?symbol=BTCUSDT&limit=1000", 50)
        ]
        assert rest.calls[0][2] == pytest.approx(0.15)
        sink.put(depth_msg(stream, 108, 108, [], [["101.00", "0.50"], ["102.00", "1.00"]], T0 + 9))
        nursery.cancel_scope.cancel()
    # event 100..103 dropped (u <= 105), 104..107 applied, 108 applied
    assert as_lists(keeper.book(stream)) == [
        [["99.00", "2.00"]],
        [["101.00", "0.50"], ["102.00", "1.00"]],
    ]
    assert keeper.update_id(stream) == 108
    (snap,) = sink.of("depth_snapshot")
    assert (snap.payload, snap.recv_ns, snap.conn, snap.stream, snap.symbol, snap.seq) == (
        body,
        T0 + 5,
        "rest:binance-spot",
        stream,
        "BTCUSDT",
        1,
    )
    assert snap.fields["last_update_id"] == 105  # decodes with the registered codec
    assert sink.of("session") == []  # a first sync is not a resync
    st = keeper.statistics()
    assert (st.books, st.books_synced, st.snapshots_fetched, st.gaps, st.resyncs) == (1, 1, 1, 0, 0)


async def test_too_old_snapshot_is_fetched_again(autojump_clock: trio.testing.MockClock) -> None:
    sink, stream = Sink(), "ethusdt@depth"
    old = snapshot_body(90, [["10.0", "1.0"]], [])
    good = snapshot_body(101, [["10.0", "2.0"]], [["11.0", "1.0"]])
    rest = FakeRest([ok(old, T0 + 3), ok(good, T0 + 4)])
    keeper = binance_keeper(sink, rest)
    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run)
        sink.put(depth_msg(stream, 100, 102, [["10.0", "3.0"]], [], T0 + 1))
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert len(rest.calls) == 2
    assert [m.payload for m in sink.of("depth_snapshot")] == [old, good]
    assert as_lists(keeper.book(stream)) == [[["10.0", "3.0"]], [["11.0", "1.0"]]]
    st = keeper.statistics()
    assert (st.snapshots_fetched, st.snapshots_too_old) == (2, 1)


async def test_failed_snapshot_retried_with_backoff(autojump_clock: trio.testing.MockClock) -> None:
    sink, stream = Sink(), "btcusdt@depth"
    err = RestResponse(429, (("Retry-After", "3"),), b'{"code":-1003}', T0)
    good = snapshot_body(6, [["1.0", "1.0"]], [])
    rest = FakeRest([err, RestResponse(200, (), b"not json", T0), ok(good, T0 + 1)])
    keeper = binance_keeper(sink, rest, retry_base=2.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run)
        sink.put(depth_msg(stream, 6, 7, [["1.0", "2.0"]], [], T0))
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    times = [t for _, _, t in rest.calls]
    assert times == pytest.approx([0.15, 2.2, 6.25])  # delay, +2 s, +4 s (plus network time)
    assert keeper.statistics().snapshot_failures == 2
    # the undecodable 200 body is recorded too (every REST snapshot body is kept)
    assert len(sink.of("depth_snapshot")) == 2
    assert as_lists(keeper.book(stream)) == [[["1.0", "2.0"]], []]


async def test_gap_resyncs_only_that_symbol(autojump_clock: trio.testing.MockClock) -> None:
    sink = Sink()
    btc, eth = "btcusdt@depth@100ms", "ethusdt@depth@100ms"
    replies: dict[str, list[bytes]] = {
        "BTCUSDT": [
            snapshot_body(10, [["5.0", "1.0"]], [["6.0", "1.0"]]),
            snapshot_body(30, [["5.0", "9.0"]], [["6.0", "9.0"]]),
        ],
        "ETHUSDT": [snapshot_body(10, [["1.0", "1.0"]], [["2.0", "1.0"]])],
    }

    def reply(path: str) -> RestResponse:
        sym = path.split("symbol=")[1].split("&", maxsplit=1)[0]
        return ok(replies[sym].pop(0), T0)

    rest = FakeRest([reply] * 3)
    keeper = binance_keeper(sink, rest)
    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run)
        sink.put(depth_msg(btc, 10, 11, [["5.0", "2.0"]], [], T0 + 1 * S))
        sink.put(depth_msg(eth, 10, 11, [["1.0", "2.0"]], [], T0 + 1 * S))
        await trio.sleep(1)
        sink.put(depth_msg(btc, 12, 12, [["5.0", "3.0"]], [], T0 + 2 * S))  # last good
        sink.put(depth_msg(eth, 12, 12, [["1.0", "3.0"]], [], T0 + 2 * S))
        sink.put(depth_msg(btc, 20, 25, [["5.0", "4.0"]], [], T0 + 3 * S))  # gap: 13..19 lost
        assert keeper.book(btc) is None
        sink.put(depth_msg(eth, 13, 13, [["1.0", "4.0"]], [], T0 + 3 * S))
        sink.put(depth_msg(btc, 26, 31, [["4.0", "1.0"]], [], T0 + 4 * S))
        await trio.sleep(1)
        sink.put(depth_msg(btc, 32, 32, [["4.0", "2.0"]], [], T0 + 5 * S))
        nursery.cancel_scope.cancel()
    paths = [p for p, _, _ in rest.calls]
    assert sorted(paths[:2]) == [
        "/api/v3/depth?symbol=BTCUSDT&limit=1000",
        "/api/v3/depth?symbol=ETHUSDT&limit=1000",
    ]
    assert paths[2:] == ["/api/v3/depth?symbol=BTCUSDT&limit=1000"]  # the resync: BTC only
    assert as_lists(keeper.book(eth)) == [[["1.0", "4.0"]], [["2.0", "1.0"]]]
    # btc: snapshot 30, event 20..25 dropped, 26..31 applied (first: U <= 30 < u), 32 applied
    assert as_lists(keeper.book(btc)) == [[["5.0", "9.0"], ["4.0", "2.0"]], [["6.0", "9.0"]]]
    sessions = sink.sessions()
    assert [s["event"] for s in sessions] == ["gap", "resync"]
    gap, resync = sessions
    assert gap["streams"] == [btc] and resync["streams"] == [btc]
    assert gap["gap_start_ns"] == T0 + 2 * S  # last good btc message
    assert gap["gap_end_ns"] == T0 + 4 * S  # first message applied after the resync
    assert gap["reason"] == "U > book update id + 1"
    assert gap["detail"] == {"expected": 13, "got": 20}
    assert resync["reason"] == "snapshot"
    for m in sink.of("session"):
        assert (m.venue, m.stream, m.conn, m.symbol) == (SPOT, btc, "book:binance-spot", "BTCUSDT")
        codec = codec_for(SPOT, "session")
        assert codec.render(codec.decode(m.payload).fields, m.stream, 0) == m.payload
    st = keeper.statistics()
    assert (st.books, st.books_synced, st.gaps, st.resyncs, st.snapshots_fetched) == (2, 2, 1, 1, 3)


async def test_usdm_pu_rule(autojump_clock: trio.testing.MockClock) -> None:
    sink, stream = Sink(), "btcusdt@depth@100ms"
    rest = FakeRest(
        [
            ok(snapshot_body(150, [["50.0", "1"]], [["51.0", "1"]]), T0),
            ok(snapshot_body(300, [["50.0", "7"]], [["51.0", "7"]]), T0),
        ]
    )
    keeper = binance_keeper(sink, rest, venue=USDM)

    def ev(first: int, final: int, pu: int, qty: str, t: int) -> Message:
        return depth_msg(stream, first, final, [["50.0", qty]], [], T0 + t * S, venue=USDM, pu=pu)

    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run)
        sink.put(ev(140, 149, 139, "2", 1))  # u < 150: dropped
        sink.put(ev(145, 150, 149, "3", 2))  # u == lastUpdateId: applied on USDⓈ-M (Spot drops it)
        await trio.sleep(1)
        assert [p for p, _, _ in rest.calls] == ["/fapi/v1/depth?symbol=BTCUSDT&limit=1000"]
        assert rest.calls[0][1] == 20
        assert as_lists(keeper.book(stream))[0] == [["50.0", "3"]]
        sink.put(ev(158, 170, 150, "4", 3))  # U jumps but pu == previous u: fine on USDⓈ-M
        assert keeper.update_id(stream) == 170
        sink.put(ev(171, 180, 169, "5", 4))  # pu != 170: gap
        assert keeper.book(stream) is None
        sink.put(ev(290, 310, 289, "6", 5))
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert as_lists(keeper.book(stream))[0] == [["50.0", "6"]]
    assert keeper.update_id(stream) == 310
    gap = next(s for s in sink.sessions() if s["event"] == "gap")
    assert (gap["gap_start_ns"], gap["gap_end_ns"]) == (T0 + 3 * S, T0 + 5 * S)
    assert (gap["reason"], gap["detail"]) == ("pu != previous u", {"expected": 170, "got": 169})
    assert keeper.statistics().gaps == 1


async def test_spot_drops_event_ending_at_snapshot_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink, stream = Sink(), "btcusdt@depth"
    rest = FakeRest([ok(snapshot_body(150, [["50.0", "1"]], []), T0)])
    keeper = binance_keeper(sink, rest)
    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run)
        sink.put(depth_msg(stream, 145, 150, [["50.0", "3"]], [], T0))
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert as_lists(keeper.book(stream)) == [[["50.0", "1"]], []]
    assert keeper.update_id(stream) == 150


async def test_open_gap_recorded_at_shutdown(autojump_clock: trio.testing.MockClock) -> None:
    sink, stream = Sink(), "btcusdt@depth"
    err = RestResponse(503, (), b"Service Unavailable", T0)
    rest = FakeRest([ok(snapshot_body(10, [["1.0", "1.0"]], []), T0)] + [err] * 20)
    keeper = binance_keeper(sink, rest, clock_ns=lambda: T0 + 9 * S)
    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run)
        sink.put(depth_msg(stream, 10, 11, [["1.0", "2.0"]], [], T0 + 1 * S))
        await trio.sleep(1)
        sink.put(depth_msg(stream, 15, 16, [["1.0", "3.0"]], [], T0 + 2 * S))  # gap
        await trio.sleep(60)  # the exchange keeps failing
        nursery.cancel_scope.cancel()
    (gap,) = sink.sessions()
    assert gap["event"] == "gap" and gap["gap_start_ns"] == T0 + 1 * S
    assert "gap_end_ns" not in gap and "shutdown" in gap["reason"]
    assert keeper.statistics().snapshot_failures >= 3


async def test_a_full_buffer_keeps_the_newest_events(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink, stream = Sink(), "btcusdt@depth"
    rest = FakeRest([ok(snapshot_body(1, [], []), T0), ok(snapshot_body(20, [], []), T0)])
    keeper = binance_keeper(sink, rest, max_buffer=3)
    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run)
        for i in range(10, 15):
            sink.put(depth_msg(stream, i, i, [["1.0", str(i)]], [], T0 + i))
        await trio.sleep(1)  # snapshot 1 is older than the first event kept (12): again
        st = keeper.statistics()
        assert st.buffer_overflows == 2 and st.snapshots_too_old == 1
        for i in range(15, 22):
            sink.put(depth_msg(stream, i, i, [["1.0", str(i)]], [], T0 + i))
            await trio.sleep(0.01)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert keeper.update_id(stream) == 21
    assert as_lists(keeper.book(stream)) == [[["1.0", "21"]], []]


async def test_events_older_than_the_buffer_window_are_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # One event a second for 31 s while the snapshot waits; only the last 10 s are kept, so
    # a snapshot from before them is fetched again and a newer one syncs the book.
    sink, stream = Sink(), "btcusdt@depth"
    rest = FakeRest([ok(snapshot_body(25, [], []), T0), ok(snapshot_body(35, [], []), T0)])
    keeper = binance_keeper(sink, rest, buffer_window=10.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run)
        for i in range(10, 41):
            sink.put(depth_msg(stream, i, i, [["1.0", str(i)]], [], T0 + i * S))
        book = keeper._books[stream]
        assert [e.first for e in book.buffer] == list(range(30, 41))  # type: ignore[attr-defined]
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    st = keeper.statistics()
    assert st.snapshots_too_old == 1 and st.buffer_overflows == 20
    assert keeper.update_id(stream) == 40
    assert as_lists(keeper.book(stream)) == [[["1.0", "40"]], []]


def test_non_book_messages_are_ignored_cheaply() -> None:
    sink = Sink()
    keeper = BookKeeper(SPOT, sink, rest=FakeRest(), checkpoints=False)
    trade = Message(
        venue=SPOT,
        stream="btcusdt@trade",
        channel="trade",
        symbol="BTCUSDT",
        recv_ns=1,
        conn="c",
        seq=1,
        payload=b"not even json",
    )
    keeper.observe(trade)
    other_venue = depth_msg("btcusdt@depth", 1, 2, [], [], 1, venue=USDM, pu=0)
    keeper.observe(other_venue)
    assert keeper.streams() == []
    bad = depth_msg("btcusdt@depth", 1, 2, [], [], 1)
    bad.payload = b'{"e":"depthUpdate"}'
    keeper.observe(bad)
    assert keeper.statistics().errors == 1


# --------------------------------------------------------------------------------------------
# Bybit


Calls = list[tuple[str, list[str]]]


def bybit_keeper(sink: Sink, calls: Calls, **kw: Any) -> BookKeeper:
    def resubscribe(venue: str, streams: Sequence[str]) -> bool:
        calls.append((venue, list(streams)))
        return True

    kw.setdefault("checkpoints", False)
    keeper = BookKeeper(LINEAR, sink, resubscribe=resubscribe, **kw)
    sink.observers.append(keeper.observe)
    return keeper


def test_bybit_gap_resubscribes_just_that_topic() -> None:
    sink, calls = Sink(), Calls()
    keeper = bybit_keeper(sink, calls)
    a, b = "orderbook.50.BTCUSDT", "orderbook.50.ETHUSDT"
    sink.put(bybit_msg(a, "snapshot", 100, [["10.0", "1"]], [["11.0", "1"]], T0 + 1))
    sink.put(bybit_msg(b, "snapshot", 500, [["1.0", "1"]], [["2.0", "1"]], T0 + 1))
    sink.put(bybit_msg(a, "delta", 101, [["10.0", "2"]], [], T0 + 2))
    sink.put(bybit_msg(b, "delta", 501, [["1.0", "2"]], [], T0 + 2))
    sink.put(bybit_msg(a, "delta", 103, [["10.0", "3"]], [], T0 + 3))  # 102 missing
    assert calls == [(LINEAR, [a])]
    assert keeper.book(a) is None
    sink.put(bybit_msg(a, "delta", 104, [["10.0", "4"]], [], T0 + 4))  # ignored, no new request
    sink.put(bybit_msg(b, "delta", 502, [["1.0", "3"]], [], T0 + 4))
    assert calls == [(LINEAR, [a])]
    sink.put(bybit_msg(a, "snapshot", 110, [["10.0", "9"]], [["12.0", "1"]], T0 + 5))
    assert as_lists(keeper.book(a)) == [[["10.0", "9"]], [["12.0", "1"]]]
    assert as_lists(keeper.book(b)) == [[["1.0", "3"]], [["2.0", "1"]]]
    sessions = sink.sessions()
    assert [s["event"] for s in sessions] == ["gap", "resync"]
    assert sessions[0]["gap_start_ns"] == T0 + 2 and sessions[0]["gap_end_ns"] == T0 + 5
    assert all(s["streams"] == [a] for s in sessions)
    assert all(m.conn == "book:bybit-linear" and m.stream == a for m in sink.of("session"))
    st = keeper.statistics()
    assert (st.gaps, st.resyncs, st.resubscribes, st.books_synced) == (1, 1, 1, 2)


def test_bybit_u1_reset_and_unsolicited_snapshot() -> None:
    sink, calls = Sink(), Calls()
    keeper = bybit_keeper(sink, calls)
    a = "orderbook.200.BTCUSDT"
    sink.put(bybit_msg(a, "snapshot", 100, [["10.0", "1"]], [["11.0", "1"]], T0 + 1))
    sink.put(bybit_msg(a, "delta", 101, [["9.0", "1"]], [], T0 + 2))
    sink.put(bybit_msg(a, "snapshot", 1, [["8.0", "1"]], [["9.5", "1"]], T0 + 3))  # restart
    assert as_lists(keeper.book(a)) == [[["8.0", "1"]], [["9.5", "1"]]]
    sink.put(bybit_msg(a, "delta", 2, [["8.0", "2"]], [], T0 + 4))
    sink.put(bybit_msg(a, "snapshot", 50, [["7.0", "1"]], [], T0 + 5))  # re-sent by Bybit
    sink.put(bybit_msg(a, "delta", 51, [["7.0", "0"]], [["9.0", "1"]], T0 + 6))
    assert as_lists(keeper.book(a)) == [[], [["9.0", "1"]]]
    assert calls == []
    sessions = sink.sessions()
    assert [(s["event"], s["reason"]) for s in sessions] == [
        ("resync", "restart"),
        ("resync", "snapshot"),
    ]
    assert keeper.statistics().gaps == 0


def test_bybit_delta_before_snapshot_and_stale() -> None:
    sink, calls = Sink(), Calls()
    keeper = bybit_keeper(sink, calls)
    a = "orderbook.50.BTCUSDT"
    sink.put(bybit_msg(a, "delta", 7, [["1.0", "1"]], [], T0))  # joined mid-stream
    sink.put(bybit_msg(a, "delta", 8, [["1.0", "1"]], [], T0 + 1))
    assert calls == [(LINEAR, [a])] and keeper.book(a) is None
    sink.put(bybit_msg(a, "snapshot", 10, [["1.0", "5"]], [], T0 + 2))
    assert sink.sessions() == []  # the first sync is not a resync
    sink.put(bybit_msg(a, "delta", 11, [["1.0", "6"]], [], T0 + 3))
    sink.put(bybit_msg(a, "delta", 11, [["1.0", "6"]], [], T0 + 3))  # duplicate: ignored
    assert as_lists(keeper.book(a)) == [[["1.0", "6"]], []]
    assert len(calls) == 1
    sink.put(bybit_msg(a, "delta", 9, [["1.0", "1"]], [], T0 + 4))  # older data: break
    assert keeper.book(a) is None and calls[-1] == (LINEAR, [a])
    sink.put(bybit_msg(a, "delta", 12, [["1.0", "2"]], [], T0 + 5))  # ignored until snapshot
    sink.put(bybit_msg(a, "snapshot", 20, [["1.0", "3"]], [], T0 + 6))
    assert as_lists(keeper.book(a)) == [[["1.0", "3"]], []]
    assert [s["event"] for s in sink.sessions()] == ["gap", "resync"]


async def test_bybit_resubscribe_retried(autojump_clock: trio.testing.MockClock) -> None:
    sink, calls = Sink(), Calls()
    keeper = bybit_keeper(sink, calls, resubscribe_retry=10.0)
    a = "orderbook.50.BTCUSDT"
    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run)
        sink.put(bybit_msg(a, "snapshot", 10, [["1.0", "5"]], [], T0))
        await trio.sleep(1)
        sink.put(bybit_msg(a, "delta", 12, [], [], T0 + 1))
        assert len(calls) == 1
        await trio.sleep(10)  # first tick: give the first request a whole period
        assert len(calls) == 1
        await trio.sleep(10)
        assert len(calls) == 2
        sink.put(bybit_msg(a, "snapshot", 30, [["1.0", "5"]], [], T0 + 2))
        await trio.sleep(50)
        assert len(calls) == 2
        nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------------------------
# Checkpoints


def _hft_lines() -> tuple[bytes, float, list[tuple[bytes, float]]]:
    snap = next(
        c
        for c in corpus("binance-spot", "depth_snapshot_rest")
        if "hftbacktest" in c.source and "BTCUSDT" in (c.stream or "")
    )
    events = [
        (c.payload, c.recv_ts or 0.0)
        for c in corpus("binance-spot", "depthUpdate")
        if "hftbacktest" in c.source
    ]
    return snap.payload, snap.recv_ts or 0.0, events


async def test_hourly_checkpoint_equals_rebuilt_book(
    autojump_clock: trio.testing.MockClock,
) -> None:
    snap_body, snap_ts, events = _hft_lines()
    # The first 26 events chain (U = previous u + 1); later lines are sampled (gaps).
    chain = events[:26]
    for (p1, _), (p2, _) in itertools.pairwise(chain):
        d1, d2 = orjson.loads(p1)["data"], orjson.loads(p2)["data"]
        assert d2["U"] == d1["u"] + 1
    stream = "btcusdt@depth@100ms"
    # Shift the capture so that an hour boundary falls between chain[12] and chain[13].
    boundary = (T0 // HOUR_NS + 1) * HOUR_NS
    offset = boundary - round((chain[12][1] + chain[13][1]) / 2 * 1e9)

    def at(ts: float) -> int:
        return round(ts * 1e9) + offset

    start_ns = at(chain[0][1]) - S

    def clock_ns() -> int:
        return start_ns + round(trio.current_time() * 1e9)

    sink = Sink()
    rest = FakeRest([ok(snap_body, at(snap_ts))])
    keeper = binance_keeper(sink, rest, checkpoints=True, clock_ns=clock_ns)

    def msg(i: int) -> Message:
        payload, ts = chain[i]
        return Message(
            venue=SPOT,
            stream=stream,
            channel="depth",
            symbol="BTCUSDT",
            recv_ns=at(ts),
            conn="c1",
            seq=i + 1,
            payload=payload,
        )

    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run)
        for i in range(26):
            # deliver each event at its receive time (trio time follows the shifted clock)
            await trio.sleep(max(0.0, (at(chain[i][1]) - clock_ns()) / 1e9))
            sink.put(msg(i))
        assert len(sink.of("book_checkpoint")) == 1
        await trio.sleep(HOUR_NS / 1e9 + 5)  # next boundary (+ grace): the quiet book is written
        nursery.cancel_scope.cancel()

    # Independent rebuild: snapshot, then the events with u > lastUpdateId.
    snap = orjson.loads(snap_body)
    ref = Ref(snap["bids"], snap["asks"])
    ref_id = snap["lastUpdateId"]
    rebuilt: list[tuple[int, tuple[Levels, Levels]]] = []
    for i, (payload, _) in enumerate(chain):
        d = orjson.loads(payload)["data"]
        if d["u"] > ref_id:
            ref.apply(d["b"], d["a"])
            ref_id = d["u"]
        if i == 12:
            rebuilt.append((ref_id, ref.levels()))
    rebuilt.append((ref_id, ref.levels()))

    cps = sink.of("book_checkpoint")
    assert [c.recv_ns for c in cps] == [boundary, boundary + HOUR_NS]
    codec = codec_for(SPOT, "book_checkpoint")
    for cp, (ref_id, (bids, asks)) in zip(cps, rebuilt, strict=True):
        body = orjson.loads(cp.payload)
        assert body == {"lastUpdateId": ref_id, "bids": bids, "asks": asks}
        assert (cp.stream, cp.symbol, cp.conn, cp.venue) == (
            stream,
            "BTCUSDT",
            "book:binance-spot",
            SPOT,
        )
        decoded = codec.decode(cp.payload)
        assert decoded.exact
        assert codec.render(decoded.fields, cp.stream, decoded.envelope) == cp.payload
    # the checkpoint keeps the exchange's number format (8 fraction digits on Spot)
    assert all(len(p.split(".")[1]) == 8 and len(q.split(".")[1]) == 8 for p, q in body["bids"])
    assert keeper.statistics().checkpoints == 2


async def test_checkpoint_skips_unsynced_books(autojump_clock: trio.testing.MockClock) -> None:
    sink = Sink()
    rest = FakeRest([])
    start = T0 // HOUR_NS * HOUR_NS + HOUR_NS - 10 * S  # 10 s before a boundary

    def clock_ns() -> int:
        return start + round(trio.current_time() * 1e9)

    async def slow_get(  # answers only after the boundary
        path: str, params: Mapping[str, str] | None = None, *, weight: int = 1
    ) -> RestResponse:
        await trio.sleep(100)
        return ok(snapshot_body(2, [["1.0", "1.0"]], []), clock_ns())

    rest.get = slow_get  # type: ignore[method-assign]
    keeper = binance_keeper(sink, rest, checkpoints=True, clock_ns=clock_ns)
    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run)
        sink.put(depth_msg("btcusdt@depth", 2, 2, [], [], clock_ns()))
        await trio.sleep(20)
        assert sink.of("book_checkpoint") == []
        await trio.sleep(200)
        assert keeper.book("btcusdt@depth") is not None
        await trio.sleep(HOUR_NS / 1e9)
        nursery.cancel_scope.cancel()
    (cp,) = sink.of("book_checkpoint")
    assert cp.recv_ns == start + 10 * S + HOUR_NS
    assert orjson.loads(cp.payload) == {"lastUpdateId": 2, "bids": [["1.0", "1.0"]], "asks": []}


@pytest.mark.parametrize(
    ("venue", "topic", "bids", "asks"),
    [
        (
            LINEAR,
            "orderbook.50.BTCUSDT",
            [["16493.50", "0.006"], ["16493.00", "0.100"]],
            [["16611.00", "0.029"]],
        ),
        (
            "bybit-spot",
            "orderbook.50.BTCUSDT",
            [["65140", "0.5"], ["65139.4", "1.25"]],
            [["65141.02", "3"]],
        ),
        ("bybit-option", "orderbook.25.BTC-28JUN24-60000-C", [["5", "1.5"]], [["10", "2"]]),
    ],
)
def test_bybit_checkpoint_roundtrips(venue: str, topic: str, bids: Levels, asks: Levels) -> None:
    sink: Sink = Sink()
    keeper = BookKeeper(venue, sink, resubscribe=lambda v, s: True)
    msg = bybit_msg(topic, "snapshot", 100, bids, asks, T0, venue=venue, seq=5)
    keeper.observe(msg)
    keeper.observe(bybit_msg(topic, "delta", 101, [[bids[0][0], "0"]], [], T0 + 1, venue=venue))
    ref = Ref(bids, asks)
    ref.apply([[bids[0][0], "0"]], [])
    boundary = (T0 // HOUR_NS + 1) * HOUR_NS
    assert keeper.checkpoint_all(boundary) == 1
    assert keeper.checkpoint_all(boundary) == 0  # once per boundary
    (cp,) = sink.of("book_checkpoint")
    assert cp.recv_ns == boundary and cp.stream == topic
    codec = codec_for(venue, "book_checkpoint")
    decoded = codec.decode(cp.payload)
    assert decoded.exact
    assert codec.render(decoded.fields, cp.stream, decoded.envelope) == cp.payload
    body = orjson.loads(cp.payload)
    assert body["type"] == "snapshot" and body["topic"] == topic
    assert (body["data"]["b"], body["data"]["a"]) == ref.levels()
    assert body["data"]["u"] == 101


def test_binance_usdm_checkpoint_roundtrips() -> None:
    sink = Sink()
    keeper = BookKeeper(USDM, sink, rest=FakeRest(), checkpoints=False)
    keeper.observe(
        depth_msg("btcusdt@depth", 10, 12, [["60000.10", "1.234"]], [], T0, venue=USDM, pu=9)
    )
    book = keeper._books["btcusdt@depth"]  # load a snapshot by hand (no run task here)
    resp = ok(
        snapshot_body(11, [["60000.10", "0.500"], ["59999.90", "2.000"]], [["60000.20", "1.000"]]),
        T0,
    )
    assert keeper._use_snapshot(book, resp) == "done"  # type: ignore[arg-type]
    boundary = (T0 // HOUR_NS + 1) * HOUR_NS
    keeper.checkpoint_all(boundary)
    (cp,) = sink.of("book_checkpoint")
    codec = codec_for(USDM, "book_checkpoint")
    decoded = codec.decode(cp.payload)
    assert decoded.exact and codec.render(decoded.fields, cp.stream, 0) == cp.payload
    assert orjson.loads(cp.payload) == {
        "lastUpdateId": 12,
        "bids": [["60000.10", "1.234"], ["59999.90", "2.000"]],
        "asks": [["60000.20", "1.000"]],
    }


# --------------------------------------------------------------------------------------------
# End to end against the local simulator (real HTTP and WebSocket on 127.0.0.1)


async def _pump_binance(
    venue: str, ws: Any, sink: Sink, keeper: BookKeeper, diff: str, checks_wanted: int
) -> int:
    """Feed frames into the sink until ``checks_wanted`` partial-depth views matched the
    keeper's book at the same update id; returns the number of checks."""
    checks = 0
    seq = 0
    with trio.fail_after(20):
        while checks < checks_wanted:
            frame = await ws.get_message()
            payload = frame.encode() if isinstance(frame, str) else frame
            stream = bn.stream_of(payload)
            if stream is None:
                continue
            info = bn.classify(venue, stream)
            assert info is not None
            seq += 1
            sink.put(
                Message(
                    venue=venue,
                    stream=stream,
                    channel=info.channel,
                    symbol=info.symbol,
                    recv_ns=time.time_ns(),
                    conn="sim",
                    seq=seq,
                    payload=payload,
                )
            )
            if info.channel != "depthPartial":
                continue
            data = orjson.loads(payload)["data"]
            part_id = data.get("lastUpdateId", data.get("u"))
            book = keeper.book(diff)
            if book is None or keeper.update_id(diff) != part_id:
                continue
            top_b = [[Decimal(p), Decimal(q)] for p, q in book[0][:5]]
            top_a = [[Decimal(p), Decimal(q)] for p, q in book[1][:5]]
            bids = data.get("bids", data.get("b"))
            asks = data.get("asks", data.get("a"))
            assert [[Decimal(p), Decimal(q)] for p, q in bids] == top_b
            assert [[Decimal(p), Decimal(q)] for p, q in asks] == top_a
            checks += 1
    return checks


@pytest.mark.parametrize("venue", [SPOT, USDM])
async def test_binance_keeper_against_simulator(venue: str) -> None:
    route = "/public" if venue == USDM else ""
    diff, part = "btcusdt@depth@100ms", "btcusdt@depth5@100ms"
    faults = (Fault("stale_snapshot", venue=venue, count=1, duration=5.0),)
    async with running(config(venue, rate=400, faults=faults)) as (sim, urls):
        url = f"{urls.ws(venue)}{route}/stream?streams={diff}/{part}"
        sink = Sink()
        async with (
            RestClient(urls.rest(venue), binance_policy(venue)) as rest,
            open_websocket_url(url) as ws,
            trio.open_nursery() as nursery,
        ):
            keeper = BookKeeper(venue, sink, rest=rest, checkpoints=False, snapshot_delay=0.2)
            sink.observers.append(keeper.observe)
            await nursery.start(keeper.run)
            assert await _pump_binance(venue, ws, sink, keeper, diff, 3) == 3
            assert keeper.statistics().snapshots_too_old >= 1
            sim.inject(Fault("drop", venue=venue, stream=diff, count=2))
            assert await _pump_binance(venue, ws, sink, keeper, diff, 3) == 3
            nursery.cancel_scope.cancel()
    st = keeper.statistics()
    assert st.gaps == 1 and st.resyncs == 1 and st.snapshots_fetched >= 3
    events = [s["event"] for s in sink.sessions()]
    assert events == ["gap", "resync"]
    for m in sink.of("depth_snapshot"):
        codec = codec_for(venue, "depth_snapshot")
        d = codec.decode(m.payload)
        assert d.exact and codec.render(d.fields, m.stream, d.envelope) == m.payload
    keeper.checkpoint_all((time.time_ns() // HOUR_NS + 1) * HOUR_NS)
    (cp,) = sink.of("book_checkpoint")
    codec = codec_for(venue, "book_checkpoint")
    d = codec.decode(cp.payload)
    assert d.exact and codec.render(d.fields, cp.stream, d.envelope) == cp.payload


async def test_bybit_keeper_against_simulator() -> None:
    venue, topic = LINEAR, "orderbook.50.BTCUSDT"
    async with running(config(venue, rate=400)) as (sim, urls):
        sink = Sink()
        calls: Calls = []
        async with open_websocket_url(urls.ws(venue) + "/v5/public/linear") as ws:

            def resubscribe(v: str, topics: Sequence[str]) -> bool:
                calls.append((v, list(topics)))

                async def send() -> None:  # in order, like ShardRunner.resubscribe
                    for op in ("unsubscribe", "subscribe"):
                        await ws.send_message(orjson.dumps({"op": op, "args": topics}).decode())

                nursery.start_soon(send)
                return True

            keeper = BookKeeper(venue, sink, resubscribe=resubscribe, checkpoints=False)
            sink.observers.append(keeper.observe)
            async with trio.open_nursery() as nursery:
                await nursery.start(keeper.run)
                await ws.send_message(orjson.dumps({"op": "subscribe", "args": [topic]}).decode())

                async def pump(n: int) -> None:
                    with trio.fail_after(20):
                        got = 0
                        while got < n:
                            frame = await ws.get_message()
                            payload = frame.encode() if isinstance(frame, str) else frame
                            if bb.topic_of(payload) != topic:
                                continue
                            got += 1
                            sink.put(
                                Message(
                                    venue=venue,
                                    stream=topic,
                                    channel="orderbook",
                                    symbol="BTCUSDT",
                                    recv_ns=time.time_ns(),
                                    conn="sim",
                                    seq=got,
                                    payload=payload,
                                )
                            )

                await pump(20)
                assert keeper.book(topic) is not None and calls == []
                sim.inject(Fault("drop", venue=venue, stream=topic, count=2))
                await pump(40)
                assert calls == [(venue, [topic])]
                sim.inject(Fault("book_reset", venue=venue, symbol="BTCUSDT"))
                await pump(40)
                nursery.cancel_scope.cancel()
    assert keeper.book(topic) is not None
    events = [(s["event"], s.get("reason")) for s in sink.sessions()]
    assert ("gap", "u != previous u + 1") in events and ("resync", "restart") in events
    st = keeper.statistics()
    assert st.gaps == 1 and st.resubscribes == 1 and st.resyncs == 2
    keeper.checkpoint_all((time.time_ns() // HOUR_NS + 1) * HOUR_NS)
    (cp,) = sink.of("book_checkpoint")
    codec = codec_for(venue, "book_checkpoint")
    d = codec.decode(cp.payload)
    assert d.exact and codec.render(d.fields, cp.stream, d.envelope) == cp.payload
