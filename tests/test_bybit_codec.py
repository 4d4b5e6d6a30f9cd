"""Bybit V5: topics, channel codecs (exact re-rendering), control replies, book continuity."""

from __future__ import annotations

import collections
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recorder.core._codec import ChannelCodec, channels_of, codec_for
from recorder.core._errors import LocalProtocolError, RemoteProtocolError, UnsupportedMessage
from recorder.venues import bybit as bb
from tests._shared import CorpusLine, corpus

VENUE_DIRS = ("bybit-spot", "bybit-linear", "bybit-inverse", "bybit-option")
# Which channels a corpus file may hold (the liquidation file has both generations).
KIND_CHANNELS = {
    "orderbook": {"orderbook"},
    "publicTrade": {"publicTrade"},
    "tickers": {"tickers"},
    "kline": {"kline"},
    "liquidation": {"liquidation", "allLiquidation"},
}


def _data_lines() -> list[CorpusLine]:
    return [
        line for v in VENUE_DIRS for line in corpus(v) if line.kind not in ("legacy_v2", "control")
    ]


def _roundtrip(codec: ChannelCodec, payload: bytes) -> tuple[bool, bytes]:
    d = codec.decode(payload)
    return d.exact, codec.render(d.fields, "", d.envelope)


def _arrow_row(codec: ChannelCodec, fields: dict[str, Any]) -> None:
    """The typed fields fit the declared Arrow schema."""
    schema = pa.schema(codec.typed_fields)
    table = pa.Table.from_pylist([fields], schema=schema)
    assert table.num_rows == 1


# --------------------------------------------------------------------------------------------
# Corpus


def test_corpus_data_lines_decode_and_reencode() -> None:
    lines = _data_lines()
    assert lines
    counts: collections.Counter[str] = collections.Counter()
    for line in lines:
        topic = bb.topic_of(line.payload)
        assert topic is not None and topic == line.stream, line.id
        info = bb.classify(line.venue, topic)
        assert info is not None, line.id
        assert info.channel in KIND_CHANNELS[line.kind], line.id
        assert bb.route(line.venue, line.payload).channel == info.channel
        codec = codec_for(line.venue, info.channel)
        decoded = codec.decode(line.payload)
        _arrow_row(codec, decoded.fields)
        assert codec.event_ns(decoded.fields) is not None, line.id
        rendered = codec.render(decoded.fields, topic, decoded.envelope)
        if line.exact:
            assert decoded.exact, line.id
            assert rendered == line.payload, line.id
            counts["exact"] += 1
        elif decoded.exact and rendered == line.payload:
            counts["noted_exact"] += 1
        else:
            counts["noted_raw"] += 1
    # 659 byte-exact lines; of the 27 rebuilt (noted) ones only the alphabetically sorted
    # liquidation.GALAUSDT falls back to raw bytes.
    assert counts["exact"] >= 650
    assert counts["noted_raw"] <= 1, counts


def test_corpus_legacy_v2_is_unsupported() -> None:
    n = 0
    for venue in ("bybit-linear", "bybit-inverse"):
        for line in corpus(venue, "legacy_v2"):
            n += 1
            assert bb.detect_legacy(line.payload), line.id
            with pytest.raises(UnsupportedMessage, match="v2 API"):
                bb.route(venue, line.payload)
            if b'"request"' in line.payload:
                with pytest.raises(UnsupportedMessage):
                    bb.parse_control(line.payload)
            else:
                for channel in ("orderbook", "publicTrade"):
                    with pytest.raises(UnsupportedMessage, match="retired"):
                        codec_for(venue, channel).decode(line.payload)
    assert n == 56


def test_corpus_current_lines_are_not_legacy() -> None:
    for line in _data_lines():
        assert not bb.detect_legacy(line.payload), line.id


def test_corpus_control_lines() -> None:
    n = 0
    for venue in ("bybit-spot", "bybit-linear"):
        for line in corpus(venue, "control"):
            n += 1
            assert bb.route(venue, line.payload).channel == "control"
            reply = bb.parse_control(line.payload)
            assert reply is not None, line.id
            assert reply.op == "subscribe" and reply.success
            assert reply.conn_id
            assert reply.resolve(["a", "b"]) == (["a", "b"], [])
    assert n == 4


# --------------------------------------------------------------------------------------------
# Documented examples (bybit-v5.md, compacted)

DOC_EXAMPLES: list[tuple[str, str, bytes]] = [
    (
        "bybit-linear",
        "orderbook",
        b'{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1672304484978,'
        b'"data":{"s":"BTCUSDT","b":[["16493.50","0.006"],["16493.00","0.100"]],'
        b'"a":[["16611.00","0.029"],["16612.00","0.213"]],"u":18521288,"seq":7961638724},'
        b'"cts":1672304484976}',
    ),
    (
        "bybit-linear",
        "orderbook",
        b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1687940967466,'
        b'"data":{"s":"BTCUSDT","b":[["30247.20","30.028"],["30245.40","0.224"],'
        b'["30242.10","1.593"],["30240.30","1.305"],["30240.00","0"]],'
        b'"a":[["30248.70","0"],["30249.30","0.892"],["30249.50","1.778"],["30249.60","0"],'
        b'["30251.90","2.947"],["30252.20","0.659"],["30252.50","4.591"]],'
        b'"u":177400507,"seq":66544703342},"cts":1687940967464}',
    ),
    (
        "bybit-linear",
        "publicTrade",
        b'{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,'
        b'"data":[{"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50",'
        b'"L":"PlusTick","i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false,'
        b'"seq":1783284617}]}',
    ),
    (
        "bybit-linear",
        "tickers",
        b'{"topic":"tickers.BTCUSDT","type":"snapshot","data":{"symbol":"BTCUSDT",'
        b'"tickDirection":"MinusTick","price24hPcnt":"-0.158315","lastPrice":"66666.60",'
        b'"prevPrice24h":"79206.20","highPrice24h":"79266.30","lowPrice24h":"65076.90",'
        b'"prevPrice1h":"66666.60","markPrice":"66666.60","indexPrice":"115418.19",'
        b'"openInterest":"492373.72","openInterestValue":"32824881841.75",'
        b'"turnover24h":"4936790807.6521","volume24h":"73191.3870","fundingIntervalHour":"8",'
        b'"fundingCap":"0.005","nextFundingTime":"1760342400000","fundingRate":"-0.005",'
        b'"bid1Price":"66666.60","bid1Size":"23789.165","ask1Price":"66666.70",'
        b'"ask1Size":"23775.469","preOpenPrice":"","preQty":"","curPreListingPhase":""},'
        b'"cs":9532239429,"ts":1760325052630}',
    ),
    (
        "bybit-linear",
        "tickers",
        b'{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT",'
        b'"bid1Price":"79114.50","bid1Size":"1.496"},"cs":793092205004,"ts":1787590405983}',
    ),
    (
        "bybit-spot",
        "tickers",
        b'{"topic":"tickers.BTCUSDT","ts":1673853746003,"type":"snapshot","cs":2588407389,'
        b'"data":{"symbol":"BTCUSDT","lastPrice":"21109.77","highPrice24h":"21426.99",'
        b'"lowPrice24h":"20575","prevPrice24h":"20704.93","volume24h":"6780.866843",'
        b'"turnover24h":"141946527.22907118","price24hPcnt":"0.0196",'
        b'"usdIndexPrice":"21120.2400136"}}',
    ),
    (
        "bybit-option",
        "tickers",
        b'{"id":"tickers.BTC-6JAN23-17500-C-2480334983-1672917511074",'
        b'"topic":"tickers.BTC-6JAN23-17500-C","ts":1672917511074,'
        b'"data":{"symbol":"BTC-6JAN23-17500-C","bidPrice":"0","bidSize":"0","bidIv":"0",'
        b'"askPrice":"10","askSize":"5.1","askIv":"0.514","lastPrice":"10",'
        b'"highPrice24h":"25","lowPrice24h":"5","markPrice":"7.86976724",'
        b'"indexPrice":"16823.73","markPriceIv":"0.4896","underlyingPrice":"16815.1",'
        b'"openInterest":"49.85","turnover24h":"446802.8473","volume24h":"26.55",'
        b'"totalVolume":"86","totalTurnover":"1437431","delta":"0.047831",'
        b'"gamma":"0.00021453","vega":"0.81351067","theta":"-19.9115368",'
        b'"predictedDeliveryPrice":"0","change24h":"-0.33333334"},"type":"snapshot"}',
    ),
    (
        "bybit-linear",
        "kline",
        b'{"topic":"kline.5.BTCUSDT","data":[{"start":1672324800000,"end":1672325099999,'
        b'"interval":"5","open":"16649.5","close":"16677","high":"16677","low":"16608",'
        b'"volume":"2.081","turnover":"34666.4005","confirm":false,"timestamp":1672324988882}],'
        b'"ts":1672324988882,"type":"snapshot"}',
    ),
    (
        "bybit-linear",
        "allLiquidation",
        b'{"topic":"allLiquidation.ROSEUSDT","type":"snapshot","ts":1739502303204,'
        b'"data":[{"T":1739502302929,"s":"ROSEUSDT","S":"Sell","v":"20000","p":"0.04499"}]}',
    ),
    (
        "bybit-spot",
        "orderbook_snapshot",
        b'{"retCode":0,"retMsg":"OK","result":{"s":"BTCUSDT","a":[["65557.7","16.606555"]],'
        b'"b":[["65485.47","47.081829"]],"ts":1716863719031,"u":230704,"seq":1432604333,'
        b'"cts":1716863718905},"retExtInfo":{},"time":1716863719382}',
    ),
    (
        "bybit-option",
        "orderbook",
        b'{"id":"orderbook.25.BTC-30JUN23-45000-P-3032585156-1680652790918",'
        b'"topic":"orderbook.25.BTC-30JUN23-45000-P","ts":1680652790918,'
        b'"data":{"s":"BTC-30JUN23-45000-P","b":[],"a":[],"u":0},"type":"snapshot"}',
    ),
    (
        "bybit-spot",
        "orderbook",  # spot trims zeros: one column mixes "65140" and "65140.4"
        b'{"topic":"orderbook.50.BTCUSDT","ts":1786310816516,"type":"delta","data":{'
        b'"s":"BTCUSDT","b":[["65140.4","0.885797"],["65140","0"]],"a":[["65141","1.2"]],'
        b'"u":5,"seq":9},"cts":1786310816511}',
    ),
]


@pytest.mark.parametrize(("venue", "channel", "payload"), DOC_EXAMPLES)
def test_documented_examples(venue: str, channel: str, payload: bytes) -> None:
    codec = codec_for(venue, channel)
    exact, out = _roundtrip(codec, payload)
    assert exact
    assert out == payload
    d = codec.decode(payload)
    _arrow_row(codec, d.fields)
    topic = bb.topic_of(payload)
    if topic is not None:
        info = bb.classify(venue, topic)
        assert info is not None and info.channel == channel


def test_field_values() -> None:
    book = codec_for("bybit-option", "orderbook").decode(DOC_EXAMPLES[10][2]).fields
    assert book["bids"] == [] and book["asks"] == [] and book["update_id"] == 0
    assert book["msg_id"].startswith("orderbook.25.") and book["cross_seq"] is None
    spot = codec_for("bybit-spot", "tickers").decode(DOC_EXAMPLES[5][2]).fields
    present = [
        k
        for k in (
            "sym",
            "last_price",
            "high_price_24h",
            "low_price_24h",
            "prev_price_24h",
            "volume_24h",
            "turnover_24h",
            "price_24h_pcnt",
            "usd_index_price",
        )
        if spot[k] is not None
    ]
    assert len(present) == 9
    assert spot["turnover_24h_text"] == "141946527.22907118"  # beyond float64 digits
    delta = codec_for("bybit-linear", "tickers").decode(DOC_EXAMPLES[4][2]).fields
    assert delta["bid1_price"] == 79114.5 and delta["bid1_size_dp"] == 3
    assert delta["ask1_price"] is None and delta["last_price"] is None
    assert delta["cross_seq"] == 793092205004 and delta["msg_type"] == "delta"
    trade = codec_for("bybit-linear", "publicTrade").decode(DOC_EXAMPLES[2][2]).fields
    assert trade["trades"][0]["trade_id"] == "20f43950-d8dd-5b31-9112-a178eb6023af"
    assert trade["trades"][0]["rpi"] is None
    snap = codec_for("bybit-linear", "tickers").decode(DOC_EXAMPLES[3][2]).fields
    assert snap["pre_open_price"] is None and snap["pre_open_price_dp"] == -1


def test_trade_struct_is_the_same_on_every_venue() -> None:
    types = {
        v: next(f.type for f in codec_for(v, "publicTrade").typed_fields if f.name == "trades")
        for v in bb.VENUES
    }
    assert len({str(t) for t in types.values()}) == 1


def test_registered_channels() -> None:
    common = {"session", "control", "unparsed"}
    base = {"orderbook", "publicTrade", "tickers", "orderbook_snapshot", "book_checkpoint"}
    assert set(channels_of("bybit-spot")) == base | {"kline"} | common
    assert set(channels_of("bybit-option")) == base | common
    for v in ("bybit-linear", "bybit-inverse"):
        assert set(channels_of(v)) == base | {"kline", "allLiquidation", "liquidation"} | common
    forbidden = {"venue", "channel", "symbol", "date", "hour"}
    for v in bb.VENUES:
        for ch in channels_of(v):
            names = {f.name for f in codec_for(v, ch).typed_fields}
            assert not names & forbidden, (v, ch)


def test_unknown_field_decodes_inexact() -> None:
    codec = codec_for("bybit-linear", "orderbook")
    payload = DOC_EXAMPLES[0][2].replace(b'"cts"', b'"new":1,"cts"')
    d = codec.decode(payload)
    assert not d.exact
    assert d.fields["update_id"] == 18521288
    inner = DOC_EXAMPLES[2][2].replace(b'"BT":false', b'"BT":false,"zz":"1"')
    d = codec_for("bybit-linear", "publicTrade").decode(inner)
    assert not d.exact and d.fields["trades"][0]["block_trade"] is False


def test_reordered_keys_decode_inexact() -> None:
    payload = orjson.dumps(dict(sorted(orjson.loads(DOC_EXAMPLES[8][2]).items())))
    d = codec_for("bybit-linear", "allLiquidation").decode(payload)
    assert not d.exact
    assert d.fields["liquidations"][0]["sym"] == "ROSEUSDT"


@pytest.mark.parametrize(
    "payload",
    [b'{"topic":"orderbook.50.BTCUSDT","type":', b"", b"not json", b'{"topic":"x"}'],
)
def test_malformed_is_remote_error(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        codec_for("bybit-linear", "orderbook").decode(payload)


def test_mismatched_shape_is_remote_error_not_legacy() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        codec_for("bybit-linear", "orderbook").decode(DOC_EXAMPLES[2][2])
    assert not isinstance(info.value, UnsupportedMessage)


def test_archive_line_terminator_is_kept() -> None:
    codec = codec_for("bybit-linear", "orderbook")
    for tail in (b"\r", b"\n", b"\r\n"):
        exact, out = _roundtrip(codec, DOC_EXAMPLES[0][2] + tail)
        assert exact and out == DOC_EXAMPLES[0][2] + tail


def test_book_checkpoint_roundtrip() -> None:
    for venue, topic in (
        ("bybit-linear", "orderbook.200.BTCUSDT"),
        ("bybit-spot", "orderbook.50.BTCUSDT"),
        ("bybit-option", "orderbook.25.BTC-30JUN23-45000-P"),
    ):
        payload = bb.checkpoint_payload(
            venue,
            topic,
            1786310818129,
            bids=[("65114.20", "6.054"), ("65114.10", "0.002")],
            asks=[("65114.30", "1.000")],
            update_id=15,
            cross_seq=99,
            cts_ms=1786310818127,
        )
        codec = codec_for(venue, "book_checkpoint")
        exact, out = _roundtrip(codec, payload)
        assert exact and out == payload
        fields = codec.decode(payload).fields
        assert fields["msg_type"] == "snapshot" and fields.get("msg_id") is None
        assert fields["update_id"] == 15
    with pytest.raises(LocalProtocolError):
        bb.checkpoint_payload("bybit-linear", "tickers.BTCUSDT", 1, bids=[], asks=[], update_id=1)


# --------------------------------------------------------------------------------------------
# Topics


@pytest.mark.parametrize(
    ("venue", "topic", "expected"),
    [
        ("bybit-spot", "orderbook.1.BTCUSDT", bb.TopicInfo("orderbook", "BTCUSDT", depth=1)),
        ("bybit-spot", "orderbook.1000.BTCUSDT", bb.TopicInfo("orderbook", "BTCUSDT", 1000)),
        ("bybit-spot", "orderbook.25.BTCUSDT", None),
        ("bybit-linear", "orderbook.500.XRPUSDT", bb.TopicInfo("orderbook", "XRPUSDT", 500)),
        (
            "bybit-option",
            "orderbook.25.BTC-30JUN23-45000-P",
            bb.TopicInfo("orderbook", "BTC-30JUN23-45000-P", 25),
        ),
        (
            "bybit-option",
            "orderbook.100.BTC-27MAR26-70000-P-USDT",
            bb.TopicInfo("orderbook", "BTC-27MAR26-70000-P-USDT", 100),
        ),
        ("bybit-option", "orderbook.50.BTC-30JUN23-45000-P", None),
        ("bybit-option", "publicTrade.BTC", bb.TopicInfo("publicTrade", "BTC")),
        ("bybit-option", "publicTrade.BTC-30JUN23-45000-P", None),
        ("bybit-linear", "publicTrade.BTCUSDT", bb.TopicInfo("publicTrade", "BTCUSDT")),
        ("bybit-inverse", "tickers.BTCUSDU23", bb.TopicInfo("tickers", "BTCUSDU23")),
        ("bybit-spot", "kline.D.BTCUSDT", bb.TopicInfo("kline", "BTCUSDT", interval="D")),
        ("bybit-linear", "kline.2.BTCUSDT", None),
        ("bybit-option", "kline.1.BTC-30JUN23-45000-P", None),
        ("bybit-linear", "allLiquidation.ROSEUSDT", bb.TopicInfo("allLiquidation", "ROSEUSDT")),
        ("bybit-spot", "allLiquidation.ROSEUSDT", None),
        ("bybit-inverse", "liquidation.XRPUSD", bb.TopicInfo("liquidation", "XRPUSD")),
        ("bybit-linear", "tickers.btcusdt", None),
        ("bybit-linear", "tickers", None),
        ("bybit-linear", "orderBookL2_25.BTCUSD", None),
        ("bybit-linear", "trade.BTCUSD", None),
        ("binance-spot", "tickers.BTCUSDT", None),
    ],
)
def test_classify(venue: str, topic: str, expected: bb.TopicInfo | None) -> None:
    assert bb.classify(venue, topic) == expected


@pytest.mark.parametrize(
    ("venue", "topic"),
    [
        ("bybit-linear", "orderbook.500.XRPUSDT"),  # retired 2025-09-30
        ("bybit-linear", "liquidation.BTCUSDT"),  # retired topic
        ("bybit-spot", "orderbook.25.BTCUSDT"),
        ("bybit-option", "allLiquidation.BTC"),
        ("bybit-linear", "publicTrade.btcusdt"),
    ],
)
def test_validate_topic_refuses(venue: str, topic: str) -> None:
    with pytest.raises(LocalProtocolError):
        bb.validate_topic(venue, topic)


@pytest.mark.parametrize(
    ("frame", "topic"),
    [
        (DOC_EXAMPLES[6][2], "tickers.BTC-6JAN23-17500-C"),  # "id" first, contains the topic
        (DOC_EXAMPLES[7][2], "kline.5.BTCUSDT"),
        (b'{"success":true,"ret_msg":"pong","op":"ping"}', None),
        (b'{"data":{"successTopics":["orderbook.100.X"]},"type":"COMMAND_RESP"}', None),
        (b'{"topic" : "tickers.BTCUSDT","ts":1}', "tickers.BTCUSDT"),
        (b'{"topic":"tickers.BTC', None),
    ],
)
def test_topic_of(frame: bytes, topic: str | None) -> None:
    assert bb.topic_of(frame) == topic


def test_route_unknown_topic() -> None:
    with pytest.raises(RemoteProtocolError):
        bb.route("bybit-linear", b'{"topic":"orderbook.rpi.BTCUSDT","type":"snapshot"}')
    assert bb.route("bybit-option", DOC_EXAMPLES[6][2]) == bb.Route(
        "tickers", "tickers.BTC-6JAN23-17500-C", "BTC-6JAN23-17500-C"
    )


# --------------------------------------------------------------------------------------------
# Control protocol


def test_requests() -> None:
    assert bb.subscribe_request(["a.B"], "7") == b'{"req_id":"7","op":"subscribe","args":["a.B"]}'
    assert bb.unsubscribe_request(["a.B"]) == b'{"op":"unsubscribe","args":["a.B"]}'
    assert bb.ping_request("100001") == b'{"req_id":"100001","op":"ping"}'
    assert bb.ping_request() == b'{"op":"ping"}'
    with pytest.raises(LocalProtocolError):
        bb.subscribe_request([])
    with pytest.raises(LocalProtocolError):
        bb.subscribe_request(["orderbook.25.BTCUSDT"], venue="bybit-spot")
    eleven = [f"tickers.S{i}USDT" for i in range(11)]
    with pytest.raises(LocalProtocolError, match="10"):
        bb.subscribe_request(eleven, venue="bybit-spot")
    assert bb.subscribe_request(eleven, venue="bybit-linear").count(b"tickers.") == 11


def test_plan_requests_spot_limit() -> None:
    topics = [f"publicTrade.SYM{i}USDT" for i in range(25)]
    plan = bb.plan_requests("bybit-spot", [*topics, topics[0]])
    assert [len(r) for r in plan] == [10, 10, 5]
    assert [t for r in plan for t in r] == topics
    capped = bb.plan_requests("bybit-spot", topics, per_request=50)
    assert [len(r) for r in capped] == [10, 10, 5]


def test_plan_requests_derivatives() -> None:
    topics = [f"tickers.SYM{i}USDT" for i in range(250)]
    assert [len(r) for r in bb.plan_requests("bybit-linear", topics)] == [100, 100, 50]
    assert [len(r) for r in bb.plan_requests("bybit-linear", topics, per_request=250)] == [250]


def test_plan_requests_budget() -> None:
    long = [f"orderbook.1000.SYMBOL{i:05d}USDT" for i in range(1000)]  # 30 chars each
    assert sum(map(len, long)) > bb.ARGS_CHARS_PER_CONNECTION
    with pytest.raises(LocalProtocolError, match="21000"):
        bb.plan_requests("bybit-linear", long)
    conns = bb.plan_connections("bybit-linear", long)
    assert len(conns) == 2 and all(sum(map(len, c)) <= 21_000 for c in conns)
    for c in conns:
        bb.check_connection_budget("bybit-linear", c)
    opts = [f"publicTrade.C{i}" for i in range(2001)]
    with pytest.raises(LocalProtocolError, match="2000"):
        bb.plan_requests("bybit-option", opts)
    conns = bb.plan_connections("bybit-option", opts)
    assert [t for c in conns for t in c] == opts
    for c in conns:
        bb.check_connection_budget("bybit-option", c)
    with pytest.raises(LocalProtocolError):
        bb.plan_requests("bybit-spot", ["orderbook.25.BTCUSDT"])


CONTROL_TABLE: list[tuple[bytes, dict[str, Any]]] = [
    (
        b'{"success":true,"ret_msg":"subscribe","conn_id":"2324d924-aa4d-45b0-a858-7b8be29ab52b",'
        b'"req_id":"10001","op":"subscribe"}',
        {"op": "subscribe", "success": True, "req_id": "10001", "resolve": (["x"], [])},
    ),
    (
        b'{"success":true,"ret_msg":"","conn_id":"3cd84cb1-4d06-4a05-930a-2efe5fc70f0f",'
        b'"req_id":"","op":"subscribe"}',
        {"op": "subscribe", "success": True, "req_id": "", "resolve": (["x"], [])},
    ),
    (
        b'{"success":true,"conn_id":"aa01fbfffe80af37-00000001-000b37b9-7147f432704fd28c-'
        b'00e1c172","data":{"failTopics":[],"successTopics":["orderbook.100.BTC-6JAN23-18000-C"]},'
        b'"type":"COMMAND_RESP"}',
        {
            "op": "subscribe",
            "success": True,
            "per_topic": True,
            "accepted": ("orderbook.100.BTC-6JAN23-18000-C",),
        },
    ),
    (
        b'{"success":true,"conn_id":"c1","data":{"failTopics":["orderbook.25.NOPE"],'
        b'"successTopics":["publicTrade.BTC"]},"type":"COMMAND_RESP"}',
        {
            "op": "subscribe",
            "success": False,
            "refused": ("orderbook.25.NOPE",),
            "resolve": (["publicTrade.BTC"], ["orderbook.25.NOPE"]),
        },
    ),
    (
        b'{"success":false,"ret_msg":"args size >10","conn_id":"0a555e6f-199c-49bb-9bb8-'
        b'6f8adcd8b057","op":"subscribe"}',
        {
            "op": "subscribe",
            "success": False,
            "message": "args size >10",
            "req_id": None,
            "resolve": ([], ["x"]),
        },
    ),
    (
        b'{"success":false,"ret_msg":"error:handler not found,topic:dcp.future","conn_id":"c",'
        b'"req_id":"dcp.future","op":"subscribe"}',
        {"op": "subscribe", "success": False, "refused": ("dcp.future",)},
    ),
    (
        b'{"success":false,"ret_msg":"error:handler not found","conn_id":"c","op":"subscribe"}',
        {"op": "subscribe", "success": False, "refused": ()},
    ),
    (
        b'{"success":true,"ret_msg":"pong","conn_id":"0970e817-426e-429a-a679-ff7f55e0b16a",'
        b'"op":"ping"}',
        {"op": "pong", "success": True},
    ),
    (
        b'{"success":true,"ret_msg":"pong","conn_id":"465772b1-7630-4fdc-a492-e003e6f0f260",'
        b'"req_id":"","op":"ping"}',
        {"op": "pong", "success": True, "req_id": ""},
    ),
    (b'{"args":["1672916271846"],"op":"pong"}', {"op": "pong", "server_ms": 1672916271846}),
    (
        b'{"req_id":"test","op":"pong","args":["1675418560633"],"conn_id":"cfcb4ocsvfriu23r3er0-1b"}',
        {"op": "pong", "req_id": "test", "server_ms": 1675418560633},
    ),
    (
        b'{"success":true,"ret_msg":"","conn_id":"x","req_id":"u1","op":"unsubscribe"}',
        {"op": "unsubscribe", "success": True, "req_id": "u1"},
    ),
]


@pytest.mark.parametrize(("frame", "expected"), CONTROL_TABLE)
def test_parse_control(frame: bytes, expected: dict[str, Any]) -> None:
    reply = bb.parse_control(frame)
    assert reply is not None
    assert bb.route("bybit-linear", frame).channel == "control"
    for key, value in expected.items():
        if key == "resolve":
            assert (
                reply.resolve(
                    ["x"] if not reply.per_topic else ["publicTrade.BTC", "orderbook.25.NOPE"]
                )
                == value
            )
        else:
            assert getattr(reply, key) == value, key


def test_parse_control_non_control() -> None:
    assert bb.parse_control(DOC_EXAMPLES[0][2]) is None
    assert bb.parse_control(b"[1,2]") is None
    with pytest.raises(RemoteProtocolError):
        bb.parse_control(b"{nope")


# --------------------------------------------------------------------------------------------
# Book continuity


def _run(sync: bb.BookSync, msgs: list[tuple[str, int]]) -> list[list[bb.BookEvent]]:
    return [sync.on_message(t, u) for t, u in msgs]


def test_booksync_normal_and_gap() -> None:
    t = "orderbook.50.BTCUSDT"
    s = bb.BookSync(t)
    out = _run(
        s,
        [
            ("delta", 9),
            ("delta", 10),
            ("snapshot", 10),
            ("delta", 11),
            ("delta", 12),
            ("delta", 14),
            ("delta", 15),
            ("snapshot", 20),
            ("delta", 21),
        ],
    )
    assert out == [
        [bb.Gap(t, None, 9)],  # delta before any snapshot
        [],  # reported once until the next snapshot
        [bb.Synced(t, 10)],
        [],
        [],
        [bb.Gap(t, 13, 14)],
        [],
        [bb.Synced(t, 20)],
        [],
    ]
    assert s.last_u == 21 and s.synced


def test_booksync_resets_and_stale() -> None:
    t = "orderbook.200.ETHUSDT"
    s = bb.BookSync(t)
    out = _run(
        s,
        [
            ("snapshot", 5),
            ("delta", 6),
            ("snapshot", 40),
            ("delta", 41),
            ("snapshot", 1),
            ("delta", 2),
            ("delta", 2),
            ("delta", 1),
            ("delta", 3),
        ],
    )
    assert out == [
        [bb.Synced(t, 5)],
        [],
        [bb.Reset(t, 40, "snapshot")],
        [],
        [bb.Reset(t, 1, "restart")],
        [],
        [bb.Stale(t, 2, 2)],
        [bb.Stale(t, 2, 1)],
        [],
    ]


def test_booksync_level1_repeats_and_lenient_mode() -> None:
    t = "orderbook.1.BTCUSDT"
    s = bb.BookSync(t)
    out = _run(s, [("snapshot", 7), ("snapshot", 7), ("snapshot", 9), ("snapshot", 1)])
    assert out == [[bb.Synced(t, 7)], [], [], [bb.Reset(t, 1, "restart")]]
    lenient = bb.BookSync("orderbook.50.X", strict_increment=False)
    assert _run(lenient, [("snapshot", 1), ("delta", 5), ("delta", 9)]) == [
        [bb.Synced("orderbook.50.X", 1)],
        [],
        [],
    ]
    with pytest.raises(RemoteProtocolError):
        lenient.on_message("bogus", 1)


def test_booksync_on_corpus_runs() -> None:
    """The captured delta runs of each topic chain by +1 after their snapshot."""
    syncs: dict[str, bb.BookSync] = {}
    gaps = 0
    for venue in ("bybit-linear", "bybit-spot"):
        for line in corpus(venue, "orderbook"):
            if not line.exact:
                continue
            fields = codec_for(venue, "orderbook").decode(line.payload).fields
            key = f"{venue}|{line.source}|{fields['topic']}"
            sync = syncs.setdefault(key, bb.BookSync(fields["topic"]))
            gaps += sum(isinstance(e, bb.Gap) for e in sync.feed(fields))
    # The corpus keeps the first 60 deltas of one topic per source in order, plus a spread
    # of later deltas of other topics (which do skip).
    assert gaps > 0
    # linear BTCUSDT: snapshot u=15076952, then 60 deltas chaining by +1
    first = next(
        s
        for k, s in syncs.items()
        if k.startswith("bybit-linear|") and k.endswith("|orderbook.200.BTCUSDT")
    )
    assert first.synced and first.last_u == 15077012


# --------------------------------------------------------------------------------------------
# REST and URLs


def test_rest_requests() -> None:
    url, params = bb.orderbook_request("bybit-linear", "BTCUSDT")
    assert url == "https://api.bybit.com/v5/market/orderbook"
    assert params == {"category": "linear", "symbol": "BTCUSDT", "limit": "1000"}
    assert bb.orderbook_request("bybit-option", "BTC-6JAN23-18000-C")[1]["limit"] == "25"
    with pytest.raises(LocalProtocolError):
        bb.orderbook_request("bybit-option", "BTC-6JAN23-18000-C", 100)
    with pytest.raises(LocalProtocolError):
        bb.orderbook_request("bybit-spot", "btcusdt")
    url, params = bb.instruments_request("bybit-linear", "abc%3D", status="Trading")
    assert url.endswith("/v5/market/instruments-info")
    assert params == {
        "category": "linear",
        "limit": "1000",
        "status": "Trading",
        "cursor": "abc%3D",
    }
    assert "cursor" not in bb.instruments_request("bybit-spot")[1]
    assert bb.ws_url("bybit-option") == "wss://stream.bybit.com/v5/public/option"
    assert bb.ws_url("bybit-spot", host="ws://127.0.0.1:9000/") == (
        "ws://127.0.0.1:9000/v5/public/spot"
    )
    with pytest.raises(LocalProtocolError):
        bb.ws_url("binance-spot")


def test_parse_instruments_pages() -> None:
    page = (
        b'{"retCode":0,"retMsg":"OK","result":{"category":"linear","list":['
        b'{"symbol":"BTCUSDT","status":"Trading"},{"symbol":"OLDUSDT","status":"Closed"}],'
        b'"nextPageCursor":"first%3D500"},"retExtInfo":{},"time":1}'
    )
    assert bb.parse_instruments(page) == (["BTCUSDT", "OLDUSDT"], "first%3D500")
    assert bb.parse_instruments(page, statuses={"Trading"}) == (["BTCUSDT"], "first%3D500")
    last = page.replace(b"first%3D500", b"")
    assert bb.parse_instruments(last)[1] is None
    with pytest.raises(RemoteProtocolError):
        bb.parse_instruments(b'{"retCode":10001,"retMsg":"params error","result":{}}')
    with pytest.raises(RemoteProtocolError):
        bb.parse_instruments(b"<html>")


@pytest.mark.parametrize(
    ("status", "body", "limited"),
    [
        (403, b"access too frequent", True),
        (403, b"", True),
        (403, b'{"retCode":10003,"retMsg":"invalid api key"}', False),
        (200, b'{"retCode":10006,"retMsg":"Too many visits!"}', True),
        (200, b'{"retCode":0,"retMsg":"OK"}', False),
        (429, b"", True),
        (500, b"", False),
    ],
)
def test_is_rate_limited(status: int, body: bytes, limited: bool) -> None:
    assert bb.is_rate_limited(status, body) is limited


# --------------------------------------------------------------------------------------------
# Book level number formats (property)

_digits = st.integers(min_value=0, max_value=10**11)


def _text(n: int, dp: int) -> str:
    if dp == 0:
        return str(n)
    return f"{n // 10**dp}.{n % 10**dp:0{dp}d}"


@given(
    prices=st.lists(_digits, max_size=8),
    dp=st.integers(min_value=0, max_value=8),
    mode=st.sampled_from(["fixed", "zero_short", "trimmed"]),
)
def test_book_levels_roundtrip(prices: list[int], dp: int, mode: str) -> None:
    texts = [_text(n, dp) for n in prices]
    if mode == "zero_short":
        texts = ["0" if n == 0 else t for n, t in zip(prices, texts, strict=True)]
    elif mode == "trimmed":
        texts = [t.rstrip("0").rstrip(".") if "." in t else t for t in texts]
    levels = [[t, t] for t in texts]
    node = bb.BookLevels("bids")
    row: dict[str, Any] = {}
    node.extract(levels, row)
    assert "__extra__" not in row
    out: list[str] = []
    node.render(row, out)
    assert orjson.loads("".join(out)) == levels
    assert "".join(out) == orjson.dumps(levels).decode()


@pytest.mark.parametrize(
    ("venue", "payload"),
    [
        (
            "bybit-spot",
            b'{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[{"T":'
            b'1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","i":"2290000000'
            b'061666327","BT":false,"seq":1783284617}]}',
        ),
        (
            "bybit-option",
            b'{"id":"publicTrade.BTC-1-1672304486868","topic":"publicTrade.BTC","ts":1672304486868'
            b',"data":[{"T":1672304486865,"s":"BTC-27MAR26-70000-C","S":"Buy","v":"0.30","p":"2500'
            b'","i":"ea38b518-b4e1-429a-811d-b39d93ac058a","BT":false,"mP":"2500","iP":"65000.00",'
            b'"mIv":"0.5","iv":"0.49"}],"type":"snapshot"}',
        ),
    ],
)
def test_trades_in_the_documented_key_order_are_exact_too(venue: str, payload: bytes) -> None:
    """bybit-v5.md §4.2 example order (T,s,S,v,p,...) on spot and option, besides the live one."""
    codec = codec_for(venue, "publicTrade")
    d = codec.decode(payload)
    assert d.exact
    assert codec.render(d.fields, "publicTrade", d.envelope) == payload
