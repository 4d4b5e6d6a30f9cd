"""Order-book reconstruction from archives: checkpoints, diffs, gaps, REST snapshots, Bybit."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from recorder import ArchiveWriter, Message
from recorder.venues.bybit import checkpoint_payload
from replay import open_archive
from replay.books._book import BookState, OrderBook
from replay.books._replay import BookBuilder, book_states
from tests.archive_helpers import HOUR_NS

SEC = 1_000_000_000
H0 = 1_795_255_200_000_000_000  # 2026-11-21 10:00:00 UTC
H1 = H0 + HOUR_NS
H2 = H1 + HOUR_NS
SYM = "BTCUSDT"
STREAM = "btcusdt@depth@100ms"

Book = tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]


def _full(book: OrderBook) -> Book:
    return tuple(book.bids()), tuple(book.asks())


def _lv(levels: list[tuple[str, str]]) -> list[list[str]]:
    return [[p, q] for p, q in levels]


# --------------------------------------------------------------------------------------------
# OrderBook


def test_order_book_basics() -> None:
    b = OrderBook(
        bids=[(99.0, 1.0), (98.5, 2.0), (97.0, 0.0)],
        asks=[{"price": 100.5, "qty": 3.0}, {"price": 101.0, "qty": 1.0}],
        update_id=7,
    )
    assert b.depth() == (2, 2)
    assert b.best_bid == (99.0, 1.0)
    assert b.best_ask == (100.5, 3.0)
    assert b.mid == pytest.approx(99.75)
    assert b.spread == pytest.approx(1.5)
    assert b.imbalance(1) == pytest.approx((1 - 3) / 4)
    assert b.imbalance(2) == pytest.approx((3 - 4) / 7)
    b.apply(bids=[(99.5, 4.0), (98.5, 0.0), (50.0, 0.0)], asks=[(100.5, 0.0)], update_id=8)
    assert b.bids() == [(99.5, 4.0), (99.0, 1.0)]
    assert b.asks() == [(101.0, 1.0)]
    assert b.update_id == 8
    assert b.top(1) == ([(99.5, 4.0)], [(101.0, 1.0)])
    assert not b.crossed
    b.apply(bids=[(101.0, 1.0)])
    assert OrderBook(b.bids(), b.asks()).crossed
    s = b.state(123, 1)
    assert s == BookState(123, 8, ((101.0, 1.0),), ((101.0, 1.0),))
    assert s.spread == 0.0
    empty = OrderBook()
    assert empty.mid is None and empty.imbalance(5) is None and empty.best_bid is None


# --------------------------------------------------------------------------------------------
# Synthetic, protocol-correct Binance depth streams


@dataclass
class BinanceSim:
    """A book that moves by random diffs; builds the messages the recorder would archive."""

    venue: str = "binance-spot"
    seed: int = 1
    uid: int = 1_000
    truth: OrderBook = field(default_factory=OrderBook)
    history: dict[int, Book] = field(default_factory=dict)
    seq: int = 0
    prev_final: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.truth.load(
            [(100.0 - 0.5 * i, 1.0 + i) for i in range(1, 15)],
            [(100.0 + 0.5 * i, 2.0 + i) for i in range(1, 15)],
            self.uid,
        )
        self.prev_final = self.uid
        self.history[self.uid] = _full(self.truth)

    def _nextseq(self) -> int:
        self.seq += 1
        return self.seq

    def _levels(self, bids: bool) -> list[tuple[str, str]]:
        out: dict[str, str] = {}
        for _ in range(self.rng.randint(1, 3)):
            i = self.rng.randint(1, 25)
            p = 100.0 - 0.5 * i if bids else 100.0 + 0.5 * i
            q = 0 if self.rng.random() < 0.3 else self.rng.randint(1, 99_999)
            out[f"{p:.2f}"] = f"{q / 1000:.8f}"
        return list(out.items())

    def diff(self, recv_ns: int, *, emit: bool = True) -> Message | None:
        """Advance the truth by one event (with ``emit=False``: an event the recorder lost)."""
        first = self.uid + 1
        final = self.uid + self.rng.randint(1, 4)
        b, a = self._levels(True), self._levels(False)
        self.truth.apply(
            [(float(p), float(q)) for p, q in b], [(float(p), float(q)) for p, q in a], final
        )
        prev, self.prev_final = self.prev_final, final
        self.uid = final
        self.history[final] = _full(self.truth)
        if not emit:
            return None
        e_ms = recv_ns // 1_000_000 - 2
        if self.venue == "binance-usdm":
            data = {
                "e": "depthUpdate",
                "E": e_ms,
                "T": e_ms - 1,
                "s": SYM,
                "U": first,
                "u": final,
                "pu": prev,
                "b": _lv(b),
                "a": _lv(a),
            }
        else:
            data = {"e": "depthUpdate", "E": e_ms, "s": SYM, "U": first, "u": final}
            data |= {"b": _lv(b), "a": _lv(a)}
        payload = orjson.dumps({"stream": STREAM, "data": data})
        return Message(
            venue=self.venue,
            stream=STREAM,
            channel="depth",
            symbol=SYM,
            recv_ns=recv_ns,
            conn=f"{self.venue}.0#1@t",
            seq=self._nextseq(),
            payload=payload,
        )

    def snapshot(self, recv_ns: int, channel: str, last_update_id: int | None = None) -> Message:
        """A REST snapshot (``depth_snapshot``) or checkpoint of the truth at an update id."""
        uid = self.uid if last_update_id is None else last_update_id
        bids, asks = self.history[uid]
        body: dict[str, object] = {"lastUpdateId": uid}
        if self.venue == "binance-usdm" and channel == "depth_snapshot":
            body |= {"E": recv_ns // 1_000_000 - 5, "T": recv_ns // 1_000_000 - 6}
        body["bids"] = [[f"{p:.2f}", f"{q:.8f}"] for p, q in bids]
        body["asks"] = [[f"{p:.2f}", f"{q:.8f}"] for p, q in asks]
        return Message(
            venue=self.venue,
            stream=STREAM if channel == "book_checkpoint" else "rest:depth",
            channel=channel,
            symbol=SYM,
            recv_ns=recv_ns,
            conn=f"rest:{self.venue}" if channel == "depth_snapshot" else f"book:{self.venue}",
            seq=self._nextseq(),
            payload=orjson.dumps(body),
        )


def _write(root: Path, msgs: list[Message], compact_before: int | None = None) -> None:
    w = ArchiveWriter(str(root), writer_id="t", fsync=False)
    for i, m in enumerate(msgs):
        w.add(m)
        if i % 97 == 96:
            w.flush()
    w.flush()
    if compact_before is not None:
        w.compact_closed_hours(compact_before, 0)


@dataclass
class Scenario:
    sim: BinanceSim
    msgs: list[Message]
    rest_id: int  # lastUpdateId of the in-sync REST snapshot at 10:20
    gap_at: int  # recv time of the first diff after the lost ones (11:20)
    resync_at: int  # recv time of the REST snapshot that re-syncs (11:25)
    tail_gap_at: int  # a last gap with no snapshot after it (11:50)


def binance_scenario(venue: str = "binance-spot") -> Scenario:
    """10:00 checkpoint, diffs every 2 s, an in-sync REST snapshot at 10:20, the 11:00
    checkpoint, lost diffs at 11:20 re-synced by a REST snapshot at 11:25 (fetched while the
    recorder buffered), and a final gap at 11:50 that nothing repairs."""
    sim = BinanceSim(venue)
    msgs: list[Message] = [sim.snapshot(H0, "book_checkpoint")]
    step = 2 * SEC
    t = H0 + SEC
    rest_id = gap_at = resync_at = tail_gap_at = 0
    while t < H2 - 5 * SEC:
        if t == H1 + SEC:
            msgs.append(sim.snapshot(H1, "book_checkpoint"))
            # Received at the boundary, after the checkpoint was taken; sorts before it.
            m = sim.diff(H1)
            assert m is not None
            msgs.append(m)
        if t == H0 + 20 * 60 * SEC + SEC:
            # In sync: the REST snapshot is at an id the stream reached a few events ago.
            rest_id = sim.uid
            m = sim.diff(t)
            assert m is not None
            msgs.append(m)
            msgs.append(sim.snapshot(t + 300_000_000, "depth_snapshot", rest_id))
            t += step
            continue
        if t == H1 + 20 * 60 * SEC + SEC:
            for _ in range(3):  # lost
                sim.diff(t, emit=False)
            gap_at = t
            m = sim.diff(t)
            assert m is not None
            msgs.append(m)
            t += step
            # The recorder buffers and fetches a snapshot; it arrives 5 minutes later, at an
            # id reached one minute before it was received.
            while t < H1 + 25 * 60 * SEC:
                if t == H1 + 24 * 60 * SEC + SEC:
                    snap_id = sim.uid
                m = sim.diff(t)
                assert m is not None
                msgs.append(m)
                t += step
            resync_at = t
            msgs.append(sim.snapshot(t, "depth_snapshot", snap_id))
            t += step
            continue
        if t == H1 + 50 * 60 * SEC + SEC:
            sim.diff(t, emit=False)
            tail_gap_at = t
        m = sim.diff(t)
        assert m is not None
        msgs.append(m)
        t += step
    assert rest_id and gap_at and resync_at and tail_gap_at
    return Scenario(sim, msgs, rest_id, gap_at, resync_at, tail_gap_at)


def _check_against_truth(sim: BinanceSim, states: list[BookState]) -> None:
    assert states
    for s in states:
        assert s.update_id is not None
        assert (s.bids, s.asks) == sim.history[s.update_id], s.recv_ns


@pytest.mark.parametrize("venue", ["binance-spot", "binance-usdm"])
def test_binance_full_replay_matches_truth_and_reports_gaps(
    tmp_path: Path, venue: str, caplog: pytest.LogCaptureFixture
) -> None:
    sc = binance_scenario(venue)
    _write(tmp_path, sc.msgs, compact_before=H2 + HOUR_NS)
    replay = book_states(str(tmp_path), venue, SYM, depth=None)
    assert replay.stream == STREAM
    with caplog.at_level(logging.WARNING, logger="ticktape.replay.books"):
        states = list(replay)
    _check_against_truth(sc.sim, states)
    # No state inside the gaps; the two gaps are reported.
    assert not [s for s in states if sc.gap_at <= s.recv_ns < sc.resync_at]
    assert not [s for s in states if s.recv_ns >= sc.tail_gap_at]
    assert [(g.start_ns, g.end_ns, g.reason) for g in replay.gaps] == [
        (sc.gap_at, sc.resync_at, "sequence"),
        (sc.tail_gap_at, None, "sequence"),
    ]
    assert "no book from" in caplog.text
    # Re-synced at the REST snapshot, with the diffs buffered before it re-applied: the first
    # state after the gap is already past the snapshot's id.
    after = [s for s in states if s.recv_ns >= sc.resync_at]
    assert after[0].recv_ns == sc.resync_at
    last = max(
        m.fields["final_update_id"]
        for m in sc.msgs
        if m.channel == "depth" and m.recv_ns < sc.resync_at
    )
    assert after[0].update_id == last


@pytest.mark.parametrize("venue", ["binance-spot", "binance-usdm"])
def test_rebuilt_book_equals_later_rest_snapshot(tmp_path: Path, venue: str) -> None:
    """The book rebuilt from the 10:00 checkpoint and the diffs equals the REST snapshot
    recorded at 10:20 in the same archive, at the same update id."""
    sc = binance_scenario(venue)
    _write(tmp_path, sc.msgs)
    rest = next(m for m in sc.msgs if m.channel == "depth_snapshot")
    assert rest.fields["last_update_id"] == sc.rest_id
    states = list(book_states(str(tmp_path), venue, SYM, depth=None, end_ns=rest.recv_ns))
    at_id = [s for s in states if s.update_id == sc.rest_id]
    assert len(at_id) == 1
    expected_bids = tuple((lv["price"], lv["qty"]) for lv in rest.fields["bids"])
    expected_asks = tuple((lv["price"], lv["qty"]) for lv in rest.fields["asks"])
    assert (at_id[0].bids, at_id[0].asks) == (expected_bids, expected_asks)


@pytest.mark.parametrize("venue", ["binance-spot", "binance-usdm"])
def test_one_hour_from_its_checkpoint_equals_replay_from_the_start(
    tmp_path: Path, venue: str
) -> None:
    sc = binance_scenario(venue)
    _write(tmp_path, sc.msgs)
    root = str(tmp_path)
    end = H1 + 15 * 60 * SEC  # before the 11:20 gap
    whole = [s for s in book_states(root, venue, SYM, depth=5) if H1 <= s.recv_ns < end]
    alone_replay = book_states(root, venue, SYM, start_ns=H1, end_ns=end, depth=5)
    alone = list(alone_replay)
    assert alone_replay.anchor_ns == H1
    assert alone_replay.gaps == []
    # A diff received at the boundary sorts before the checkpoint (which does not hold it):
    # the lone replay keeps it and applies it after loading the checkpoint, so its first state
    # (at the boundary) is the continuous replay's state after that diff.
    assert alone[0].recv_ns == H1
    assert alone == whole
    # Sampled every 10 s: identical grids and books.
    every = 10 * SEC
    a = list(book_states(root, venue, SYM, start_ns=H1, end_ns=end, every=every, depth=5))
    w = [s for s in book_states(root, venue, SYM, every=every, depth=5) if H1 <= s.recv_ns < end]
    assert a == w
    assert [s.recv_ns for s in a] == list(range(H1, end, every))


def test_start_in_the_middle_of_an_hour_searches_back_for_the_checkpoint(
    tmp_path: Path,
) -> None:
    sc = binance_scenario()
    _write(tmp_path, sc.msgs)
    root = str(tmp_path)
    start = H0 + 30 * 60 * SEC + 500_000_000
    r = book_states(root, "binance-spot", SYM, start_ns=start, end_ns=start + 60 * SEC)
    states = list(r)
    # 10:20 REST snapshot is the latest snapshot before 10:30: replay starts there (minus the
    # pre-window of buffered diffs).
    rest = next(m for m in sc.msgs if m.channel == "depth_snapshot")
    assert r.anchor_ns == rest.recv_ns
    assert states and all(start <= s.recv_ns < start + 60 * SEC for s in states)
    _check_against_truth_topn(sc.sim, states, 20)


def test_search_back_crosses_hours_and_respects_the_lookback(tmp_path: Path) -> None:
    sc = binance_scenario()
    _write(tmp_path, [m for m in sc.msgs if m.channel != "book_checkpoint" or m.recv_ns == H0])
    root = str(tmp_path)
    start, end = H1 + 10 * 60 * SEC, H1 + 11 * 60 * SEC
    rest = next(m for m in sc.msgs if m.channel == "depth_snapshot")
    r = book_states(root, "binance-spot", SYM, start_ns=start, end_ns=end)
    states = list(r)
    assert r.anchor_ns == rest.recv_ns  # 10:20, the hour before
    assert states and r.gaps == []
    _check_against_truth_topn(sc.sim, states, 20)
    r0 = book_states(root, "binance-spot", SYM, start_ns=start, end_ns=end, lookback_hours=0)
    assert r0.anchor_ns is None
    assert list(r0) == []
    assert [g.reason for g in r0.gaps] == ["no_snapshot"]


def _check_against_truth_topn(sim: BinanceSim, states: list[BookState], n: int) -> None:
    for s in states:
        assert s.update_id is not None
        bids, asks = sim.history[s.update_id]
        assert (s.bids, s.asks) == (bids[:n], asks[:n])


def test_no_snapshot_in_range_reports_and_yields_nothing(tmp_path: Path) -> None:
    sc = binance_scenario()
    # Drop every snapshot and checkpoint: diffs alone cannot make a book.
    _write(tmp_path, [m for m in sc.msgs if m.channel == "depth"])
    r = book_states(
        str(tmp_path), "binance-spot", SYM, start_ns=H0 + 60 * SEC, end_ns=H0 + 120 * SEC
    )
    assert list(r) == []
    assert r.anchor_ns is None
    assert [g.reason for g in r.gaps] == ["no_snapshot"]
    assert r.gaps[0].end_ns is None


def test_several_streams_need_a_choice(tmp_path: Path) -> None:
    sc = binance_scenario()
    other = [
        Message(
            venue=m.venue,
            stream="btcusdt@depth",
            channel=m.channel,
            symbol=m.symbol,
            recv_ns=m.recv_ns + 1,
            conn="other",
            seq=m.seq,
            payload=m.payload.replace(b"@depth@100ms", b"@depth"),
        )
        for m in sc.msgs[:50]
        if m.channel == "depth"
    ]
    _write(tmp_path, sc.msgs + other)
    with pytest.raises(ValueError, match="several order-book streams"):
        book_states(str(tmp_path), "binance-spot", SYM)
    states = list(book_states(str(tmp_path), "binance-spot", SYM, STREAM, end_ns=H0 + 600 * SEC))
    _check_against_truth_topn(sc.sim, states, 20)


def test_unsupported_venue() -> None:
    with pytest.raises(ValueError, match="no order-book reconstruction"):
        book_states("/nonexistent", "binance-sbe", SYM)


# --------------------------------------------------------------------------------------------
# Bybit


TOPIC = "orderbook.50.BTCUSDT"
VENUE_BY = "bybit-linear"


@dataclass
class BybitSim:
    seed: int = 3
    u: int = 500
    truth: OrderBook = field(default_factory=OrderBook)
    history: dict[tuple[int, int], Book] = field(default_factory=dict)
    seq: int = 0
    epoch: int = 0  # bumped by a service restart (u starts again at 1)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.truth.load(
            [(100.0 - 0.1 * i, float(i)) for i in range(1, 10)],
            [(100.0 + 0.1 * i, float(i)) for i in range(1, 10)],
            self.u,
        )

    def _msg(self, recv_ns: int, channel: str, payload: bytes) -> Message:
        self.seq += 1
        return Message(
            venue=VENUE_BY,
            stream=TOPIC,
            channel=channel,
            symbol=SYM,
            recv_ns=recv_ns,
            conn="book:bybit-linear" if channel == "book_checkpoint" else "bybit-linear.0#1@t",
            seq=self.seq,
            payload=payload,
        )

    def _side(self, bids: bool) -> list[tuple[str, str]]:
        out: dict[str, str] = {}
        for _ in range(self.rng.randint(1, 3)):
            i = self.rng.randint(1, 15)
            p = 100.0 - 0.1 * i if bids else 100.0 + 0.1 * i
            q = 0 if self.rng.random() < 0.3 else self.rng.randint(1, 9999)
            out[f"{p:.2f}"] = f"{q / 1000:.3f}"
        return list(out.items())

    def _book_lv(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        return (
            [(f"{p:.2f}", f"{q:.3f}") for p, q in self.truth.bids()],
            [(f"{p:.2f}", f"{q:.3f}") for p, q in self.truth.asks()],
        )

    def _body(self, kind: str, ts: int, b: object, a: object) -> bytes:
        data = {"s": SYM, "b": b, "a": a, "u": self.u, "seq": 10_000 + self.u}
        return orjson.dumps({"topic": TOPIC, "type": kind, "ts": ts, "data": data, "cts": ts - 1})

    def snapshot(self, recv_ns: int, *, restart: bool = False) -> Message:
        if restart:
            self.u = 1
            self.epoch += 1
            self.truth.load([(99.0, 1.0), (98.9, 2.0)], [(100.1, 1.5), (100.2, 3.0)], self.u)
        self.history[self.epoch, self.u] = _full(self.truth)
        b, a = self._book_lv()
        return self._msg(recv_ns, "orderbook", self._body("snapshot", recv_ns // 1_000_000, b, a))

    def delta(self, recv_ns: int, *, emit: bool = True) -> Message | None:
        self.u += 1
        b, a = self._side(True), self._side(False)
        self.truth.apply(
            [(float(p), float(q)) for p, q in b], [(float(p), float(q)) for p, q in a], self.u
        )
        self.history[self.epoch, self.u] = _full(self.truth)
        if not emit:
            return None
        body = self._body("delta", recv_ns // 1_000_000, _lv(b), _lv(a))
        return self._msg(recv_ns, "orderbook", body)

    def checkpoint(self, recv_ns: int) -> Message:
        b, a = self._book_lv()
        payload = checkpoint_payload(
            VENUE_BY,
            TOPIC,
            recv_ns // 1_000_000,
            bids=b,
            asks=a,
            update_id=self.u,
            cross_seq=10_000 + self.u,
            cts_ms=recv_ns // 1_000_000 - 1,
        )
        return self._msg(recv_ns, "book_checkpoint", payload)


def bybit_scenario() -> tuple[BybitSim, list[Message], dict[str, int]]:
    sim = BybitSim()
    msgs: list[Message] = [sim.snapshot(H0 + SEC)]
    marks: dict[str, int] = {}
    t = H0 + 3 * SEC
    while t < H2 - 5 * SEC:
        if t == H1 + SEC:
            msgs.append(sim.checkpoint(H1))
            m = sim.delta(H1)  # at the boundary; the checkpoint (conn book:...) sorts first
            assert m is not None
            msgs.append(m)
        if t == H1 + 10 * 60 * SEC + SEC:
            sim.delta(t, emit=False)
            marks["gap"] = t
        if t == H1 + 12 * 60 * SEC + SEC:
            marks["resub"] = t  # resubscribed: a new snapshot
            msgs.append(sim.snapshot(t))
            t += 2 * SEC
            continue
        if t == H1 + 30 * 60 * SEC + SEC:
            marks["restart"] = t  # service restart: u = 1
            msgs.append(sim.snapshot(t, restart=True))
            t += 2 * SEC
            continue
        m = sim.delta(t)
        assert m is not None
        msgs.append(m)
        t += 2 * SEC
    return sim, msgs, marks


def test_bybit_replay_matches_truth_with_gap_and_restart(tmp_path: Path) -> None:
    sim, msgs, marks = bybit_scenario()
    _write(tmp_path, msgs)
    r = book_states(str(tmp_path), VENUE_BY, SYM, depth=None)
    assert r.stream == TOPIC
    states = list(r)
    assert states
    for s in states:
        assert s.update_id is not None
        epoch = int(s.recv_ns >= marks["restart"])
        assert (s.bids, s.asks) == sim.history[epoch, s.update_id]
    assert not [s for s in states if marks["gap"] <= s.recv_ns < marks["resub"]]
    assert [(g.start_ns, g.end_ns, g.reason) for g in r.gaps] == [
        (marks["gap"], marks["resub"], "sequence")
    ]
    after_restart = [s for s in states if s.recv_ns >= marks["restart"]]
    assert after_restart[0].update_id == 1
    assert [s.update_id for s in after_restart[:3]] == [1, 2, 3]


def test_bybit_hour_from_checkpoint_equals_replay_from_start(tmp_path: Path) -> None:
    _, msgs, marks = bybit_scenario()
    _write(tmp_path, msgs)
    root = str(tmp_path)
    end = marks["gap"]
    whole = [s for s in book_states(root, VENUE_BY, SYM, depth=10) if H1 <= s.recv_ns < end]
    r = book_states(root, VENUE_BY, SYM, start_ns=H1, end_ns=end, depth=10)
    alone = list(r)
    assert r.anchor_ns == H1
    # Here the checkpoint sorts first: the lone replay yields it, then the boundary delta.
    assert alone[0].recv_ns == alone[1].recv_ns == H1
    assert alone[1:] == whole
    every = 7 * SEC
    a = list(book_states(root, VENUE_BY, SYM, start_ns=H1, end_ns=end, every=every))
    w = [s for s in book_states(root, VENUE_BY, SYM, every=every) if H1 <= s.recv_ns < end]
    assert a == w and len(a) > 50


# --------------------------------------------------------------------------------------------
# Real captures (shared corpus): REST snapshot + diff stream of the same session


@pytest.mark.parametrize("venue", ["binance-spot", "binance-usdm"])
def test_corpus_capture_syncs_at_the_rest_snapshot(tmp_path: Path, venue: str) -> None:
    from tests._shared import corpus

    source = "btcusdt_20240808"
    msgs: list[Message] = []
    for i, line in enumerate(corpus(venue, "depthUpdate")):
        if source not in line.source or not line.exact or line.recv_ts is None:
            continue
        assert line.stream is not None
        msgs.append(
            Message(
                venue=venue,
                stream=line.stream,
                channel="depth",
                symbol=SYM,
                recv_ns=int(line.recv_ts * 1e9),
                conn="ws",
                seq=i,
                payload=line.payload,
            )
        )
    (snap,) = [x for x in corpus(venue, "depth_snapshot_rest") if source in x.source]
    assert snap.recv_ts is not None
    snap_ns = int(snap.recv_ts * 1e9)
    msgs.append(
        Message(
            venue=venue,
            stream=msgs[0].stream,
            channel="depth_snapshot",
            symbol=SYM,
            recv_ns=snap_ns,
            conn="rest",
            seq=0,
            payload=snap.payload,
        )
    )
    _write(tmp_path, msgs)
    r = book_states(str(tmp_path), venue, SYM, depth=None)
    states = list(r)
    assert len(states) > 10
    # The book starts at the REST snapshot, with the diffs buffered before it re-applied.
    assert states[0].recv_ns == snap_ns
    last_id = orjson.loads(snap.payload)["lastUpdateId"]
    assert states[0].update_id is not None and states[0].update_id >= last_id
    for s in states:
        assert s.bids and s.asks
        assert s.bids[0][0] < s.asks[0][0], "crossed book"
        assert list(s.bids) == sorted(s.bids, reverse=True)
    # Before the snapshot there was no book; the capture has holes after its first contiguous
    # run: both reported, never papered over.
    assert [(g.reason, g.end_ns) for g in r.gaps] == [("no_snapshot", snap_ns), ("sequence", None)]
    assert all(s.recv_ns < r.gaps[1].start_ns for s in states)


@pytest.mark.parametrize("venue", ["binance-spot", "binance-usdm", VENUE_BY])
def test_book_builder_over_open_archive_matches_book_states(tmp_path: Path, venue: str) -> None:
    msgs = bybit_scenario()[1] if venue == VENUE_BY else binance_scenario(venue).msgs
    _write(tmp_path, msgs)
    root = str(tmp_path)
    builder = BookBuilder(venue)
    got = [
        builder.book.state(m.recv_ns, 10)
        for m in open_archive(root, venues=[venue], symbols=[SYM])
        if builder.feed(m)
    ]
    assert got == list(book_states(root, venue, SYM, depth=10))
    assert builder.stream == (TOPIC if venue == VENUE_BY else STREAM)
