"""The archive: lossless round trip, layout, atomic files, compaction, crash recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recorder import ArchiveWriter, Message
from recorder.archive._reader import list_partitions
from recorder.archive._schema import TMP_DIR
from replay import open_archive
from tests.archive_helpers import HOUR_NS, T0, binance_trade, mixed_messages

GRACE = 5_000_000_000


def write_all(root: Path, msgs: list[Message], *, flush_every: int = 50) -> ArchiveWriter:
    w = ArchiveWriter(str(root), writer_id="test", fsync=False)
    for i, m in enumerate(msgs):
        w.add(m)
        if i % flush_every == flush_every - 1:
            w.flush()
    w.flush()
    return w


def sort(msgs: list[Message]) -> list[Message]:
    return sorted(msgs, key=Message.sort_key)


def test_round_trip_across_an_hour_boundary_is_identical(tmp_path: Path) -> None:
    msgs = mixed_messages(120)  # 10:59:00 .. 11:01:00
    w = write_all(tmp_path, msgs)
    got = list(open_archive(str(tmp_path)))
    assert got == sort(msgs)
    # Byte for byte, and field by field (the typed columns, not just the payload).
    assert [m.payload for m in got] == [m.payload for m in sort(msgs)]
    assert [m.fields for m in got] == [m.fields for m in sort(msgs)]
    # Every row re-rendered exactly: no raw bytes were needed.
    assert w.statistics().raw_rows == 0
    hours = {p.key.hour for p in list_partitions(str(tmp_path))[1]}
    assert hours == {10, 11}


def test_compaction_leaves_one_file_per_partition_and_same_content(tmp_path: Path) -> None:
    msgs = mixed_messages(120)
    w = write_all(tmp_path, msgs, flush_every=37)
    before = list(open_archive(str(tmp_path)))
    closed = w.compact_closed_hours(T0 + HOUR_NS * 2, GRACE)
    assert closed > 0
    _, parts = list_partitions(str(tmp_path))
    for p in parts:
        names = [os.path.basename(x) for x in p.paths]
        if p.key.hour == 10:
            assert names == ["data-test.parquet"]
            meta = pq.ParquetFile(p.paths[0]).metadata
            assert meta.row_group(0).column(0).compression == "ZSTD"  # kept for years
    assert list(open_archive(str(tmp_path))) == before


def test_hive_layout_schema_and_metadata(tmp_path: Path) -> None:
    write_all(tmp_path, mixed_messages(5))
    files = sorted(tmp_path.glob("venue=*/channel=*/symbol=*/date=*/hour=*/*.parquet"))
    assert files
    rel = files[0].relative_to(tmp_path).parts
    assert [p.split("=")[0] for p in rel[:5]] == ["venue", "channel", "symbol", "date", "hour"]
    trade = next(f for f in files if "channel=trade" in str(f) and "binance-spot" in str(f))
    pf = pq.ParquetFile(trade)
    meta = pf.schema_arrow.metadata
    assert meta[b"ticktape.format_version"] == b"1"
    assert b"ticktape.recorder_version" in meta
    # Part files (short-lived, thousands per flush) are snappy; compacted files zstd.
    assert pf.metadata.row_group(0).column(0).compression == "SNAPPY"
    cols = pf.schema_arrow.names
    assert cols[:5] == ["recv_time", "conn", "seq", "stream", "envelope"]
    assert cols[-1] == "raw"
    t = pf.read()
    recv = t.column("recv_time").cast("int64").to_pylist()
    assert recv == sorted(recv)


def test_unknown_field_is_kept_byte_exact_with_raw_bytes(tmp_path: Path) -> None:
    m = binance_trade(1, T0)
    odd = Message(
        venue=m.venue,
        stream=m.stream,
        channel=m.channel,
        symbol=m.symbol,
        recv_ns=m.recv_ns + 1,
        conn=m.conn,
        seq=2,
        payload=m.payload[:-2] + b',"zz":1}}',
    )
    w = write_all(tmp_path, [m, odd])
    got = list(open_archive(str(tmp_path)))
    assert [g.payload for g in got] == [m.payload, odd.payload]
    assert got[1].fields["price"] == m.fields["price"]
    assert w.statistics().raw_rows == 1


def test_malformed_frame_goes_to_unparsed_with_its_bytes(tmp_path: Path) -> None:
    m = binance_trade(1, T0)
    bad = Message(
        venue=m.venue,
        stream=m.stream,
        channel=m.channel,
        symbol=m.symbol,
        recv_ns=m.recv_ns + 1,
        conn=m.conn,
        seq=2,
        payload=m.payload[:40],
    )
    w = write_all(tmp_path, [m, bad])
    got = list(open_archive(str(tmp_path)))
    assert [g.channel for g in got] == ["trade", "unparsed"]
    assert got[1].payload == bad.payload
    assert "invalid JSON" in got[1].fields["error"]
    assert got[1].fields["expected_channel"] == "trade"
    assert w.statistics().unparsed_rows == 1


def test_full_disk_keeps_data_in_memory_and_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = ArchiveWriter(str(tmp_path), writer_id="test", fsync=False)
    msgs = mixed_messages(3)
    w.add_many(msgs)
    real_osfile = pa.OSFile

    def full_disk(path: str, mode: str = "r") -> object:
        if "w" in mode:
            raise OSError(28, "No space left on device")
        return real_osfile(path, mode)

    monkeypatch.setattr(pa, "OSFile", full_disk)
    assert w.flush() == 0
    st = w.statistics()
    assert st.write_errors > 0 and st.pending_rows == len(msgs)
    assert "No space left" in (st.last_error or "")
    monkeypatch.setattr(pa, "OSFile", real_osfile)
    assert w.flush() == len(msgs)
    assert list(open_archive(str(tmp_path))) == sort(msgs)
    assert not list((tmp_path / TMP_DIR).rglob("*.tmp"))


def test_polars_and_duckdb_read_one_channel_across_hours_and_symbols(tmp_path: Path) -> None:
    write_all(tmp_path, mixed_messages(120))
    glob = str(tmp_path / "venue=binance-spot" / "channel=trade" / "**" / "*.parquet")
    df = pl.scan_parquet(glob, hive_partitioning=True).collect()
    assert df.height == 240
    assert set(df["symbol"].unique()) == {"BTCUSDT", "ETHUSDT"}
    assert df.schema["price"] == pl.Float64
    assert df.schema["recv_time"] == pl.Datetime("ns", "UTC")
    assert df.schema["trade_time"] == pl.Datetime("ms", "UTC")
    assert sorted(df["hour"].unique().to_list()) == [10, 11]
    assert df.select(pl.col("price").min()).item() >= 61000
    con = duckdb.connect()
    row = con.execute(
        f"select count(*), count(distinct symbol), min(price), max(hour) "
        f"from read_parquet('{glob}', hive_partitioning=1)"
    ).fetchone()
    assert row is not None
    assert row[0] == 240 and row[1] == 2 and row[2] >= 61000 and int(row[3]) == 11
    kind = con.execute(
        "select typeof(price), typeof(recv_time) "
        f"from read_parquet('{glob}', hive_partitioning=1) limit 1"
    ).fetchone()
    assert kind is not None and kind[0] == "DOUBLE"
    assert kind[1] in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ_NS")


WRITER_SCRIPT = r"""
import sys, time
sys.path.insert(0, sys.argv[3])
from recorder import ArchiveWriter
from tests.archive_helpers import mixed_messages, T0
root, n = sys.argv[1], int(sys.argv[2])
w = ArchiveWriter(root, writer_id="crash", fsync=True)
w.recover(T0, 5_000_000_000)
msgs = mixed_messages(n, step_ns=500_000_000)
batch = 40
for i in range(0, len(msgs), batch):
    w.add_many(msgs[i:i + batch])
    w.flush()
    print(i + batch, flush=True)   # rows flushed so far
    time.sleep(0.02)
time.sleep(60)
"""


def test_sigkill_mid_hour_then_restart_loses_only_unflushed_rows(tmp_path: Path) -> None:
    root = tmp_path / "arch"
    repo = str(Path(__file__).resolve().parent.parent)
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT)
    n = 240  # 2 minutes of messages across 11:00
    proc = subprocess.Popen(
        [sys.executable, str(script), str(root), str(n), repo],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    flushed = 0
    seen_files: set[str] = set()
    try:
        deadline = time.monotonic() + 60
        while flushed < 600 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            flushed = int(line)
            # A concurrent reader never sees a partial file.
            for f in root.glob("venue=*/**/*.parquet"):
                assert pq.ParquetFile(f).metadata.num_rows > 0  # a partial file would raise
                seen_files.add(f.name)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert flushed >= 600 and seen_files
    all_msgs = sort(mixed_messages(n, step_ns=500_000_000))
    survived = list(open_archive(str(root)))
    # Everything that was flushed before the kill is there, identical; nothing else is.
    flushed_set = {
        (m.recv_ns, m.conn, m.seq) for m in mixed_messages(n, step_ns=500_000_000)[:flushed]
    }
    assert {(m.recv_ns, m.conn, m.seq) for m in survived} >= flushed_set
    assert all(
        m == next(x for x in all_msgs if x.sort_key() == m.sort_key()) for m in survived[:50]
    )
    # Restart: recovery removes temp leftovers and compacts closed hours; content unchanged.
    (root / TMP_DIR / "crash").mkdir(parents=True, exist_ok=True)
    (root / TMP_DIR / "crash" / "part-crash-x-000001.parquet.tmp").write_bytes(b"partial")
    w = ArchiveWriter(str(root), writer_id="crash", fsync=False)
    compacted = w.recover(T0 + 2 * HOUR_NS, GRACE)
    assert compacted > 0
    assert not list((root / TMP_DIR).rglob("*.tmp"))
    assert list(open_archive(str(root))) == survived
    for p in list_partitions(str(root))[1]:
        assert [os.path.basename(x) for x in p.paths] == ["data-crash.parquet"]
