"""ticktape ls and verify on sound and corrupted archives."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from recorder import HOUR_NS, ArchiveWriter, Message
from recorder.archive._inspect import group_summary, summarize, verify
from replay.cli import cli
from tests.archive_helpers import T0, mixed_messages


def build(root: Path) -> None:
    w = ArchiveWriter(str(root), writer_id="t", fsync=False)
    w.add_many(mixed_messages(90))  # 10:59:00 .. 11:00:30
    w.flush()


def test_ls_lists_venues_channels_symbols_hours_rows_and_span(tmp_path: Path) -> None:
    build(tmp_path)
    groups = {(g["venue"], g["channel"]): g for g in group_summary(summarize(str(tmp_path)))}
    trade = groups[("binance-spot", "trade")]
    assert trade["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert trade["hours"] == 2 and trade["rows"] == 180
    assert trade["first_ns"] == T0 and trade["last_ns"] == T0 + 89 * 1_000_000_000 + 1
    assert trade["bytes"] > 0
    res = CliRunner().invoke(cli, ["ls", str(tmp_path), "--json"])
    assert res.exit_code == 0
    rows = orjson.loads(res.output)
    assert {r["venue"] for r in rows} == {"binance-spot", "binance-sbe", "bybit-linear"}


def test_verify_passes_a_sound_archive_and_reports_recorded_gaps(tmp_path: Path) -> None:
    build(tmp_path)
    rep = verify(str(tmp_path))
    assert rep.ok and rep.rows > 400 and not rep.duplicates
    assert len(rep.recorded_gaps) == 9  # the session events in the test data
    res = CliRunner().invoke(cli, ["verify", str(tmp_path)])
    assert res.exit_code == 0 and "result: OK" in res.output


def test_verify_exits_non_zero_on_an_unreadable_file(tmp_path: Path) -> None:
    build(tmp_path)
    victim = next(tmp_path.rglob("channel=trade/**/*.parquet"))
    victim.write_bytes(victim.read_bytes()[:100])
    rep = verify(str(tmp_path))
    assert not rep.ok and any(str(victim) in c for c in rep.corrupt)
    res = CliRunner().invoke(cli, ["verify", str(tmp_path)])
    assert res.exit_code == 1 and "CORRUPTION FOUND" in res.output


def test_verify_flags_duplicate_rows(tmp_path: Path) -> None:
    w = ArchiveWriter(str(tmp_path), writer_id="t", fsync=False)
    msgs = [m for m in mixed_messages(3) if m.channel == "trade"]
    w.add_many(msgs)
    w.flush()
    w.add_many(msgs[:1])  # the same connection and sequence number again
    w.flush()
    rep = verify(str(tmp_path))
    assert not rep.ok and not rep.corrupt and len(rep.duplicates) == 1
    res = CliRunner().invoke(cli, ["verify", str(tmp_path)])
    assert res.exit_code == 1 and "duplicates: 1" in res.output
    assert "result: DUPLICATES FOUND" in res.output


def test_verify_flags_an_hour_listed_twice(tmp_path: Path) -> None:
    """A compacted file and parts it absorbed, both present (a crash between writing the
    compacted file and deleting its parts): the reader skips the parts, verify says so."""
    w = ArchiveWriter(str(tmp_path), writer_id="t", fsync=False)
    msgs = [m for m in mixed_messages(3) if m.channel == "trade"]
    w.add_many(msgs)
    w.flush()
    parts = {p: p.read_bytes() for p in tmp_path.rglob("part-*.parquet")}
    assert parts
    w.recover(T0 + 2 * HOUR_NS, 0)  # compacts the closed hour
    assert not any(tmp_path.rglob("part-*.parquet"))
    assert verify(str(tmp_path)).ok
    for path, data in parts.items():
        path.write_bytes(data)
    rep = verify(str(tmp_path))
    assert not rep.ok and not rep.corrupt and not rep.duplicates
    assert len(rep.double_listed) == len({p.parent for p in parts})
    res = CliRunner().invoke(cli, ["verify", str(tmp_path)])
    assert res.exit_code == 1 and "hours listed twice" in res.output


def _bybit_book(kind: str, u: int, recv_ns: int, conn: str, seq: int) -> Message:
    topic = "orderbook.50.BTCUSDT"
    payload = (
        f'{{"topic":"{topic}","type":"{kind}","ts":{recv_ns // 1_000_000},'
        f'"data":{{"s":"BTCUSDT","b":[["16493.50","0.006"]],"a":[["16611.00","0.029"]],'
        f'"u":{u},"seq":{7961638724 + u}}},"cts":{recv_ns // 1_000_000 - 2}}}'
    ).encode()
    return Message(
        venue="bybit-linear",
        stream=topic,
        channel="orderbook",
        symbol="BTCUSDT",
        recv_ns=recv_ns,
        conn=conn,
        seq=seq,
        payload=payload,
    )


def _write(root: Path, msgs: list[Message]) -> None:
    w = ArchiveWriter(str(root), writer_id="t", fsync=False)
    w.add_many(msgs)
    w.flush()


def test_verify_finds_a_dropped_bybit_book_update(tmp_path: Path) -> None:
    ms = 1_000_000
    msgs = [_bybit_book("snapshot", 100, T0, "c#1", 1)]
    msgs += [_bybit_book("delta", u, T0 + (u - 100) * ms, "c#1", u - 98) for u in range(101, 110)]
    del msgs[5]  # u = 105 never arrived
    _write(tmp_path, msgs)
    rep = verify(str(tmp_path))
    assert rep.ok and len(rep.sequence_breaks) == 1, rep.sequence_breaks
    assert "after u=104 got u=106" in rep.sequence_breaks[0]


def test_verify_follows_a_book_across_hours_and_rollover_overlaps(tmp_path: Path) -> None:
    """Two connections overlapping (the recorder kept the first copy of each update, so each
    connection's own rows have holes) and an hour boundary: one unbroken chain. A reconnect
    after a gap starts afresh with its snapshot; a hole after it is a break again."""
    ms = 1_000_000
    start = T0 + 59 * 1_000 * ms  # 10:59:59: the book crosses into 11:00
    msgs = [_bybit_book("snapshot", 1000, start, "a", 1)]
    for u in range(1001, 1041):
        conn = "a" if u < 1010 or (u < 1030 and u % 3) else "b"
        msgs.append(_bybit_book("delta", u, start + (u - 1000) * 50 * ms, conn, u))
    msgs.append(_bybit_book("snapshot", 5000, start + 5_000 * ms, "c", 1))  # after a gap
    msgs.append(_bybit_book("delta", 5001, start + 5_001 * ms, "c", 2))
    msgs.append(_bybit_book("delta", 5003, start + 5_002 * ms, "c", 3))
    _write(tmp_path, msgs)
    assert len({m.recv_ns // HOUR_NS for m in msgs}) == 2
    rep = verify(str(tmp_path))
    assert rep.ok
    assert len(rep.sequence_breaks) == 1, rep.sequence_breaks
    assert "on c: after u=5001 got u=5003" in rep.sequence_breaks[0]


def test_replay_command_writes_exact_payloads_as_ndjson(tmp_path: Path) -> None:
    build(tmp_path)
    res = CliRunner().invoke(
        cli, ["replay", str(tmp_path), "--venue", "binance-spot,binance-sbe", "--channel", "trade"]
    )
    assert res.exit_code == 0
    lines = [orjson.loads(x) for x in res.output.splitlines()]
    expected = sorted(
        (m for m in mixed_messages(90) if m.channel == "trade" and m.venue != "bybit-linear"),
        key=lambda m: m.sort_key(),
    )
    assert [x["recv_ns"] for x in lines] == [m.recv_ns for m in expected]
    for x, m in zip(lines, expected, strict=True):
        assert list(x)[:4] == [
            "recv_ns",
            "venue",
            "stream",
            "payload" if "payload" in x else "payload_hex",
        ]
        got = bytes.fromhex(x["payload_hex"]) if "payload_hex" in x else x["payload"].encode()
        assert got == m.payload
    assert any("payload_hex" in x for x in lines) and any("payload" in x for x in lines)
