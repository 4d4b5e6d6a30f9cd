"""Lossless archive: every byte-exact message of the exchange corpus, and generated ones,
comes back from the archive byte for byte, with typed columns doing the work."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder import ArchiveWriter, Message
from recorder.venues import binance as bn
from recorder.venues import bybit as bb
from recorder.venues import sbe
from replay import open_archive
from tests._shared import corpus

T0 = 1_795_258_740_000_000_000


def _classify(venue: str, line_stream: str | None, payload: bytes) -> tuple[str, str] | None:
    if venue.startswith("binance") and venue != "binance-sbe":
        if line_stream is None:
            return None
        if line_stream.startswith("http"):
            return "depth_snapshot", "BTCUSDT"
        binfo = bn.classify(venue, line_stream)
        return (binfo.channel, binfo.symbol) if binfo else None
    if venue.startswith("bybit"):
        topic = bb.topic_of(payload)
        yinfo = bb.classify(venue, topic) if topic else None
        return (yinfo.channel, yinfo.symbol) if yinfo else None
    return None


def test_every_byte_exact_corpus_message_round_trips_through_the_archive(tmp_path: Path) -> None:
    msgs: list[Message] = []
    for i, line in enumerate(corpus()):
        if not line.exact or line.kind in ("legacy_v2", "control") or line.venue == "binance-sbe":
            continue
        where = _classify(line.venue, line.stream, line.payload)
        assert where is not None, line.id
        channel, symbol = where
        msgs.append(
            Message(
                venue=line.venue,
                stream=line.stream or "",
                channel=channel,
                symbol=symbol,
                recv_ns=T0 + i,
                conn="corpus",
                seq=i,
                payload=line.payload,
            )
        )
    assert len(msgs) > 1500
    w = ArchiveWriter(str(tmp_path), writer_id="corpus", fsync=False)
    w.add_many(msgs)
    w.flush()
    back = {(m.venue, m.seq): m for m in open_archive(str(tmp_path))}
    assert len(back) == len(msgs)
    for m in msgs:
        got = back[(m.venue, m.seq)]
        assert got.payload == m.payload, (m.venue, m.stream)
        assert got.channel == m.channel and got.fields == m.fields
    # Re-rendered from typed columns, not stored twice: no byte-exact line needs raw bytes.
    raw = w.statistics().raw_rows
    assert raw == 0, f"{raw} byte-exact corpus messages needed their raw bytes"
    per_venue = Counter(m.venue for m in msgs)
    assert set(per_venue) == {
        "binance-spot",
        "binance-usdm",
        "bybit-linear",
        "bybit-spot",
    }


def test_legacy_v2_lines_have_a_clear_unsupported_outcome(tmp_path: Path) -> None:
    lines = [x for x in corpus() if x.kind == "legacy_v2"]
    assert lines
    for x in lines:
        with pytest.raises(Exception, match="Bybit v2 API \\(retired\\) is not supported"):
            bb.route(x.venue, x.payload)


DEC = st.builds(
    lambda whole, frac, dp: f"{whole}.{str(frac).zfill(dp)[:dp]}" if dp else str(whole),
    st.integers(0, 10**9),
    st.integers(0, 10**8),
    st.integers(0, 8),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2**62), DEC, DEC, st.booleans(), st.integers(0, 2**41)),
        min_size=1,
        max_size=30,
    )
)
def test_generated_trades_round_trip_byte_exact(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[int, str, str, bool, int]]
) -> None:
    root = tmp_path_factory.mktemp("prop")
    msgs = []
    for i, (tid, p, q, m, e) in enumerate(rows):
        data = (
            f'{{"e":"trade","E":{e},"s":"BTCUSDT","t":{tid},"p":"{p}","q":"{q}",'
            f'"T":{e},"m":{"true" if m else "false"},"M":true}}'
        )
        msgs.append(
            Message(
                venue="binance-spot",
                stream="btcusdt@trade",
                channel="trade",
                symbol="BTCUSDT",
                recv_ns=T0 + i,
                conn="p",
                seq=i,
                payload=f'{{"stream":"btcusdt@trade","data":{data}}}'.encode(),
            )
        )
    w = ArchiveWriter(str(root), writer_id="p", fsync=False)
    w.add_many(msgs)
    w.flush()
    assert [m.payload for m in open_archive(str(root))] == [m.payload for m in msgs]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2**62), st.integers(-(2**62), 2**62), st.integers(0, 2**62)),
        min_size=1,
        max_size=20,
    ),
    st.integers(-12, 4),
    st.integers(-12, 4),
)
def test_generated_sbe_frames_round_trip_byte_exact(
    tmp_path_factory: pytest.TempPathFactory,
    trades: list[tuple[int, int, int]],
    pexp: int,
    qexp: int,
) -> None:
    root = tmp_path_factory.mktemp("sbe")
    payload = sbe.encode_trades(
        symbol="BTCUSDT",
        event_time_us=1_700_000_000_000_000,
        transact_time_us=1_700_000_000_000_000,
        price_exponent=pexp,
        qty_exponent=qexp,
        trades=[(t, p, q, t % 2 == 0) for t, p, q in trades],
    )
    m = Message(
        venue="binance-sbe",
        stream="btcusdt@trade",
        channel="trade",
        symbol="BTCUSDT",
        recv_ns=T0,
        conn="p",
        seq=1,
        payload=payload,
    )
    w = ArchiveWriter(str(root), writer_id="p", fsync=False)
    w.add(m)
    w.flush()
    (back,) = list(open_archive(str(root)))
    assert back.payload == payload and w.statistics().raw_rows == 0
