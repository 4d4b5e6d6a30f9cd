"""The batched reader: global (recv_ns, conn, seq) order across files whatever the batch
boundaries and ties, time selections, early exits, errors, and table_to_messages."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from recorder import ArchiveWriter, Message
from recorder.archive._reader import list_partitions, read_partition, table_to_messages
from recorder.core._errors import ArchiveError
from replay import open_archive
from replay.reader._archive import ArchiveReader
from replay.reader._selection import Selection
from tests.archive_helpers import HOUR_NS, T0, binance_depth, binance_trade, mixed_messages


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


def test_table_to_messages_is_what_replay_yields(tmp_path: Path) -> None:
    msgs = mixed_messages(30)
    bad = msgs[0]
    msgs.append(
        Message(
            venue=bad.venue,
            stream=bad.stream,
            channel=bad.channel,
            symbol=bad.symbol,
            recv_ns=bad.recv_ns + 7,
            conn=bad.conn,
            seq=10**6,
            payload=bad.payload[:30],  # undecodable: stored as unparsed, with its error
        )
    )
    w = ArchiveWriter(str(tmp_path), writer_id="t", fsync=False)
    w.add_many(msgs)
    w.flush()
    fs, parts = list_partitions(str(tmp_path))
    rebuilt = [m for p in parts for m in table_to_messages(read_partition(fs, p), p.key)]
    assert sorted(rebuilt, key=Message.sort_key) == list(open_archive(str(tmp_path)))
    unparsed = [m for m in rebuilt if m.channel == "unparsed"]
    assert len(unparsed) == 1 and "invalid JSON" in unparsed[0].fields["error"]


def test_replayed_messages_equal_recorded_ones_and_decode_lazily() -> None:
    m = binance_trade(3, T0)
    r = Message._replayed(m.venue, m.stream, m.channel, m.symbol, m.recv_ns, m.conn, 3, m.payload)
    assert r._fields is None
    assert r == m and hash(r) == hash(m)
    assert r.fields["trade_id"] == 1003 and r.event_ns == m.event_ns
