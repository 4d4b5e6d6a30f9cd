"""The batched reader: global (recv_ns, conn, seq) order across files whatever the batch
boundaries and ties, time selections, early exits, errors, undecodable frames; and from Trio,
paced on Trio's clock, with the files read off the event loop."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
import trio

from recorder import ArchiveWriter, Message
from recorder.core._errors import ArchiveError
from replay import open_archive
from replay.reader import ArchiveReader, Selection
from tests.archive_helpers import (
    HOUR_NS,
    T0,
    SlowFiles,
    binance_depth,
    binance_trade,
    max_tick_gap,
    mixed_messages,
    slow_root,
)


def _tied_messages(n: int) -> list[Message]:
    """Messages of many files and two connections, most sharing their receive time."""
    rng = random.Random(7)
    out = []
    seqs = {"a": 0, "b": 0}
    for i in range(n):
        recv = T0 + rng.randrange(0, 40) * 1_000  # few distinct times: ties everywhere
        sym = rng.choice(["BTCUSDT", "ETHUSDT", "SOLUSDT"])
        m = (binance_trade if rng.random() < 0.6 else binance_depth)(i, recv, sym)
        conn = rng.choice(["a", "b"])
        seqs[conn] += 1
        out.append(
            Message(
                venue=m.venue,
                stream=m.stream,
                channel=m.channel,
                symbol=m.symbol,
                recv_ns=recv,
                conn=conn,
                seq=seqs[conn],
                payload=m.payload,
            )
        )
    return out


@pytest.mark.parametrize("batch_rows", [1, 3, 50, 8192])
def test_order_across_files_with_ties_and_any_batch_size(tmp_path: Path, batch_rows: int) -> None:
    msgs = _tied_messages(600)
    w = ArchiveWriter(str(tmp_path), writer_id="t", fsync=False)
    for part in (msgs[:250], msgs[250:]):  # two part files per partition
        w.add_many(part)
        w.flush()
    got = list(ArchiveReader(str(tmp_path), batch_rows=batch_rows))
    assert got == sorted(msgs, key=Message.sort_key)


def test_time_selection_and_hours(tmp_path: Path) -> None:
    msgs = mixed_messages(60, step_ns=HOUR_NS // 20)  # three hours
    w = ArchiveWriter(str(tmp_path), writer_id="t", fsync=False)
    w.add_many(msgs)
    w.flush()
    start, end = T0 + HOUR_NS // 3, T0 + 2 * HOUR_NS
    got = list(open_archive(str(tmp_path), start_ns=start, end_ns=end))
    want = sorted((m for m in msgs if start <= m.recv_ns < end), key=Message.sort_key)
    assert got == want
    assert list(ArchiveReader(str(tmp_path), Selection.of(end_ns=T0), batch_rows=2)) == []


def test_stopping_early_ends_the_reading_threads(tmp_path: Path) -> None:
    w = ArchiveWriter(str(tmp_path), writer_id="t", fsync=False)
    w.add_many(mixed_messages(300))
    w.flush()
    before = threading.active_count()
    it = iter(ArchiveReader(str(tmp_path), batch_rows=16))
    assert next(it).recv_ns == T0
    del it
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


def test_an_unreadable_file_raises_in_the_consumer(tmp_path: Path) -> None:
    w = ArchiveWriter(str(tmp_path), writer_id="t", fsync=False)
    w.add_many(mixed_messages(5))
    w.flush()
    victim = next(tmp_path.rglob("*.parquet"))
    victim.write_bytes(b"not parquet at all")
    with pytest.raises(ArchiveError, match="cannot read"):
        list(open_archive(str(tmp_path)))


def test_an_undecodable_frame_is_replayed_as_unparsed_with_its_error(tmp_path: Path) -> None:
    msgs = mixed_messages(30)
    bad = msgs[0]
    broken = Message(
        venue=bad.venue,
        stream=bad.stream,
        channel=bad.channel,
        symbol=bad.symbol,
        recv_ns=bad.recv_ns + 7,
        conn=bad.conn,
        seq=10**6,
        payload=bad.payload[:30],  # undecodable: stored as unparsed, with its error
    )
    w = ArchiveWriter(str(tmp_path), writer_id="t", fsync=False)
    w.add_many([*msgs, broken])
    w.flush()
    got = list(open_archive(str(tmp_path)))
    assert [m for m in got if m.channel != "unparsed"] == sorted(msgs, key=Message.sort_key)
    unparsed = [m for m in got if m.channel == "unparsed"]
    assert len(unparsed) == 1
    (u,) = unparsed
    assert (u.payload, u.recv_ns, u.seq, u.stream) == (
        broken.payload,
        broken.recv_ns,
        10**6,
        bad.stream,
    )
    assert "invalid JSON" in u.fields["error"] and u.fields["expected_channel"] == bad.channel


def test_replayed_messages_equal_recorded_ones_and_decode_lazily() -> None:
    m = binance_trade(3, T0)
    r = Message._replayed(m.venue, m.stream, m.channel, m.symbol, m.recv_ns, m.conn, 3, m.payload)
    assert r._fields is None
    assert r == m and hash(r) == hash(m)
    assert r.fields["trade_id"] == 1003 and r.event_ns == m.event_ns


def _write(root: Path, msgs: list[Message]) -> None:
    w = ArchiveWriter(str(root), writer_id="t", fsync=False)
    w.add_many(msgs)
    w.flush()


async def test_replay_from_slow_storage_leaves_the_event_loop_free(tmp_path: Path) -> None:
    _write(tmp_path, mixed_messages(120, step_ns=HOUR_NS // 40))  # three hours, many files
    want = list(open_archive(str(tmp_path)))
    storage = SlowFiles(delay=0.05)
    reader = ArchiveReader(slow_root(str(tmp_path), storage))
    got: list[Message] = []
    worst: list[float] = []
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(max_tick_gap, 0.01, done, worst)
        t0 = trio.current_time()
        async with reader.stream() as messages:
            async for m in messages:
                got.append(m)
        elapsed = trio.current_time() - t0
        done.set()
    assert got == want
    # The reads took far longer than the bound: had any been made on the event loop, the
    # 10 ms ticker would have stalled behind it.
    assert elapsed > 1.0
    assert worst[0] < 0.25
    assert storage.opened > 0 and storage.open_files == 0


async def test_stream_paces_on_trios_clock(tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    _write(tmp_path, [binance_trade(i, T0 + i * 2_000_000_000) for i in range(5)])
    seen: list[float] = []
    async with ArchiveReader(str(tmp_path)).stream(speed=2.0) as messages:
        t0 = trio.current_time()
        async for _ in messages:
            seen.append(trio.current_time() - t0)
    assert seen == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])


async def test_leaving_a_stream_early_closes_every_file(tmp_path: Path) -> None:
    _write(tmp_path, mixed_messages(300))
    storage = SlowFiles(delay=0.0)
    async with ArchiveReader(slow_root(str(tmp_path), storage), batch_rows=16).stream() as ms:
        async for m in ms:
            assert m.recv_ns == T0
            break
    assert storage.opened > 0 and storage.open_files == 0


async def test_a_reading_error_is_raised_from_the_stream_as_itself(tmp_path: Path) -> None:
    _write(tmp_path, mixed_messages(5))
    next(tmp_path.rglob("*.parquet")).write_bytes(b"not parquet at all")
    with pytest.raises(ArchiveError, match="cannot read"):
        async with ArchiveReader(str(tmp_path)).stream() as messages:
            async for _ in messages:
                pass


async def test_cancelling_a_stream_stops_the_reading(tmp_path: Path) -> None:
    _write(tmp_path, mixed_messages(300))
    storage = SlowFiles(delay=0.01)
    got = 0
    with trio.move_on_after(0.3) as scope:
        async with ArchiveReader(slow_root(str(tmp_path), storage)).stream(speed=1.0) as ms:
            async for _ in ms:  # 1 s apart: the scope ends during a wait
                got += 1
    assert scope.cancelled_caught and 0 < got < 300
    assert storage.open_files == 0
