"""Payloads rendered in batches from the typed columns are exactly what the codec renders row
by row: for every current-API corpus line and for generated values; rows the batch path
cannot prove exact are left to the codec."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.archive._render import decimal_text, fast_payloads, payloads
from recorder.archive._schema import archive_schema
from recorder.core._codec import ChannelCodec, codec_for
from recorder.venues import binance as bn
from recorder.venues._jsonspec import DP_EMPTY, DP_NULL, parse_decimal
from tests._shared import corpus
from tests.test_lossless import _classify

T0 = 1_795_258_740_000_000_000


def _table(
    codec: ChannelCodec, rows: Sequence[tuple[Mapping[str, Any], str, int]], *, dictionary: bool
) -> pa.Table:
    """Archive rows (no raw bytes) for (fields, stream, envelope) triples, as the writer
    stores them; string columns dictionary-encoded as replay reads them if asked."""
    schema = archive_schema(codec)
    n = len(rows)
    cols: dict[str, list[Any]] = {
        "recv_time": [T0 + i for i in range(n)],
        "conn": ["c"] * n,
        "seq": list(range(n)),
        "stream": [s for _, s, _ in rows],
        "envelope": [e for _, _, e in rows],
        "raw": [None] * n,
    }
    for f in codec.typed_fields:
        cols[f.name] = [fields.get(f.name) for fields, _, _ in rows]
    table = pa.table({f.name: pa.array(cols[f.name], f.type) for f in schema}, schema=schema)
    if dictionary:
        for i, f in enumerate(table.schema):
            if f.type == pa.string():
                table = table.set_column(i, f.name, pc.dictionary_encode(table.column(i)))
    return table


def _expected(
    codec: ChannelCodec, fields: Mapping[str, Any], stream: str, env: int
) -> bytes | None:
    try:
        return codec.render(fields, stream, env)
    except Exception:
        return None


def _check(
    codec: ChannelCodec, rows: Sequence[tuple[Mapping[str, Any], str, int]], *, dictionary: bool
) -> int:
    """Every row the batch path renders equals the codec's rendering; returns how many."""
    table = _table(codec, rows, dictionary=dictionary)
    fast = fast_payloads(codec, table)
    assert fast is not None
    # The same rows rendered run by run (as files of a channel are): a value constant in a
    # run goes in as text rendered by Python, so a run may render rows the batch could not.
    runs = [len(list(g)) for _, g in itertools.groupby(s for _, s, _ in rows)]
    by_run = fast_payloads(codec, table, runs)
    assert by_run is not None
    done = 0
    for i, (got, again, (fields, stream, env)) in enumerate(
        zip(fast.to_pylist(), by_run.to_pylist(), rows, strict=True)
    ):
        want = _expected(codec, fields, stream, env)
        if got is not None:
            assert got == want == again, (codec.channel, i, fields)
            done += 1
        if again is not None:
            assert again == want, (codec.channel, i, fields)
    return done


def _corpus_rows() -> dict[tuple[str, str], list[tuple[dict[str, Any], str, int]]]:
    by_codec: dict[tuple[str, str], list[tuple[dict[str, Any], str, int]]] = defaultdict(list)
    for line in corpus():
        if not line.exact or line.kind in ("legacy_v2", "control") or line.venue == "binance-sbe":
            continue
        where = _classify(line.venue, line.stream, line.payload)
        assert where is not None, line.id
        codec = codec_for(line.venue, where[0])
        d = codec.decode(line.payload)
        by_codec[(line.venue, where[0])].append((d.fields, line.stream or "", d.envelope))
    return by_codec


@pytest.mark.parametrize("dictionary", [False, True])
def test_batch_rendering_equals_the_codec_on_the_corpus(dictionary: bool) -> None:
    rendered = supported = 0
    for (venue, channel), rows in _corpus_rows().items():
        codec = codec_for(venue, channel)
        table = _table(codec, rows, dictionary=dictionary)
        if fast_payloads(codec, table) is None:
            continue
        supported += len(rows)
        rendered += _check(codec, rows, dictionary=dictionary)
        # And the complete column (batch path, then the codec for the rest) is exact.
        want = [_expected(codec, f, s, e) for f, s, e in rows]
        if None not in want:
            assert payloads(codec, table).to_pylist() == want
    assert supported > 500
    # Nearly every row of a supported channel is rendered without the per-row path.
    assert rendered >= 0.9 * supported, (rendered, supported)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.floats(allow_nan=True, allow_infinity=True),
                st.sampled_from([0.0, -0.0, 1e-300, -1.5, 2.5, 0.125, 1e15, 2.0**52]),
                st.integers(-(10**17), 10**17).map(lambda i: i / 10**8),
            ),
            st.integers(-3, 25),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_decimal_text_is_python_formatting_or_nothing(rows: list[tuple[float, int]]) -> None:
    values = np.array([v for v, _ in rows], dtype=np.float64)
    dps = np.array([d for _, d in rows], dtype=np.int64)
    for (v, d), got in zip(rows, decimal_text(values, dps).to_pylist(), strict=True):
        if got is not None:
            assert d >= 0 and math.isfinite(v)
            assert got == f"{v:.{d}f}", (v, d)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from([0.0, -0.0, 0.125, -2.5, 1e15]),
            st.integers(-(10**12), 10**12).map(lambda i: i / 10**4),
        ),
        min_size=1,
        max_size=30,
    ),
    st.integers(-2, 20),
    st.integers(256, 700),
)
def test_repeated_values_are_formatted_once_and_exactly(
    values: list[float], dp: int, n: int
) -> None:
    tiled = np.resize(np.array(values, dtype=np.float64), n)  # each value many times
    dps = np.full(n, dp, dtype=np.int64)
    got = decimal_text(tiled, dps).to_pylist()
    for v, text in zip(tiled.tolist(), got, strict=True):
        if text is not None:
            assert dp >= 0 and text == f"{v:.{dp}f}", (v, dp)


def _decimal(sign: str, whole: int, frac: int, dp: int) -> str:
    return sign + (f"{whole}.{str(frac).zfill(dp)[-dp:]}" if dp else str(whole))


DECIMAL = st.builds(
    _decimal,
    st.sampled_from(["", "-"]),
    st.integers(0, 10**7),
    st.integers(0, 10**8),
    st.integers(0, 8),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(DECIMAL, min_size=1, max_size=40))
def test_every_decimal_string_of_up_to_15_digits_is_rendered(texts: list[str]) -> None:
    parsed = [parse_decimal(t) for t in texts]
    values = np.array([v for v, _ in parsed], dtype=np.float64)
    dps = np.array([d for _, d in parsed], dtype=np.int64)
    want = [f"{v:.{d}f}" for v, d in parsed]
    assert decimal_text(values, dps).to_pylist() == want
    # Many rows of one digit count take the path that formats each distinct value once.
    one = np.full(300, dps[0], dtype=np.int64)
    tiled = np.resize(values[dps == dps[0]], 300)
    assert decimal_text(tiled, one).to_pylist() == [f"{v:.{dps[0]}f}" for v in tiled.tolist()]


PRICE = st.one_of(
    st.floats(-1e12, 1e12, allow_nan=False),
    st.sampled_from([0.0, -0.0, 1e17, -1e-9]),
    st.integers(-(10**12), 10**12).map(lambda i: i / 10**4),
)
DP = st.integers(-2, 20)


def _dec(value: float, dp: int) -> tuple[float | None, int]:
    if dp in (DP_NULL, DP_EMPTY):
        return None, dp
    return value, dp


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**62),
            PRICE,
            DP,
            PRICE,
            st.integers(0, 12),
            st.one_of(st.none(), st.integers(0, 2**62)),
            st.booleans(),
            st.sampled_from([0, 1, 2, 7]),
            st.sampled_from(["btcusdt@trade", 'we"ird', "ETHUSDT", "é"]),
        ),
        min_size=1,
        max_size=25,
    ),
    st.booleans(),
)
def test_generated_trade_rows_render_like_the_codec(rows: list[Any], dictionary: bool) -> None:
    codec = codec_for(bn.SPOT, "trade")
    out = []
    for tid, p, pdp, q, qdp, buyer, maker, env, text in rows:
        price, pdp = _dec(p, pdp)
        fields = {
            "event_time": tid,
            "sym": text,
            "trade_id": tid,
            "price": price,
            "price_dp": pdp,
            "qty": q,
            "qty_dp": qdp,
            "buyer_order_id": buyer,
            "seller_order_id": buyer,
            "trade_time": tid,
            "buyer_is_maker": maker,
            "best_match": True,
        }
        out.append((fields, text, env))
    _check(codec, out, dictionary=dictionary)


LEVELS = st.lists(st.tuples(PRICE, PRICE), max_size=5)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(LEVELS, st.integers(-1, 20), st.integers(0, 12), LEVELS, st.booleans()),
        min_size=1,
        max_size=25,
    ),
    st.booleans(),
)
def test_generated_depth_rows_render_like_the_codec(rows: list[Any], dictionary: bool) -> None:
    codec = codec_for(bn.SPOT, "depth")
    out = []
    for i, (bids, pdp, qdp, asks, null_level) in enumerate(rows):
        bid_levels: list[Any] = [{"price": p, "qty": q} for p, q in bids]
        if null_level and bid_levels:
            bid_levels[0] = None
        fields = {
            "event_time": i,
            "sym": "BTCUSDT",
            "first_update_id": i,
            "final_update_id": i + 1,
            "bids": bid_levels,
            "bids_price_dp": pdp,
            "bids_qty_dp": qdp,
            "asks": [{"price": p, "qty": q} for p, q in asks],
            "asks_price_dp": qdp,
            "asks_qty_dp": pdp,
        }
        out.append((fields, "btcusdt@depth", 1))
    _check(codec, out, dictionary=dictionary)


def test_rows_with_raw_bytes_keep_them_and_others_fall_back_to_the_codec() -> None:
    codec = codec_for(bn.SPOT, "bookTicker")
    fields = {
        "update_id": 1,
        "sym": "BTCUSDT",
        "bid_price": 1.5,
        "bid_price_dp": 2,
        "bid_qty": 2.0,
        "bid_qty_dp": 0,
        "ask_price": 1.0 / 3,  # not a 2-digit decimal: only the codec renders it
        "ask_price_dp": 2,
        "ask_qty": 1.0,
        "ask_qty_dp": 1,
    }
    table = _table(codec, [(fields, "btcusdt@bookTicker", 1)] * 2, dictionary=False)
    raw = pa.array([b"kept as received", None], pa.binary())
    table = table.set_column(table.schema.get_field_index("raw"), "raw", raw)
    fast = fast_payloads(codec, table)
    assert fast is not None and fast.to_pylist() == [None, None]
    want = codec.render(fields, "btcusdt@bookTicker", 1)
    assert b'"a":"0.33"' in want
    assert payloads(codec, table).to_pylist() == [b"kept as received", want]


def test_reordered_keys_render_in_each_rows_order() -> None:
    codec = codec_for(bn.USDM, "bookTicker")
    frames = [
        b'{"e":"bookTicker","u":7,"E":5,"T":4,"s":"BTCUSDT","b":"1.50","B":"2","a":"1.60",'
        b'"A":"3.0"}',
        b'{"e":"bookTicker","u":8,"s":"BTCUSDT","b":"1.50","B":"2","a":"1.60","A":"3.0",'
        b'"T":4,"E":5}',
    ]
    rows = []
    for frame in frames:
        d = codec.decode(frame)
        assert d.exact
        rows.append((d.fields, "btcusdt@bookTicker", d.envelope))
    assert [f["layout"] for f, _, _ in rows] == [0, 1]
    for runs in ([1, 1], None):
        table = _table(codec, rows, dictionary=False)
        assert payloads(codec, table, runs).to_pylist() == frames
        fast = fast_payloads(codec, table, runs)
        assert fast is not None
        # Two layouts in one run: left to the codec; one layout per run: rendered in batch.
        assert fast.null_count == (2 if runs is None else 0)
