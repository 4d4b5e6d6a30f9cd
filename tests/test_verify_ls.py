"""ticktape ls and verify on sound and corrupted archives."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from recorder import ArchiveWriter
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
    assert rep.ok and len(rep.duplicates) == 1


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
