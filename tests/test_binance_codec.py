"""Binance Spot / USDⓈ-M: stream names, codecs (exact re-rendering), control frames, URLs,
REST helpers and the depth-continuity state machine."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.core._codec import channels_of, codec_for
from recorder.core._errors import LocalProtocolError, RemoteProtocolError
from recorder.core._message import ALL_SYMBOLS, CONTROL_CHANNEL
from recorder.venues import binance as B
from recorder.venues.binance import (
    SPOT,
    USDM,
    Apply,
    Buffer,
    CommandError,
    CommandResult,
    DepthSync,
    Discard,
    Gap,
    NeedSnapshot,
    ServerShutdown,
    SnapshotTooOld,
    StreamInfo,
    SymbolInfo,
    UseSnapshot,
)
from tests._shared import corpus

# ---------------------------------------------------------------------------------------------
# Corpus: every captured payload decodes; every byte-exact one re-renders byte-exact.
# ---------------------------------------------------------------------------------------------


def _channel_of(venue: str, stream: str) -> str:
    if stream.startswith("https://"):
        return "depth_snapshot"
    info = B.classify(venue, stream)
    assert info is not None, f"{venue}: corpus stream {stream!r} not classified"
    return info.channel


@pytest.mark.parametrize("venue", [SPOT, USDM])
def test_corpus_decodes_and_rerenders_exactly(venue: str) -> None:
    counts: Counter[str] = Counter()
    failures: list[str] = []
    for line in corpus(venue):
        assert line.stream is not None
        codec = codec_for(venue, _channel_of(venue, line.stream))
        decoded = codec.decode(line.payload)  # raises on failure: every line must decode
        try:
            rendered: bytes | None = codec.render(decoded.fields, line.stream, decoded.envelope)
        except Exception:
            rendered = None
        same = decoded.exact and rendered == line.payload
        counts[("exact" if line.exact else "noted") + ("" if same else "_fallback")] += 1
        if line.exact:
            if not same:
                failures.append(f"{line.id}: {line.payload[:120]!r} -> {rendered!r:.120}")
            # The fast path finds the wrapper's stream name without parsing.
            if not line.stream.startswith("https://"):
                assert B.stream_of(line.payload) == line.stream
        # Typed fields fit the channel's declared Arrow schema.
        pa.Table.from_pylist([decoded.fields], schema=pa.schema(codec.typed_fields))
    print(f"{venue}: {dict(counts)}")
    assert not failures, "\n".join(failures)
    assert counts["exact"] > 400
    # Only the one pretty-printed fixture cannot be re-rendered.
    assert counts["noted_fallback"] <= 1


def test_corpus_event_time_and_symbol() -> None:
    line = next(iter(corpus(SPOT, "trade")))
    codec = codec_for(SPOT, "trade")
    decoded = codec.decode(line.payload)
    assert decoded.fields["sym"] == "BTCUSDT"
    assert decoded.fields["event_time"] == 1723161255343
    assert codec.event_ns(decoded.fields) == 1723161255343 * 1_000_000
    assert decoded.fields["price"] == 61837.63
    assert decoded.fields["price_dp"] == 8
    assert decoded.envelope == B.ENVELOPE_COMBINED


# ---------------------------------------------------------------------------------------------
# Documented examples (binance-spot.md §6-7, binance-usdm-futures.md §5-6), verbatim except
# that multi-line examples are written compactly and the continuousKline comma typo is fixed.
# ---------------------------------------------------------------------------------------------

_SPOT_MINI = (
    '{"e":"24hrMiniTicker","E":1672515782136,"s":"BNBBTC","c":"0.0025","o":"0.0010",'
    '"h":"0.0025","l":"0.0010","v":"10000","q":"18"}'
)
_SPOT_TICKER_1H = (
    '{"e":"1hTicker","E":1672515782136,"s":"BNBBTC","p":"0.0015","P":"250.00","o":"0.0010",'
    '"h":"0.0025","l":"0.0010","c":"0.0025","w":"0.0018","v":"10000","q":"18","O":0,'
    '"C":1675216573749,"F":0,"L":18150,"n":18151}'
)
_SPOT_TICKER = (
    '{"e":"24hrTicker","E":1672515782136,"s":"BNBBTC","p":"0.0015","P":"250.00","w":"0.0018",'
    '"x":"0.0009","c":"0.0025","Q":"10","b":"0.0024","B":"10","a":"0.0026","A":"100",'
    '"o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18","O":0,"C":86400000,"F":0,'
    '"L":18150,"n":18151}'
)
_USDM_MARK = (
    '{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000",'
    '"ap":"11794.15000000","i":"11784.62659091","P":"11784.25641265","r":"0.00038167",'
    '"T":1562306400000}'
)
_USDM_MINI = (
    '{"e":"24hrMiniTicker","E":123456789,"s":"BTCUSDT","c":"0.0025","o":"0.0010",'
    '"h":"0.0025","l":"0.0010","v":"10000","q":"18"}'
)
_USDM_TICKER = (
    '{"e":"24hrTicker","E":123456789,"s":"BTCUSDT","p":"0.0015","P":"250.00","w":"0.0018",'
    '"c":"0.0025","Q":"10","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18","O":0,'
    '"C":86400000,"F":0,"L":18150,"n":18151}'
)
_USDM_FORCE = (
    '{"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC",'
    '"q":"0.014","p":"9910","ap":"9910","X":"FILLED","l":"0.014","z":"0.014",'
    '"T":1568014460893}}'
)
_USDM_BOOK_TICKER = (
    '{"e":"bookTicker","u":400900217,"E":1568014460893,"T":1568014460891,"s":"BNBUSDT",'
    '"b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}'
)
_USDM_ASSET_INDEX = (
    '{"e":"assetIndexUpdate","E":1686749230000,"s":"ADAUSD","i":"0.27462452","b":"0.10000000",'
    '"a":"0.10000000","B":"0.24716207","A":"0.30208698","q":"0.05000000","g":"0.05000000",'
    '"Q":"0.26089330","G":"0.28835575"}'
)

DOC_EXAMPLES: list[tuple[str, str, str]] = [
    (
        SPOT,
        "bnbbtc@trade",
        '{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100",'
        '"T":1672515782136,"m":true,"M":true}',
    ),
    (
        SPOT,
        "bnbbtc@aggTrade",
        '{"e":"aggTrade","E":1672515782136,"s":"BNBBTC","a":12345,"p":"0.001","q":"100",'
        '"f":100,"l":105,"T":1672515782136,"m":true,"M":true}',
    ),
    (
        SPOT,
        "bnbbtc@kline_1m",
        '{"e":"kline","E":1672515782136,"s":"BNBBTC","k":{"t":1672515780000,"T":1672515839999,'
        '"s":"BNBBTC","i":"1m","f":100,"L":200,"o":"0.0010","c":"0.0020","h":"0.0025",'
        '"l":"0.0015","v":"1000","n":100,"x":false,"q":"1.0000","V":"500","Q":"0.500",'
        '"B":"123456"}}',
    ),
    (SPOT, "bnbbtc@miniTicker", _SPOT_MINI),
    (SPOT, "!miniTicker@arr", f"[{_SPOT_MINI}]"),
    (SPOT, "bnbbtc@ticker", _SPOT_TICKER),
    (SPOT, "!ticker@arr", f"[{_SPOT_TICKER}]"),
    (SPOT, "bnbbtc@ticker_1h", _SPOT_TICKER_1H),
    (SPOT, "!ticker_1h@arr", f"[{_SPOT_TICKER_1H}]"),
    (
        SPOT,
        "bnbusdt@bookTicker",
        '{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000",'
        '"A":"40.66000000"}',
    ),
    (
        SPOT,
        "btcusdt@avgPrice",
        '{"e":"avgPrice","E":1693907033000,"s":"BTCUSDT","i":"5m","w":"25776.86000000",'
        '"T":1693907032213}',
    ),
    (
        SPOT,
        "bnbbtc@depth5",
        '{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]]}',
    ),
    (
        SPOT,
        "bnbbtc@depth@100ms",
        '{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,'
        '"b":[["0.0024","10"]],"a":[["0.0026","100"]]}',
    ),
    (
        SPOT,
        "bazusd@referencePrice",
        '{"e":"referencePrice","s":"BAZUSD","r":"1.00","t":1770313263917}',
    ),
    (SPOT, "bazusd@referencePrice", '{"e":"referencePrice","s":"BAZUSD","r":null,"t":1}'),
    (
        SPOT,
        "bnbbtc@blockTrade",
        '{"e":"blockTrade","E":1772506983582,"s":"BNBBTC","t":582,"p":"0.052","q":"5838",'
        '"T":1772506983321,"m":true}',
    ),
    (
        SPOT,
        "https://api.binance.com/api/v3/depth?symbol=BNBBTC",
        '{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],'
        '"asks":[["4.00000200","12.00000000"]]}',
    ),
    (
        USDM,
        "btcusdt@aggTrade",
        '{"e":"aggTrade","E":123456789,"s":"BTCUSDT","a":5933014,"p":"0.001","q":"100",'
        '"nq":"100","f":100,"l":105,"T":123456785,"m":true}',
    ),
    (USDM, "btcusdt@markPrice", _USDM_MARK),
    (USDM, "!markPrice@arr@1s", f"[{_USDM_MARK}]"),
    (
        USDM,
        "btcusdt@kline_1m",
        '{"e":"kline","E":1638747660000,"s":"BTCUSDT","k":{"t":1638747660000,"T":1638747719999,'
        '"s":"BTCUSDT","i":"1m","f":100,"L":200,"o":"0.0010","c":"0.0020","h":"0.0025",'
        '"l":"0.0015","v":"1000","n":100,"x":false,"q":"1.0000","V":"500","Q":"0.500",'
        '"B":"123456"}}',
    ),
    (
        USDM,
        "btcusdt_perpetual@continuousKline_1m",
        '{"e":"continuous_kline","E":1607443058651,"ps":"BTCUSDT","ct":"PERPETUAL",'
        '"k":{"t":1607443020000,"T":1607443079999,"i":"1m","f":116467658886,"L":116468012423,'
        '"o":"18787.00","c":"18804.04","h":"18804.04","l":"18786.54","v":"197.664","n":543,'
        '"x":false,"q":"3715253.19494","V":"184.769","Q":"3472925.84746","B":"0"}}',
    ),
    (USDM, "btcusdt@miniTicker", _USDM_MINI),
    (USDM, "!miniTicker@arr", f"[{_USDM_MINI}]"),
    (USDM, "btcusdt@ticker", _USDM_TICKER),
    (USDM, "!ticker@arr", f"[{_USDM_TICKER}]"),
    (USDM, "bnbusdt@bookTicker", _USDM_BOOK_TICKER),
    (USDM, "!bookTicker", _USDM_BOOK_TICKER),
    (USDM, "btcusdt@forceOrder", _USDM_FORCE),
    (USDM, "!forceOrder@arr", _USDM_FORCE),
    (
        USDM,
        "btcusdt@depth5@100ms",
        '{"e":"depthUpdate","E":1571889248277,"T":1571889248276,"s":"BTCUSDT","U":390497796,'
        '"u":390497878,"pu":390497794,"b":[["7403.89","0.002"],["7403.90","3.906"],'
        '["7404.00","1.428"],["7404.85","5.239"],["7405.43","2.562"]],"a":[["7405.96","3.340"],'
        '["7406.63","4.525"],["7407.08","2.475"],["7407.15","4.800"],["7407.20","0.175"]]}',
    ),
    (
        USDM,
        "btcusdt@depth",
        '{"e":"depthUpdate","E":123456789,"T":123456788,"s":"BTCUSDT","U":157,"u":160,"pu":149,'
        '"b":[["0.0024","10"]],"a":[["0.0026","100"]]}',
    ),
    (
        USDM,
        "btcusdt@rpiDepth@500ms",
        '{"e":"depthUpdate","E":123456789,"T":123456788,"s":"BTCUSDT","U":157,"u":160,"pu":149,'
        '"b":[["0.0024","10"]],"a":[["0.0026","100"]]}',
    ),
    (
        USDM,
        "defiusdt@compositeIndex",
        '{"e":"compositeIndex","E":1602310596000,"s":"DEFIUSDT","p":"554.41604065",'
        '"C":"baseAsset","c":[{"b":"BAL","q":"USDT","w":"1.04884844","W":"0.01457800",'
        '"i":"24.33521021"},{"b":"BAND","q":"USDT","w":"3.53782729","W":"0.03935200",'
        '"i":"7.26420084"}]}',
    ),
    (
        USDM,
        "!contractInfo",
        '{"e":"contractInfo","E":1669356423908,"s":"IOTAUSDT","ps":"IOTAUSDT","ct":"PERPETUAL",'
        '"dt":4133404800000,"ot":1569398400000,"cs":"TRADING","bks":[{"bs":1,"bnf":0,'
        '"bnc":5000,"mmr":0.01,"cf":0,"mi":21,"ma":50},{"bs":2,"bnf":5000,"bnc":25000,'
        '"mmr":0.025,"cf":75,"mi":11,"ma":20}]}',
    ),
    (USDM, "!assetIndex@arr", f"[{_USDM_ASSET_INDEX}]"),
    (USDM, "adausd@assetIndex", _USDM_ASSET_INDEX),
    (
        USDM,
        "tradingSession",
        '{"e":"EquityUpdate","E":1765244143062,"t":1765242000000,"T":1765270800000,'
        '"S":"OVERNIGHT"}',
    ),
    (
        USDM,
        "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT",
        '{"lastUpdateId":1027024,"E":1589436922972,"T":1589436922959,'
        '"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"]]}',
    ),
]


def _doc(venue: str, stream: str) -> bytes:
    return next(p for v, s, p in DOC_EXAMPLES if (v, s) == (venue, stream)).encode()


@pytest.mark.parametrize(("venue", "stream", "payload"), DOC_EXAMPLES)
@pytest.mark.parametrize("wrapped", [False, True], ids=["raw", "combined"])
def test_documented_examples_round_trip(
    venue: str, stream: str, payload: str, wrapped: bool
) -> None:
    codec = codec_for(venue, _channel_of(venue, stream))
    inner = payload.encode()
    assert json.loads(inner)  # the literal is valid JSON
    frame = B.COMBINED.join(B.ENVELOPE_COMBINED, stream, inner) if wrapped else inner
    decoded = codec.decode(frame)
    assert decoded.exact
    assert decoded.envelope == (B.ENVELOPE_COMBINED if wrapped else B.ENVELOPE_NONE)
    assert codec.render(decoded.fields, stream, decoded.envelope) == frame
    pa.Table.from_pylist([decoded.fields], schema=pa.schema(codec.typed_fields))


def test_every_documented_channel_has_an_example() -> None:
    covered = {(v, _channel_of(v, s)) for v, s, _ in DOC_EXAMPLES}
    for venue in (SPOT, USDM):
        expected = set(B.SPECS[venue]) - {"book_checkpoint", "trade"} | (
            {"trade"} if venue == SPOT else set()
        )
        assert expected <= {c for v, c in covered if v == venue}


def test_typed_values_of_a_documented_example() -> None:
    codec = codec_for(USDM, "markPrice")
    fields = codec.decode(_USDM_MARK.encode()).fields
    assert fields["sym"] == "BTCUSDT"
    assert fields["mark_price"] == 11794.15
    assert fields["mark_price_dp"] == 8
    assert fields["mark_price_avg"] == 11794.15
    assert fields["index_price"] == 11784.62659091
    assert fields["funding_rate"] == 0.00038167
    assert fields["next_funding_time"] == 1562306400000
    assert fields[B.LAYOUT] == 0
    assert codec.event_ns(fields) == 1562305380000 * 1_000_000

    kline = codec_for(SPOT, "kline").decode(_doc(SPOT, "bnbbtc@kline_1m")).fields
    assert kline["open_time"] == 1672515780000
    assert kline["interval"] == "1m"
    assert kline["is_closed"] is False
    assert kline["kline_sym"] == kline["sym"] == "BNBBTC"

    depth = codec_for(USDM, "depth").decode(_doc(USDM, "btcusdt@depth")).fields
    assert depth["bids"] == [{"price": 0.0024, "qty": 10.0}]
    assert (depth["first_update_id"], depth["final_update_id"]) == (157, 160)
    assert depth["prev_final_update_id"] == 149

    arr = codec_for(USDM, "markPrice_arr")
    items = arr.decode(f"[{_USDM_MARK}]".encode()).fields
    assert items["mark_prices"][0]["sym"] == "BTCUSDT"
    assert arr.event_ns(items) == 1562305380000 * 1_000_000
    assert arr.event_ns(arr.decode(b"[]").fields) is None

    url = "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT"
    shot = codec_for(USDM, "depth_snapshot").decode(_doc(USDM, url)).fields
    assert shot["last_update_id"] == 1027024
    assert shot["asks_price_dp"] == 8


@pytest.mark.parametrize(
    ("venue", "channel", "payload", "layout"),
    [
        # The wire order captured 2021-2024 differs from the documented examples.
        (
            USDM,
            "bookTicker",
            '{"e":"bookTicker","u":600859600576,"s":"SUSHIUSDT","b":"7.6110","B":"2",'
            '"a":"7.6120","A":"297","T":1626992741012,"E":1626992741017}',
            1,
        ),
        (
            USDM,
            "aggTrade",
            '{"e":"aggTrade","E":1626992741575,"a":16599292,"s":"CTKUSDT","p":"1.01100","q":"10",'
            '"f":23961322,"l":23961322,"T":1626992741421,"m":false}',
            1,
        ),
        (
            USDM,
            "markPrice",
            '{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"1.0","P":"2.0","i":"3.0",'
            '"r":"0.0001","T":2}',
            1,
        ),
        # A quarterly contract: empty funding rate, zero funding time.
        (
            USDM,
            "markPrice",
            '{"e":"markPriceUpdate","E":1,"s":"BTCBUSD_210129","p":"1.0","P":"2.0","i":"3.0",'
            '"r":"","T":0}',
            1,
        ),
        # Generations: markPrice without i/P (2019), aggTrade without a (2019), trade without X.
        (
            USDM,
            "markPrice",
            '{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"1.0","r":"0.0001","T":2}',
            0,
        ),
        (
            USDM,
            "aggTrade",
            '{"e":"aggTrade","E":1,"s":"BTCUSDT","p":"1.0","q":"1","f":1,"l":2,"T":1,"m":true}',
            0,
        ),
        # CM-UM integration fields [connector].
        (
            USDM,
            "depth",
            '{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT","ps":"BTCUSDT","U":1,"u":2,"pu":0,'
            '"b":[],"a":[],"st":1}',
            None,
        ),
        (
            SPOT,
            "trade",
            '{"e":"trade","E":1,"s":"BNBBTC","t":1,"p":"0.1","q":"1","b":88,"a":50,"T":1,'
            '"m":true,"M":true}',
            None,
        ),
    ],
)
def test_generations_and_observed_orders_round_trip(
    venue: str, channel: str, payload: str, layout: int | None
) -> None:
    codec = codec_for(venue, channel)
    decoded = codec.decode(payload.encode())
    assert decoded.exact
    assert decoded.fields.get(B.LAYOUT) == layout
    assert codec.render(decoded.fields, "x", decoded.envelope) == payload.encode()


@pytest.mark.parametrize(
    ("venue", "channel", "payload"),
    [
        (SPOT, "trade", _doc(SPOT, "bnbbtc@trade").decode()),
        (USDM, "bookTicker", _USDM_BOOK_TICKER),
        (USDM, "markPrice_arr", f"[{_USDM_MARK}]"),
    ],
)
def test_unknown_field_decodes_but_is_not_exact(venue: str, channel: str, payload: str) -> None:
    codec = codec_for(venue, channel)
    base = codec.decode(payload.encode()).fields
    extra = re.sub(r"\}$", ',"zz":[1,{"y":null}]}', payload)
    extra = re.sub(r"\}\]$", ',"zz":1}]', extra)
    decoded = codec.decode(extra.encode())
    assert not decoded.exact
    assert decoded.fields == base


def test_reordered_unknown_order_is_not_exact() -> None:
    codec = codec_for(USDM, "bookTicker")
    payload = orjson.loads(_USDM_BOOK_TICKER)
    shuffled = orjson.dumps(dict(reversed(list(payload.items()))))
    decoded = codec.decode(shuffled)
    assert not decoded.exact
    assert decoded.fields["bid_price"] == 25.3519


@pytest.mark.parametrize(
    ("channel", "payload"),
    [
        ("trade", b'{"e":"trade","E":1,'),  # truncated
        ("trade", b"not json"),
        ("trade", b'{"stream":"bnbbtc@trade","data":{"e":"trade"'),
        ("trade", b'{"e":"aggTrade","E":1}'),  # another event type
        ("trade", b'{"e":"trade","E":1,"s":"X"}'),  # missing keys
        ("depth", b'{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1"]],"a":[]}'),
        ("bookTicker", b'{"u":"1","s":"X","b":"1","B":"1","a":"1","A":"1"}'),
        ("miniTicker_arr", b"{}"),
    ],
)
def test_malformed_payload_raises_remote_protocol_error(channel: str, payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        codec_for(SPOT, channel).decode(payload)


def test_envelope_split_join() -> None:
    inner = b'{"e":"trade"}'
    frame = b'{"stream":"bnbbtc@trade","data":' + inner + b"}"
    assert B.COMBINED.split(frame) == (B.ENVELOPE_COMBINED, inner)
    assert B.COMBINED.split(inner) == (B.ENVELOPE_NONE, inner)
    assert B.COMBINED.join(B.ENVELOPE_COMBINED, "bnbbtc@trade", inner) == frame
    assert B.COMBINED.join(B.ENVELOPE_NONE, "bnbbtc@trade", inner) == inner
    # A non-compact wrapper still decodes, but is never re-rendered (raw bytes are kept).
    pretty = b'{\n "stream": "bnbbtc@trade",\n "data": {"e": "trade"}\n}'
    assert B.COMBINED.split(pretty) == (B.ENVELOPE_REFORMATTED, inner)
    with pytest.raises(Exception, match="compact"):
        B.COMBINED.join(B.ENVELOPE_REFORMATTED, "bnbbtc@trade", inner)
    assert B.stream_of(frame) == "bnbbtc@trade"
    assert B.stream_of(inner) is None
    assert B.stream_of(b'{"stream":"x"}') is None
    assert B.stream_of(b'{"result":null,"id":1}') is None


def test_column_names_are_safe() -> None:
    forbidden = {"venue", "channel", "symbol", "date", "hour"}
    for venue in (SPOT, USDM):
        assert {"session", "control", "unparsed"} <= set(channels_of(venue))
        for channel in B.SPECS[venue]:
            names = [f.name for f in codec_for(venue, channel).typed_fields]
            lowered = [n.lower() for n in names]
            assert len(set(lowered)) == len(names), (venue, channel)
            assert not forbidden & set(lowered), (venue, channel)
            assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names), (venue, channel)
            assert all(len(n) > 1 for n in names), (venue, channel)


# ---------------------------------------------------------------------------------------------
# Stream classification
# ---------------------------------------------------------------------------------------------

CLASSIFY: list[tuple[str, str, StreamInfo]] = [
    (SPOT, "btcusdt@trade", StreamInfo("trade", "BTCUSDT")),
    (SPOT, "btcusdt@aggTrade", StreamInfo("aggTrade", "BTCUSDT")),
    (SPOT, "btcusdt@kline_1s", StreamInfo("kline", "BTCUSDT")),
    (SPOT, "btcusdt@kline_1M", StreamInfo("kline", "BTCUSDT")),
    (SPOT, "btcusdt@kline_1m@+08:00", StreamInfo("kline", "BTCUSDT")),
    (SPOT, "btcusdt@miniTicker", StreamInfo("miniTicker", "BTCUSDT")),
    (SPOT, "!miniTicker@arr", StreamInfo("miniTicker_arr", ALL_SYMBOLS)),
    (SPOT, "btcusdt@ticker", StreamInfo("ticker", "BTCUSDT")),
    (SPOT, "!ticker@arr", StreamInfo("ticker_arr", ALL_SYMBOLS)),
    (SPOT, "btcusdt@ticker_4h", StreamInfo("ticker_window", "BTCUSDT")),
    (SPOT, "!ticker_1d@arr", StreamInfo("ticker_window_arr", ALL_SYMBOLS)),
    (SPOT, "btcusdt@bookTicker", StreamInfo("bookTicker", "BTCUSDT")),
    (SPOT, "btcusdt@avgPrice", StreamInfo("avgPrice", "BTCUSDT")),
    (SPOT, "btcusdt@depth5", StreamInfo("depthPartial", "BTCUSDT")),
    (SPOT, "btcusdt@depth20@100ms", StreamInfo("depthPartial", "BTCUSDT")),
    (SPOT, "btcusdt@depth", StreamInfo("depth", "BTCUSDT")),
    (SPOT, "btcusdt@depth@100ms", StreamInfo("depth", "BTCUSDT")),
    (SPOT, "bazusd@referencePrice", StreamInfo("referencePrice", "BAZUSD")),
    (SPOT, "bnbbtc@blockTrade", StreamInfo("blockTrade", "BNBBTC")),
    (SPOT, "!serverShutdown", StreamInfo(CONTROL_CHANNEL, ALL_SYMBOLS)),
    (USDM, "btcusdt@aggTrade", StreamInfo("aggTrade", "BTCUSDT", "market")),
    (USDM, "btcusdt@trade", StreamInfo("trade", "BTCUSDT", "market")),
    (USDM, "btcusdt@markPrice", StreamInfo("markPrice", "BTCUSDT", "market")),
    (USDM, "btcbusd_210129@markPrice@1s", StreamInfo("markPrice", "BTCBUSD_210129", "market")),
    (USDM, "!markPrice@arr", StreamInfo("markPrice_arr", ALL_SYMBOLS, "market")),
    (USDM, "!markPrice@arr@1s", StreamInfo("markPrice_arr", ALL_SYMBOLS, "market")),
    (USDM, "btcusdt@kline_1m", StreamInfo("kline", "BTCUSDT", "market")),
    (
        USDM,
        "btcusdt_perpetual@continuousKline_1m",
        StreamInfo("continuousKline", "BTCUSDT_PERPETUAL", "market"),
    ),
    (
        USDM,
        "ethusdt_current_quarter@continuousKline_1s",
        StreamInfo("continuousKline", "ETHUSDT_CURRENT_QUARTER", "market"),
    ),
    (USDM, "btcusdt@miniTicker", StreamInfo("miniTicker", "BTCUSDT", "market")),
    (USDM, "!miniTicker@arr", StreamInfo("miniTicker_arr", ALL_SYMBOLS, "market")),
    (USDM, "btcusdt@ticker", StreamInfo("ticker", "BTCUSDT", "market")),
    (USDM, "!ticker@arr", StreamInfo("ticker_arr", ALL_SYMBOLS, "market")),
    (USDM, "btcusdt@bookTicker", StreamInfo("bookTicker", "BTCUSDT", "public")),
    (USDM, "!bookTicker", StreamInfo("bookTicker", ALL_SYMBOLS, "public")),
    (USDM, "btcusdt@forceOrder", StreamInfo("forceOrder", "BTCUSDT", "market")),
    (USDM, "!forceOrder@arr", StreamInfo("forceOrder", ALL_SYMBOLS, "market")),
    (USDM, "btcusdt@depth10", StreamInfo("depthPartial", "BTCUSDT", "public")),
    (USDM, "btcusdt@depth5@500ms", StreamInfo("depthPartial", "BTCUSDT", "public")),
    (USDM, "btcusdt@depth", StreamInfo("depth", "BTCUSDT", "public")),
    (USDM, "btcusdt@depth@0ms", StreamInfo("depth", "BTCUSDT", "public")),
    (USDM, "btcusdt@depth@500ms", StreamInfo("depth", "BTCUSDT", "public")),
    (USDM, "btcusdt@rpiDepth@500ms", StreamInfo("rpiDepth", "BTCUSDT", "public")),
    (USDM, "defiusdt@compositeIndex", StreamInfo("compositeIndex", "DEFIUSDT", "market")),
    (USDM, "!contractInfo", StreamInfo("contractInfo", ALL_SYMBOLS, "market")),
    (USDM, "!assetIndex@arr", StreamInfo("assetIndex_arr", ALL_SYMBOLS, "market")),
    (USDM, "adausd@assetIndex", StreamInfo("assetIndex", "ADAUSD", "market")),
    (USDM, "tradingSession", StreamInfo("tradingSession", ALL_SYMBOLS, "market")),
]


@pytest.mark.parametrize(("venue", "stream", "info"), CLASSIFY)
def test_classify(venue: str, stream: str, info: StreamInfo) -> None:
    assert B.classify(venue, stream) == info
    codec_for(venue, info.channel)  # every channel has a codec
    if info.channel != CONTROL_CHANNEL and stream != "!ticker@arr":
        assert B.parse_stream_name(venue, stream) == info


REJECTS: list[tuple[str, str]] = [
    (SPOT, ""),
    (SPOT, "btcusdt"),
    (SPOT, "btcusdt@"),
    (SPOT, "@trade"),
    (SPOT, "BTCUSDT@trade"),  # stream names are lowercase
    (SPOT, "btcusdt@Trade"),
    (SPOT, "btc-usdt@trade"),
    (SPOT, "btcusdt@kline_2m"),
    (SPOT, "btcusdt@kline_1m@+09:00"),
    (SPOT, "btcusdt@ticker_2h"),
    (SPOT, "btcusdt@depth15"),
    (SPOT, "btcusdt@depth@500ms"),  # futures speed
    (SPOT, "btcusdt@depth5@500ms"),
    (SPOT, "btcusdt@markPrice"),  # futures stream
    (SPOT, "!bookTicker"),  # removed from Spot in 2022
    (SPOT, "!markPrice@arr"),
    (SPOT, "btcusdt@trade/ethusdt@trade"),
    (SPOT, "tradingSession"),
    (USDM, "btcusdt@avgPrice"),
    (USDM, "btcusdt@depth@1000ms"),
    (USDM, "btcusdt@kline_1s"),  # 1s only on continuous klines
    (USDM, "btcusdt@continuousKline_1m"),  # no contract type
    (USDM, "btcusdt_weekly@continuousKline_1m"),
    (USDM, "btcusdt@rpiDepth"),
    (USDM, "!miniTicker"),
    (USDM, "!ticker_1h@arr"),
    ("binance-coinm", "btcusd_perp@depth"),
]


@pytest.mark.parametrize(("venue", "stream"), REJECTS)
def test_rejects(venue: str, stream: str) -> None:
    assert B.classify(venue, stream) is None
    with pytest.raises(LocalProtocolError):
        B.parse_stream_name(venue, stream)


def test_retired_and_pseudo_streams_cannot_be_subscribed() -> None:
    with pytest.raises(LocalProtocolError, match="retired"):
        B.parse_stream_name(SPOT, "!ticker@arr")
    with pytest.raises(LocalProtocolError):
        B.subscribe(SPOT, ["!serverShutdown"], 1)
    assert B.parse_stream_name(USDM, "!ticker@arr").channel == "ticker_arr"


# ---------------------------------------------------------------------------------------------
# Control protocol
# ---------------------------------------------------------------------------------------------


def test_requests() -> None:
    assert B.subscribe(SPOT, ["btcusdt@aggTrade", "btcusdt@depth"], 1) == (
        b'{"method":"SUBSCRIBE","params":["btcusdt@aggTrade","btcusdt@depth"],"id":1}'
    )
    assert B.unsubscribe(USDM, ["btcusdt@depth"], 312) == (
        b'{"method":"UNSUBSCRIBE","params":["btcusdt@depth"],"id":312}'
    )
    assert B.list_subscriptions(SPOT, 3) == b'{"method":"LIST_SUBSCRIPTIONS","id":3}'
    assert B.subscribe(SPOT, ["btcusdt@trade"], "abc123").endswith(b'"id":"abc123"}')
    assert B.subscribe(SPOT, ["btcusdt@trade"], None).endswith(b'"id":null}')
    assert B.subscribe(SPOT, ["btcusdt@trade"], -5).endswith(b'"id":-5}')


@pytest.mark.parametrize(
    ("venue", "streams", "request_id"),
    [
        (USDM, ["btcusdt@depth"], "abc"),  # USDⓈ-M ids are unsigned integers
        (USDM, ["btcusdt@depth"], None),
        (USDM, ["btcusdt@depth"], -1),
        (USDM, ["btcusdt@depth"], True),
        (SPOT, ["btcusdt@trade"], "a" * 37),
        (SPOT, ["btcusdt@trade"], "a-b"),
        (SPOT, ["btcusdt@trade"], 2**63),
        (SPOT, ["btcusdt@trade"], 1.5),
        (SPOT, [], 1),
        (SPOT, ["btcusdt@nope"], 1),
        (SPOT, [f"s{i}usdt@trade" for i in range(1025)], 1),
    ],
)
def test_bad_requests(venue: str, streams: list[str], request_id: Any) -> None:
    with pytest.raises(LocalProtocolError):
        B.subscribe(venue, streams, request_id)


CONTROL: list[tuple[bytes, B.ControlReply | None]] = [
    (b'{"result":null,"id":1}', CommandResult(1, None)),
    (b'{"result":["btcusdt@aggTrade"],"id":3}', CommandResult(3, ["btcusdt@aggTrade"])),
    (b'{"result":true,"id":2}', CommandResult(2, True)),
    (b'{"result":null,"id":"abc"}', CommandResult("abc", None)),
    (b'{"result":null,"id":null}', CommandResult(None, None)),
    (b'{"id":7,"result":null}', CommandResult(7, None)),
    (
        b'{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":2}',
        CommandError(2, 2, "Invalid request: invalid stream"),
    ),
    (
        b'{"error":{"code":3,"msg":"Invalid JSON: expected value at line 1 column 1"}}',
        CommandError(None, 3, "Invalid JSON: expected value at line 1 column 1"),
    ),
    (
        b'{"error": {"code": 0, "msg": "Unknown property"}}',
        CommandError(None, 0, "Unknown property"),
    ),
    (b'{"e":"serverShutdown","E":1770123456789}', ServerShutdown(1770123456789)),
    (
        b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}',
        ServerShutdown(1770123456789),
    ),
    (b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1}}', None),
    (b'{"e":"trade","E":1}', None),
    (b'{"u":1,"s":"BNBUSDT","b":"1","B":"1","a":"1","A":"1"}', None),
    (b'{"lastUpdateId":160,"bids":[],"asks":[]}', None),
    (b'[{"e":"24hrMiniTicker"}]', None),
]


@pytest.mark.parametrize(("frame", "reply"), CONTROL)
def test_parse_control(frame: bytes, reply: B.ControlReply | None) -> None:
    assert B.parse_control(frame) == reply


@pytest.mark.parametrize(
    "frame",
    [
        b'{"result":null,"id":1',
        b'{"error":"oops","id":1}',
        b'{"error":{"code":"2","msg":"x"},"id":1}',
        b'{"e":"serverShutdown"}',
        b'{"stream":"!serverShutdown","data":{"e":"trade"}}',
        b'{"id":1,"foo":2}',
        b'{"result":null,"id":1.5}',
    ],
)
def test_parse_control_malformed(frame: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        B.parse_control(frame)


def test_parse_control_does_not_parse_data_frames() -> None:
    # A data frame that is not even valid JSON is recognised by its prefix alone.
    assert B.parse_control(b'{"stream":"btcusdt@trade","data":{broken') is None
    assert B.stream_of(b'{"stream":"btcusdt@trade","data":{broken') == "btcusdt@trade"


# ---------------------------------------------------------------------------------------------
# URLs and REST helpers
# ---------------------------------------------------------------------------------------------


def test_ws_urls() -> None:
    assert B.ws_url(SPOT, streams=["btcusdt@trade", "btcusdt@depth@100ms"]) == (
        "wss://stream.binance.com:9443/stream?streams=btcusdt@trade/btcusdt@depth@100ms"
    )
    assert B.ws_url(SPOT, B.SPOT_WS_DATA_BASE, ["btcusdt@kline_1m"]) == (
        "wss://data-stream.binance.vision/stream?streams=btcusdt@kline_1m"
    )
    assert B.ws_url(SPOT) == "wss://stream.binance.com:9443/stream"
    assert B.ws_url(USDM, streams=["btcusdt@depth@0ms", "btcusdt@bookTicker"]) == (
        "wss://fstream.binance.com/public/stream?streams=btcusdt@depth@0ms/btcusdt@bookTicker"
    )
    assert B.ws_url(USDM, "ws://127.0.0.1:9000/", ["btcusdt@aggTrade"], "market") == (
        "ws://127.0.0.1:9000/market/stream?streams=btcusdt@aggTrade"
    )
    assert B.ws_url(USDM, route="market") == "wss://fstream.binance.com/market/stream"


@pytest.mark.parametrize(
    ("venue", "streams", "route"),
    [
        (USDM, ["btcusdt@depth", "btcusdt@aggTrade"], None),  # two routes
        (USDM, ["btcusdt@depth"], "market"),  # wrong route: would silently stay quiet
        (USDM, [], None),  # no way to choose a route
        (USDM, ["btcusdt@depth"], "private"),
        (SPOT, ["btcusdt@trade"], "public"),
        (SPOT, ["BTCUSDT@trade"], None),
    ],
)
def test_ws_url_rejects(venue: str, streams: list[str], route: Any) -> None:
    with pytest.raises(LocalProtocolError):
        B.ws_url(venue, None, streams, route)


@pytest.mark.parametrize(
    ("venue", "limit", "weight"),
    [
        (SPOT, None, 5),
        (SPOT, 1, 5),
        (SPOT, 100, 5),
        (SPOT, 101, 25),
        (SPOT, 500, 25),
        (SPOT, 501, 50),
        (SPOT, 1000, 50),
        (SPOT, 1001, 250),
        (SPOT, 5000, 250),
        (SPOT, 10000, 250),
        (USDM, None, 10),
        (USDM, 5, 2),
        (USDM, 50, 2),
        (USDM, 100, 5),
        (USDM, 500, 10),
        (USDM, 1000, 20),
    ],
)
def test_depth_weight(venue: str, limit: int | None, weight: int) -> None:
    assert B.depth_weight(venue, limit) == weight


@pytest.mark.parametrize(("venue", "limit"), [(SPOT, 0), (USDM, 200), (USDM, 5000), (USDM, 0)])
def test_depth_weight_rejects(venue: str, limit: int) -> None:
    with pytest.raises(LocalProtocolError):
        B.depth_weight(venue, limit)


def test_rest_paths_and_headers() -> None:
    assert B.depth_path(SPOT, "BNBBTC", 5000) == "/api/v3/depth?symbol=BNBBTC&limit=5000"
    assert B.depth_path(USDM, "BTCUSDT", 1000) == "/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
    assert B.depth_path(USDM, "BTCUSDT") == "/fapi/v1/depth?symbol=BTCUSDT"
    assert B.exchange_info_path(SPOT) == "/api/v3/exchangeInfo"
    assert B.exchange_info_path(USDM) == "/fapi/v1/exchangeInfo"
    with pytest.raises(LocalProtocolError):
        B.depth_path(SPOT, "btcusdt")
    with pytest.raises(LocalProtocolError):
        B.depth_path(USDM, "BTCUSDT", 7)
    assert B.used_weight({"x-mbx-used-weight-1m": "42", "Content-Type": "x"}) == 42
    assert B.used_weight([("X-MBX-USED-WEIGHT-1M", " 7 ")]) == 7
    assert B.used_weight({"X-MBX-USED-WEIGHT-1S": "1"}) is None
    with pytest.raises(RemoteProtocolError):
        B.used_weight({"X-MBX-USED-WEIGHT-1M": "lots"})


_SPOT_EXCHANGE_INFO = (
    b'{"timezone":"UTC","serverTime":1565246363776,"rateLimits":[{"rateLimitType":'
    b'"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000}],"exchangeFilters":[],'
    b'"symbols":[{"symbol":"ETHBTC","status":"TRADING","baseAsset":"ETH","baseAssetPrecision":8,'
    b'"quoteAsset":"BTC","quoteAssetPrecision":8,"filters":[]}]}'
)
_USDM_EXCHANGE_INFO = (
    b'{"timezone":"UTC","serverTime":1565613908500,"exchangeFilters":[],"rateLimits":[],'
    b'"assets":[],"symbols":[{"symbol":"BLZUSDT","pair":"BLZUSDT","contractType":"PERPETUAL",'
    b'"deliveryDate":4133404800000,"onboardDate":1598252400000,"status":"TRADING",'
    b'"baseAsset":"BLZ","quoteAsset":"USDT","marginAsset":"USDT"}]}'
)


def test_parse_exchange_info() -> None:
    assert B.parse_exchange_info(_SPOT_EXCHANGE_INFO) == [
        SymbolInfo("ETHBTC", "TRADING", "ETH", "BTC")
    ]
    assert B.parse_exchange_info(_USDM_EXCHANGE_INFO) == [
        SymbolInfo("BLZUSDT", "TRADING", "BLZ", "USDT")
    ]
    for bad in (b"{", b"{}", b'{"symbols":[{"symbol":"X"}]}', b'{"symbols":[1]}'):
        with pytest.raises(RemoteProtocolError):
            B.parse_exchange_info(bad)


# ---------------------------------------------------------------------------------------------
# Depth continuity
# ---------------------------------------------------------------------------------------------

# Steps: ("e", U, u[, pu]) feeds an event, ("s", lastUpdateId) a snapshot; then the action.
SYNC_CASES: dict[str, tuple[str, list[tuple[tuple[Any, ...], B.DepthAction]]]] = {
    "spot: buffer, snapshot inside the first run, discard, apply": (
        SPOT,
        [
            (("e", 100, 105), NeedSnapshot()),
            (("e", 106, 110), Buffer()),
            (("e", 111, 120), Buffer()),
            (("s", 108), UseSnapshot()),
            (("e", 100, 105), Discard()),
            (("e", 106, 110), Apply()),  # U <= 108 <= u
            (("e", 111, 120), Apply()),
            (("e", 121, 121), Apply()),
            (("e", 115, 120), Discard()),  # stale (u < book id)
            (("e", 123, 130), Gap(122, 123)),  # U > book id + 1: restart
            (("e", 131, 140), Buffer()),
            (("s", 135), UseSnapshot()),
            (("e", 123, 130), Discard()),
            (("e", 131, 140), Apply()),
        ],
    ),
    "spot: snapshot older than the first event is refetched": (
        SPOT,
        [
            (("e", 100, 105), NeedSnapshot()),
            (("s", 90), SnapshotTooOld(90, 100)),
            (("e", 106, 110), Buffer()),
            (("s", 99), SnapshotTooOld(99, 100)),  # U == lastUpdateId + 1 on the FIRST event
            (("s", 100), UseSnapshot()),
            (("e", 100, 105), Apply()),  # U <= 100 <= u
            (("e", 106, 110), Apply()),
        ],
    ),
    "spot: snapshot ending exactly at an event boundary (U == lastUpdateId + 1)": (
        SPOT,
        [
            (("e", 100, 105), NeedSnapshot()),
            (("e", 106, 110), Buffer()),
            (("s", 105), UseSnapshot()),
            (("e", 100, 105), Discard()),  # u <= lastUpdateId
            (("e", 106, 110), Apply()),  # U == lastUpdateId + 1 continues the book
        ],
    ),
    "spot: a hole in the buffer right after the snapshot": (
        SPOT,
        [
            (("e", 100, 105), NeedSnapshot()),
            (("e", 108, 110), Buffer()),
            (("s", 105), UseSnapshot()),
            (("e", 100, 105), Discard()),
            (("e", 108, 110), Gap(106, 108)),
        ],
    ),
    "spot: duplicate event after sync is applied again (u == book id)": (
        SPOT,
        [
            (("e", 100, 105), NeedSnapshot()),
            (("s", 102), UseSnapshot()),
            (("e", 100, 105), Apply()),
            (("e", 100, 105), Apply()),  # step 7: only u < book id is ignored; idempotent
            (("e", 106, 106), Apply()),
        ],
    ),
    "usdm: pu chain, drop u < lastUpdateId, first event straddles": (
        USDM,
        [
            (("e", 100, 105, 90), NeedSnapshot()),
            (("e", 107, 110, 105), Buffer()),
            (("e", 113, 120, 110), Buffer()),
            (("s", 110), UseSnapshot()),
            (("e", 100, 105, 90), Discard()),
            (("e", 107, 110, 105), Apply()),  # u == lastUpdateId is kept (drop is u < id)
            (("e", 113, 120, 110), Apply()),  # U jumps: fine, only pu matters
            (("e", 125, 130, 121), Gap(120, 121)),  # pu != previous u: refetch
            (("e", 131, 140, 130), Buffer()),
            (("s", 128), UseSnapshot()),
            (("e", 125, 130, 121), Apply()),
            (("e", 131, 140, 130), Apply()),
        ],
    ),
    "usdm: snapshot older than the first event, then one between events": (
        USDM,
        [
            (("e", 100, 105, 90), NeedSnapshot()),
            (("s", 99), SnapshotTooOld(99, 100)),
            (("e", 108, 110, 105), Buffer()),
            (("s", 106), UseSnapshot()),
            (("e", 100, 105, 90), Discard()),
            (("e", 108, 110, 105), Gap(106, 108)),  # U <= lastUpdateId fails
        ],
    ),
    "snapshot before any event": (
        SPOT,
        [
            (("s", 50), UseSnapshot()),
            (("e", 45, 50), Discard()),
            (("e", 51, 55), Apply()),
        ],
    ),
}


@pytest.mark.parametrize("name", list(SYNC_CASES))
def test_depth_sync(name: str) -> None:
    venue, steps = SYNC_CASES[name]
    sync = DepthSync(venue)
    for i, (step, expected) in enumerate(steps):
        got = sync.event(*step[1:]) if step[0] == "e" else sync.snapshot(step[1])
        assert got == expected, f"step {i} {step}"


def test_depth_sync_needs_pu_on_usdm() -> None:
    with pytest.raises(LocalProtocolError):
        DepthSync(USDM).event(1, 2)
    with pytest.raises(RemoteProtocolError):
        DepthSync(SPOT).event(5, 4)


@pytest.mark.parametrize("venue", [SPOT, USDM])
def test_depth_sync_on_captured_run(venue: str) -> None:
    """The 2024 capture: its snapshot falls inside the first contiguous run of diff events."""
    snapshot = next(
        orjson.loads(line.payload)
        for line in corpus(venue, "depth_snapshot_rest")
        if "hftbacktest" in line.source
    )
    events = [
        orjson.loads(line.payload)["data"]
        for line in corpus(venue, "depthUpdate")
        if "hftbacktest" in line.source
    ]
    sync = DepthSync(venue)
    buffered: list[dict[str, Any]] = []
    for ev in events[:20]:
        act = sync.event(ev["U"], ev["u"], ev.get("pu"))
        assert isinstance(act, NeedSnapshot | Buffer)
        buffered.append(ev)
    assert sync.snapshot(snapshot["lastUpdateId"]) == UseSnapshot()
    actions = [type(sync.event(ev["U"], ev["u"], ev.get("pu"))).__name__ for ev in buffered]
    first = actions.index("Apply")
    assert set(actions[:first]) == {"Discard"}
    assert set(actions[first:]) == {"Apply"}
    ev = buffered[first]
    assert ev["U"] <= snapshot["lastUpdateId"] <= ev["u"]


@st.composite
def _chain(draw: st.DrawFn, venue: str) -> tuple[list[tuple[int, int, int]], int]:
    """A gap-free event chain (U, u, pu) and a snapshot id inside one event's [U, u]."""
    start = draw(st.integers(1, 10**12))
    sizes = draw(st.lists(st.integers(0, 20), min_size=1, max_size=30))
    # USDⓈ-M ids may jump between events (continuity is pu == previous u); Spot's may not.
    jumps = draw(st.lists(st.integers(1, 1 if venue == SPOT else 9), min_size=len(sizes)))
    events = []
    prev = start - 1
    for size, jump in zip(sizes, jumps + [1] * len(sizes), strict=False):
        first = prev + jump
        events.append((first, first + size, prev))
        prev = first + size
    k = draw(st.integers(0, len(events) - 1))
    snap = draw(st.integers(events[k][0], events[k][1]))
    return events, snap


def _feed(sync: DepthSync, ev: tuple[int, int, int]) -> B.DepthAction:
    return sync.event(ev[0], ev[1], ev[2])


@pytest.mark.parametrize("venue", [SPOT, USDM])
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_depth_sync_property_contiguous_then_drop_one(venue: str, data: st.DataObject) -> None:
    events, snap = data.draw(_chain(venue))
    sync = DepthSync(venue)
    assert [type(_feed(sync, ev)) for ev in events] == [NeedSnapshot] + [Buffer] * (len(events) - 1)
    assert sync.snapshot(snap) == UseSnapshot()
    actions = [_feed(sync, ev) for ev in events]
    n_discard = sum(1 for a in actions if a == Discard())
    # Exactly the events wholly inside the snapshot are dropped, everything after is applied.
    assert actions == [Discard()] * n_discard + [Apply()] * (len(events) - n_discard)
    assert sync.book_id == events[-1][1]

    # Losing any one event after the first applied one is reported as a gap at the next.
    applied = events[n_discard:]
    if len(applied) >= 3:
        lost = data.draw(st.integers(1, len(applied) - 2))
        sync = DepthSync(venue)
        for ev in events:
            _feed(sync, ev)
        sync.snapshot(snap)
        for ev in events[: n_discard + lost]:
            _feed(sync, ev)
        assert isinstance(_feed(sync, applied[lost + 1]), Gap)
