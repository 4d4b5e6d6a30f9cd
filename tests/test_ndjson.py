"""NDJSON export: exact payload text, hex for binary frames, key order, round trip."""

from __future__ import annotations

import io
import json
from pathlib import Path

from recorder import ArchiveWriter, Message
from replay import open_archive
from replay.reader._ndjson import message_record, read_ndjson, write_ndjson
from tests.archive_helpers import T0, binance_trade, mixed_messages, sbe_trade


def _lines(msgs: list[Message], **kw: bool) -> list[str]:
    buf = io.BytesIO()
    n = write_ndjson(msgs, buf, **kw)
    text = buf.getvalue().decode("utf-8")
    assert text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) == n == len(msgs)
    return lines


def test_text_payload_round_trips_exactly() -> None:
    msgs = mixed_messages(30)
    for line, m in zip(_lines(msgs), msgs, strict=True):
        rec = json.loads(line)
        assert list(rec)[:4] == [
            "recv_ns",
            "venue",
            "stream",
            "payload" if "payload" in rec else "payload_hex",
        ]
        if "payload" in rec:
            assert rec["payload"].encode() == m.payload
        else:
            assert bytes.fromhex(rec["payload_hex"]) == m.payload
        assert rec["recv_ns"] == m.recv_ns
        assert (rec["venue"], rec["stream"]) == (m.venue, m.stream)
        assert (rec["channel"], rec["symbol"], rec["conn"], rec["seq"]) == (
            m.channel,
            m.symbol,
            m.conn,
            m.seq,
        )


def test_binary_sbe_payload_is_hex() -> None:
    m = sbe_trade(3, T0)
    (line,) = _lines([m])
    rec = json.loads(line)
    assert "payload" not in rec
    assert list(rec)[:4] == ["recv_ns", "venue", "stream", "payload_hex"]
    assert rec["payload_hex"] == m.payload.hex()


def test_unicode_escapes_and_non_ascii_survive() -> None:
    base = binance_trade(1, T0)
    payload = '{"x":"caf\u00e9 \\u00e9 \\"q\\" \\\\ \u2603","y":"\\ud83d\\ude00"}'.encode()
    m = Message(
        venue=base.venue,
        stream=base.stream,
        channel="unparsed",
        symbol=base.symbol,
        recv_ns=T0,
        conn="c",
        seq=1,
        payload=payload,
    )
    (line,) = _lines([m])
    assert json.loads(line)["payload"].encode() == payload


def test_invalid_utf8_text_falls_back_to_hex() -> None:
    m = Message(
        venue="binance-spot",
        stream="x",
        channel="unparsed",
        symbol="ALL",
        recv_ns=T0,
        conn="c",
        seq=1,
        payload=b'{"a":"\xff\xfe"}',
    )
    rec = message_record(m)
    assert rec["payload_hex"] == m.payload.hex()


def test_extra_false_has_only_the_documented_keys() -> None:
    (line,) = _lines([binance_trade(1, T0)], extra=False)
    assert list(json.loads(line)) == ["recv_ns", "venue", "stream", "payload"]


def test_archive_to_ndjson_and_back(tmp_path: Path) -> None:
    msgs = mixed_messages(20)
    w = ArchiveWriter(str(tmp_path), writer_id="t", fsync=False)
    w.add_many(msgs)
    w.flush()
    replayed = list(open_archive(str(tmp_path)))
    buf = io.BytesIO()
    write_ndjson(open_archive(str(tmp_path)), buf)
    buf.seek(0)
    back = list(read_ndjson(buf))
    assert [
        (m.recv_ns, m.venue, m.stream, m.channel, m.symbol, m.conn, m.seq, m.payload) for m in back
    ] == [
        (m.recv_ns, m.venue, m.stream, m.channel, m.symbol, m.conn, m.seq, m.payload)
        for m in replayed
    ]
    assert back == replayed  # fields decode to the same values
