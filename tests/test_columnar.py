"""The batch encoder writes exactly what the per-row path writes: same rows, same typed
columns, same raw bytes, for real payloads, their mutations and generated ones."""

from __future__ import annotations

import math
from collections.abc import Iterator

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.archive import _buffer as arc
from recorder.archive import _columnar as columnar
from recorder.archive._buffer import Rows
from recorder.archive._columnar import encoder_for
from recorder.archive._layout import PartitionKey
from recorder.archive._schema import archive_schema, unit_cast_schema
from recorder.core._codec import codec_for
from recorder.venues import binance as bn
from tests._shared import corpus

T0 = 1_795_258_740_000_000_000


def _key(venue: str, channel: str, symbol: str = "BTCUSDT") -> PartitionKey:
    return PartitionKey(venue, channel, symbol, "2026-11-21", 7)


def _both_paths(
    venue: str, channel: str, frames: list[tuple[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> tuple[pa.Table, pa.Table, int]:
    """(batch-encoded table, per-row table, rows the batch encoder took)."""
    codec = codec_for(venue, channel)
    schema = archive_schema(codec)
    n = len(frames)
    rows = Rows(
        [T0 + i for i in range(n)],
        ["c1"] * n,
        list(range(n)),
        [s for s, _ in frames],
        [p for _, p in frames],
        [],
    )
    batch = [(_key(venue, channel), rows)]
    enc = encoder_for(codec)
    assert enc is not None
    taken = int(enc.encode(rows.payload, rows.stream).ok.sum())
    fast, fast_raw, fast_bad = arc._encode(codec, schema, batch)
    with monkeypatch.context() as m:
        m.setitem(arc._ENCODERS, (venue, channel), None)
        slow, slow_raw, slow_bad = arc._encode(codec, schema, batch)
    assert [(k, x.seq, e) for k, x, e in fast_bad] == [(k, x.seq, e) for k, x, e in slow_bad]
    assert fast_raw == slow_raw
    return fast, slow, taken


def _same(fast: pa.Table, slow: pa.Table) -> None:
    assert fast.schema == slow.schema
    fast, slow = (
        fast.cast(unit_cast_schema(fast.schema)),
        slow.cast(unit_cast_schema(slow.schema)),
    )
    for name in fast.column_names:
        a, b = fast.column(name).to_pylist(), slow.column(name).to_pylist()
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            nan = isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)
            assert x == y or nan, (name, i, x, y)


def _corpus_frames() -> Iterator[tuple[str, str, str, bytes]]:
    for line in corpus():
        if not line.venue.startswith("binance-") or line.venue == "binance-sbe":
            continue
        if line.kind in ("legacy_v2", "control") or line.stream is None:
            continue
        if line.stream.startswith("http"):
            channel = "depth_snapshot"
        else:
            info = bn.classify(line.venue, line.stream)
            if info is None:
                continue
            channel = info.channel
        if encoder_for(codec_for(line.venue, channel)) is not None:
            yield line.venue, channel, line.stream, line.payload


def _mutations(payload: bytes) -> Iterator[bytes]:
    """Variants the per-row path treats differently: each must be declined or agree."""
    yield payload
    yield payload.replace(b",", b", ", 1)
    yield payload.replace(b'"', b'"x', 1)
    yield payload[:-1] + b',"zz":1}'
    yield payload.replace(b'00"', b'"', 1)
    yield payload.replace(b'"0.', b'"-0.', 1)
    yield payload.replace(b'"0.', b'"00.', 1)
    yield payload.replace(b'":"', b'":"\\u0041', 1)
    yield payload.replace(b"true", b"1", 1)
    yield payload.replace(b"false", b"null", 1)
    yield payload.replace(b'"s":"', b'"s":"\\"', 1)
    yield payload.replace(b"[[", b'[["1.123456789012345678","1"],[', 1)
    yield payload.replace(b"[[", b'[["1.5","2.25"],[', 1)
    yield payload.replace(b"[[", b'[["1.5","2.25","3"],[', 1)
    yield payload.replace(b'"}', b'"},', 1)
    yield payload[: len(payload) // 2]
    yield b"[]"
    yield b"{}"
    try:  # the same object with its keys in another order
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return
    if isinstance(value, dict):
        yield orjson.dumps(dict(reversed(value.items())))


def test_batch_and_per_row_paths_agree_on_the_corpus_and_mutations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    by_channel: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
    for venue, channel, stream, payload in _corpus_frames():
        frames = by_channel.setdefault((venue, channel), [])
        frames.extend((stream, p) for p in _mutations(payload))
    assert len(by_channel) >= 10
    total = taken_all = 0
    for (venue, channel), frames in sorted(by_channel.items()):
        fast, slow, taken = _both_paths(venue, channel, frames, monkeypatch)
        _same(fast, slow)
        total += len(frames)
        taken_all += taken
    # The unmodified corpus lines (1 in 19 of these frames) at least go the batch way.
    assert taken_all >= total // 19


_digits = st.integers(min_value=0, max_value=10**17)


@st.composite
def _decimal_text(draw: st.DrawFn) -> str:
    mantissa = draw(_digits)
    dp = draw(st.integers(min_value=0, max_value=18))
    text = str(mantissa).rjust(dp + 1, "0")
    if dp:
        text = text[:-dp] + "." + text[-dp:]
    if draw(st.booleans()) and draw(st.booleans()):
        text = "-" + text
    return text


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            _decimal_text(),
            _decimal_text(),
            st.integers(min_value=-(2**63), max_value=2**64),
            st.booleans(),
            st.booleans(),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_batch_and_per_row_paths_agree_on_generated_trades(
    rows: list[tuple[str, str, int, bool, bool]],
) -> None:
    frames = []
    for price, qty, tid, wrapped, maker in rows:
        inner = (
            f'{{"e":"trade","E":1767225600010,"s":"BTCUSDT","t":{tid},"p":"{price}",'
            f'"q":"{qty}","T":1767225600010,"m":{"true" if maker else "false"},"M":true}}'
        )
        frame = f'{{"stream":"btcusdt@trade","data":{inner}}}' if wrapped else inner
        frames.append(("btcusdt@trade", frame.encode()))
    with pytest.MonkeyPatch.context() as mp:
        fast, slow, _ = _both_paths("binance-spot", "trade", frames, mp)
    _same(fast, slow)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(_decimal_text(), _decimal_text()), max_size=6),
        min_size=1,
        max_size=20,
    )
)
def test_batch_and_per_row_paths_agree_on_generated_depth(
    books: list[list[tuple[str, str]]],
) -> None:
    frames = []
    for i, bids in enumerate(books):
        levels = ",".join(f'["{p}","{q}"]' for p, q in bids)
        inner = (
            f'{{"e":"depthUpdate","E":1767225600100,"s":"BTCUSDT","U":{i},"u":{i},'
            f'"b":[{levels}],"a":[]}}'
        )
        frames.append(
            ("btcusdt@depth@100ms", f'{{"stream":"btcusdt@depth@100ms","data":{inner}}}'.encode())
        )
    with pytest.MonkeyPatch.context() as mp:
        fast, slow, _ = _both_paths("binance-spot", "depth", frames, mp)
    _same(fast, slow)


def test_batch_encoder_takes_canonical_rows_and_declines_the_rest() -> None:
    codec = codec_for("binance-spot", "bookTicker")
    enc = encoder_for(codec)
    assert enc is not None
    good = (
        b'{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000",'
        b'"a":"25.36520000","A":"40.66000000"}'
    )
    frames = [
        good,
        good.replace(b"25.35190000", b"2.5e1"),  # exponent: float, but not re-renderable
        good.replace(b"25.35190000", b"25.351900000000000001"),  # 21 significant digits
        good.replace(b'"u":', b' "u":'),
        b"not json",
    ]
    out = enc.encode(frames, ["bnbusdt@bookTicker"] * len(frames))
    assert out.ok.tolist() == [True, False, False, False, False]
    assert out.columns[0][0].as_py() == 400900217
    assert out.columns[2][0].as_py() == 25.3519 and out.columns[3][0].as_py() == 8


def test_a_batch_encoded_in_chunks_is_the_same_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [(s, p) for v, c, s, p in _corpus_frames() if (v, c) == ("binance-spot", "depth")]
    assert len(frames) > 10
    enc = encoder_for(codec_for("binance-spot", "depth"))
    assert enc is not None
    payloads, streams = [p for _, p in frames], [s for s, _ in frames]
    whole = enc.encode(payloads, streams)
    monkeypatch.setattr(columnar, "_CHUNK", 3)
    chunked = enc.encode(payloads, streams)
    assert chunked.ok.tolist() == whole.ok.tolist()
    assert chunked.envelope.equals(whole.envelope)
    assert [c.to_pylist() for c in chunked.columns] == [c.to_pylist() for c in whole.columns]
