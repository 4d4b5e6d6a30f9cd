"""Binance SBE market-data codec: golden bytes, schema cross-check, round trips, hostile input."""

from __future__ import annotations

import copy
import pickle
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.core._codec import ChannelCodec, channels_of, codec_for
from recorder.core._errors import ConfigError, RemoteProtocolError
from recorder.venues import sbe as _sbe
from recorder.venues._jsonspec import Mismatch
from recorder.venues.sbe import (
    MESSAGES,
    ApiKey,
    SbeDecodeError,
    encode_best_bid_ask,
    encode_depth_diff,
    encode_depth_snapshot,
    encode_trades,
    frame_info,
    stream_name,
)
from recorder.venues.sbe import _layout as sbe_layout
from tests._shared import corpus, shared_dir

# The four worked examples of shared/protocols/binance-sbe.md §3, copied verbatim.
TRADE_HEX = (
    "120010270100000040222018240a060078202018240a0600fefb190002000000015ed0b20000000059a538"
    "0000000000f04902000000000001025ed0b2000000005aa5380000000000c409000000000000000742544355"
    "534454"
)
BBO_HEX = (
    "3200112701000000404d2118240a06007b6641ce0c000000fefb59a5380000000000c0d40100000000005aa5"
    "38000000000050c30000000000000742544355534454"
)
SNAPSHOT_HEX = (
    "1200122701000000e0d32218240a06007d6641ce0c000000fefb1000020059a5380000000000c0d401000000"
    "00002ca538000000000000350c0000000000100002005aa538000000000050c300000000000090a538000000"
    "0000e8030000000000000742544355534454"
)
DIFF_HEX = (
    "1a0013270100000030972318240a06007e6641ce0c000000826641ce0c000000fefb1000020059a538000000"
    "0000000000000000000058a5380000000000e093040000000000100001005aa5380000000000f82401000000"
    "00000742544355534454"
)
TRADE = bytes.fromhex(TRADE_HEX)
BBO = bytes.fromhex(BBO_HEX)
SNAPSHOT = bytes.fromhex(SNAPSHOT_HEX)
DIFF = bytes.fromhex(DIFF_HEX)
GOLDEN = {"trade": TRADE, "bestBidAsk": BBO, "depth20": SNAPSHOT, "depth": DIFF}


def _level(m_price: int, price: float, m_qty: int, qty: float) -> dict[str, Any]:
    return {"price": price, "price_mantissa": m_price, "qty": qty, "qty_mantissa": m_qty}


EXPECTED: dict[str, tuple[int, int, dict[str, Any]]] = {
    # channel: (length, templateId, fields) -- values from the "field by field" listings
    "trade": (
        90,
        10000,
        {
            "event_time": 1700000000123456,
            "transact_time": 1700000000123000,
            "price_exponent": -2,
            "qty_exponent": -5,
            "trades": [
                {
                    "id": 3000000001,
                    "price": 37123.45,
                    "price_mantissa": 3712345,
                    "qty": 1.5,
                    "qty_mantissa": 150000,
                    "is_buyer_maker": True,
                },
                {
                    "id": 3000000002,
                    "price": 37123.46,
                    "price_mantissa": 3712346,
                    "qty": 0.025,
                    "qty_mantissa": 2500,
                    "is_buyer_maker": False,
                },
            ],
            "sym": "BTCUSDT",
            "schema_version": 0,
        },
    ),
    "bestBidAsk": (
        66,
        10001,
        {
            "event_time": 1700000000200000,
            "book_update_id": 55000000123,
            "price_exponent": -2,
            "qty_exponent": -5,
            "bid_price": 37123.45,
            "bid_price_mantissa": 3712345,
            "bid_qty": 1.2,
            "bid_qty_mantissa": 120000,
            "ask_price": 37123.46,
            "ask_price_mantissa": 3712346,
            "ask_qty": 0.5,
            "ask_qty_mantissa": 50000,
            "sym": "BTCUSDT",
            "schema_version": 0,
        },
    ),
    "depth20": (
        106,
        10002,
        {
            "event_time": 1700000000300000,
            "book_update_id": 55000000125,
            "price_exponent": -2,
            "qty_exponent": -5,
            "bids": [_level(3712345, 37123.45, 120000, 1.2), _level(3712300, 37123.0, 800000, 8.0)],
            "asks": [_level(3712346, 37123.46, 50000, 0.5), _level(3712400, 37124.0, 1000, 0.01)],
            "sym": "BTCUSDT",
            "schema_version": 0,
        },
    ),
    "depth": (
        98,
        10003,
        {
            "event_time": 1700000000350000,
            "first_book_update_id": 55000000126,
            "last_book_update_id": 55000000130,
            "price_exponent": -2,
            "qty_exponent": -5,
            "bids": [_level(3712345, 37123.45, 0, 0.0), _level(3712344, 37123.44, 300000, 3.0)],
            "asks": [_level(3712346, 37123.46, 75000, 0.75)],
            "sym": "BTCUSDT",
            "schema_version": 0,
        },
    ),
}


# --------------------------------------------------------------------------------------------
# Golden bytes


@pytest.mark.parametrize("channel", list(GOLDEN))
def test_golden_decodes_field_by_field(channel: str) -> None:
    frame = GOLDEN[channel]
    length, template_id, fields = EXPECTED[channel]
    assert len(frame) == length
    assert struct.unpack_from("<4H", frame) == (
        MESSAGES[template_id].block_length,
        template_id,
        1,
        0,
    )
    codec = codec_for("binance-sbe", channel)
    decoded = codec.decode(frame)
    assert decoded.exact and decoded.envelope == 0
    assert decoded.fields == fields
    # exact types too: == would accept 1 == True or 37123.0 == 37123
    for key, value in fields.items():
        assert type(decoded.fields[key]) is type(value), key
    assert _sbe.decode(frame) == (channel, decoded)
    assert codec.event_ns(decoded.fields) == fields["event_time"] * 1000
    assert frame_info(frame) == (template_id, "BTCUSDT")
    assert stream_name(template_id, "BTCUSDT") == f"btcusdt@{channel}"
    assert _sbe.channel_of(template_id) == channel


@pytest.mark.parametrize("channel", list(GOLDEN))
def test_golden_rerenders_byte_exact(channel: str) -> None:
    codec = codec_for("binance-sbe", channel)
    frame = GOLDEN[channel]
    stream = stream_name(frame_info(frame)[0], "BTCUSDT")
    assert codec.render(codec.decode(frame).fields, stream, 0) == frame


def test_golden_via_public_encoders() -> None:
    common: dict[str, Any] = {"symbol": "BTCUSDT", "price_exponent": -2, "qty_exponent": -5}
    trades = [(3000000001, 3712345, 150000, True), (3000000002, 3712346, 2500, False)]
    assert (
        encode_trades(
            event_time_us=1700000000123456,
            transact_time_us=1700000000123000,
            trades=trades,
            **common,
        )
        == TRADE
    )
    assert (
        encode_best_bid_ask(
            event_time_us=1700000000200000,
            book_update_id=55000000123,
            bid_price=3712345,
            bid_qty=120000,
            ask_price=3712346,
            ask_qty=50000,
            **common,
        )
        == BBO
    )
    assert (
        encode_depth_snapshot(
            event_time_us=1700000000300000,
            book_update_id=55000000125,
            bids=[(3712345, 120000), (3712300, 800000)],
            asks=[(3712346, 50000), (3712400, 1000)],
            **common,
        )
        == SNAPSHOT
    )
    assert (
        encode_depth_diff(
            event_time_us=1700000000350000,
            first_book_update_id=55000000126,
            last_book_update_id=55000000130,
            bids=[(3712345, 0), (3712344, 300000)],
            asks=[(3712346, 75000)],
            **common,
        )
        == DIFF
    )


def test_truncated_trade_example_is_rejected() -> None:
    with pytest.raises(SbeDecodeError, match=r"truncated symbol: 7 bytes expected at offset 83"):
        codec_for("binance-sbe", "trade").decode(TRADE[:-1])
    with pytest.raises(SbeDecodeError):
        frame_info(TRADE[:-1])


@pytest.mark.parametrize("channel", list(GOLDEN))
def test_every_truncation_and_trailing_byte_is_rejected(channel: str) -> None:
    frame = GOLDEN[channel]
    codec = codec_for("binance-sbe", channel)
    for cut in range(len(frame)):
        with pytest.raises(SbeDecodeError):
            codec.decode(frame[:cut])
    with pytest.raises(SbeDecodeError, match=r"1 trailing bytes after the symbol, from offset"):
        codec.decode(frame + b"\x00")


# --------------------------------------------------------------------------------------------
# Specific hostile frames and forward compatibility


def _header(block_length: int, template_id: int, schema_id: int = 1, version: int = 0) -> bytes:
    return struct.pack("<4H", block_length, template_id, schema_id, version)


def test_schema_id_mismatch_is_named() -> None:
    frame = _header(18, 10000, schema_id=2) + TRADE[8:]
    with pytest.raises(
        SbeDecodeError, match=r"schema id 2 is not the market-data stream schema \(1\)"
    ):
        _sbe.decode(frame)


def test_unknown_template_is_named() -> None:
    with pytest.raises(SbeDecodeError, match=r"templateId 10004 at offset 2"):
        _sbe.decode(_header(18, 10004) + TRADE[8:])


def test_short_frames() -> None:
    for frame in (b"", b"\x12", TRADE[:7]):
        with pytest.raises(SbeDecodeError, match=r"shorter than the 8-byte message header"):
            frame_info(frame)


def test_channel_template_mismatch() -> None:
    with pytest.raises(SbeDecodeError, match=r"on channel trade, which expects templateId 10000"):
        codec_for("binance-sbe", "trade").decode(BBO)


def test_huge_group_counts_do_not_read_past_the_frame() -> None:
    # numInGroup 2**31-1 entries of 25 bytes, in a 90-byte frame
    frame = TRADE[:26] + struct.pack("<HI", 25, 2**31 - 1) + TRADE[32:]
    with pytest.raises(SbeDecodeError, match=r"2147483647 entries of 25 bytes from offset 32"):
        _sbe.decode(frame)
    frame = TRADE[:26] + struct.pack("<HI", 25, 2**32 - 1) + TRADE[32:]
    with pytest.raises(SbeDecodeError, match=r"exceeds the schema maximum 2147483647"):
        _sbe.decode(frame)
    # blockLength 0 would let a huge count cost nothing: rejected as too short
    frame = TRADE[:26] + struct.pack("<HI", 0, 2**31 - 1) + TRADE[32:]
    with pytest.raises(SbeDecodeError, match=r"group blockLength 0 at offset 26 is shorter"):
        _sbe.decode(frame)
    frame = SNAPSHOT[:26] + struct.pack("<HH", 16, 65535) + SNAPSHOT[30:]
    with pytest.raises(SbeDecodeError, match=r"bids: 65535 entries of 16 bytes"):
        _sbe.decode(frame)


def test_short_root_block_is_rejected() -> None:
    with pytest.raises(SbeDecodeError, match=r"blockLength 17 at offset 0 is shorter than the 18"):
        _sbe.decode(_header(17, 10000) + TRADE[8:])


def test_invalid_utf8_symbol() -> None:
    frame = BBO[:-7] + b"BTC\xffSDT"
    with pytest.raises(SbeDecodeError, match=r"symbol at offset 59 is not valid UTF-8"):
        frame_info(frame)


def test_unicode_symbol_and_empty_groups() -> None:
    frame = encode_depth_snapshot(
        symbol="币安人生USDT",
        event_time_us=1,
        book_update_id=2,
        price_exponent=-8,
        qty_exponent=0,
        bids=[],
        asks=[],
    )
    assert frame_info(frame) == (10002, "币安人生USDT")
    assert stream_name(10002, "币安人生USDT") == "币安人生usdt@depth20"
    channel, decoded = _sbe.decode(frame)
    assert decoded.fields["bids"] == [] and decoded.fields["asks"] == []
    assert codec_for("binance-sbe", channel).render(decoded.fields, "", 0) == frame


def test_longer_root_block_decodes_but_is_inexact() -> None:
    # A future version appending 2 bytes to the root block: groups start at 8 + blockLength.
    frame = _header(20, 10000, version=1) + TRADE[8:26] + b"\xaa\xbb" + TRADE[26:]
    decoded = codec_for("binance-sbe", "trade").decode(frame)
    assert not decoded.exact
    expected = dict(EXPECTED["trade"][2], schema_version=1)
    assert decoded.fields == expected


def test_longer_group_entries_decode_but_are_inexact() -> None:
    # Entries stepped by the group's blockLength (27), not by the 25 bytes we know.
    body = TRADE[8:26] + struct.pack("<HI", 27, 2)
    body += TRADE[32:57] + b"\x01\x02" + TRADE[57:82] + b"\x03\x04" + TRADE[82:]
    decoded = _sbe.decode(_header(18, 10000) + body)[1]
    assert not decoded.exact
    assert decoded.fields == EXPECTED["trade"][2]


def test_newer_version_with_same_layout_rerenders_exactly() -> None:
    frame = _header(50, 10001, version=3) + BBO[8:]
    codec = codec_for("binance-sbe", "bestBidAsk")
    decoded = codec.decode(frame)
    assert decoded.exact and decoded.fields["schema_version"] == 3
    assert codec.render(decoded.fields, "", 0) == frame
    # a newer version may append var data: accepted, but kept raw
    assert not codec.decode(frame + b"\x02ab").exact


def test_non_boolean_is_buyer_maker_is_inexact() -> None:
    frame = bytearray(TRADE)
    frame[56] = 255  # SBE's null value for a uint8 enum
    decoded = _sbe.decode(bytes(frame))[1]
    assert not decoded.exact
    assert decoded.fields["trades"][0]["is_buyer_maker"] is None
    with pytest.raises(Mismatch):
        codec_for("binance-sbe", "trade").render(decoded.fields, "", 0)


def test_render_rejects_envelopes_and_bad_values() -> None:
    codec = codec_for("binance-sbe", "bestBidAsk")
    fields = codec.decode(BBO).fields
    with pytest.raises(Mismatch):
        codec.render(fields, "btcusdt@bestBidAsk", 1)
    with pytest.raises(Mismatch, match="root fields"):
        codec.render(dict(fields, price_exponent=300), "", 0)
    with pytest.raises(Mismatch, match="255"):
        codec.render(dict(fields, sym="X" * 256), "", 0)
    with pytest.raises(KeyError):
        codec.render({k: v for k, v in fields.items() if k != "sym"}, "", 0)


def test_encoder_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match=r"trades\[1\]"):
        encode_trades(
            symbol="X",
            event_time_us=0,
            transact_time_us=0,
            price_exponent=0,
            qty_exponent=0,
            trades=[(1, 2, 3, True), (1, 2**63, 3, False)],
        )
    with pytest.raises(ValueError, match="at most 65535"):
        encode_depth_diff(
            symbol="X",
            event_time_us=0,
            first_book_update_id=0,
            last_book_update_id=0,
            price_exponent=0,
            qty_exponent=0,
            bids=[(1, 1)] * 65536,
            asks=[],
        )


# --------------------------------------------------------------------------------------------
# Registration and archive integration


def test_codecs_are_registered() -> None:
    typed: list[ChannelCodec] = list(_sbe.CODECS.values())  # mypy checks the protocol
    assert [c.channel for c in typed] == ["trade", "bestBidAsk", "depth20", "depth"]
    channels = set(channels_of("binance-sbe"))
    assert {"trade", "bestBidAsk", "depth20", "depth", "control", "session"} <= channels
    for channel in ("trade", "bestBidAsk", "depth20", "depth"):
        codec = codec_for("binance-sbe", channel)
        assert codec.binary and codec.venue == "binance-sbe" and codec.channel == channel
        names = [f.name for f in codec.typed_fields]
        assert len(names) == len(set(names))
        assert not set(names) & {"symbol", "venue", "channel", "date", "hour"}
        times = [f for f in codec.typed_fields if f.name.endswith("_time")]
        assert times and all(f.type == pa.timestamp("us", tz="UTC") for f in times)
    assert not codec_for("binance-sbe", "control").binary  # JSON replies are text frames


def _int_times(schema: pa.Schema) -> pa.Schema:
    return pa.schema(
        [pa.field(f.name, pa.int64()) if pa.types.is_timestamp(f.type) else f for f in schema]
    )


@pytest.mark.parametrize("channel", list(GOLDEN))
def test_fields_survive_an_arrow_round_trip(channel: str) -> None:
    codec = codec_for("binance-sbe", channel)
    fields = codec.decode(GOLDEN[channel]).fields
    schema = pa.schema(codec.typed_fields)
    table = pa.Table.from_pylist([fields], schema=schema)
    assert table.column("event_time")[0].value == fields["event_time"]  # µs, not ms or ns
    back = table.cast(_int_times(schema)).to_pylist()[0]  # how the archive reads rows back
    assert back == fields
    assert codec.render(back, "", 0) == GOLDEN[channel]


# --------------------------------------------------------------------------------------------
# Cross-check of the layout in code against the official XML schema

_SIZE = {"int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "int64": 8}
_UMAX = {"uint8": 255, "uint16": 65535, "uint32": 2**32 - 1}
_SBE_NS = "{http://fixprotocol.io/2016/sbe}"
_MBX_NS = "{https://developers.binance.com/docs/binance-spot-api-docs}"


def _schema_root() -> ET.Element:
    path = shared_dir() / "protocols" / "binance-sbe" / "stream_1_0.xml"
    return ET.parse(path).getroot()


def _primitives(root: ET.Element) -> dict[str, str]:
    types = root.find("types")
    assert types is not None
    prims: dict[str, str] = {}
    for t in types.findall("type"):
        prims[t.attrib["name"]] = t.attrib["primitiveType"]
    for e in types.findall("enum"):
        prims[e.attrib["name"]] = e.attrib["encodingType"]
    return prims


def _layout(
    elems: list[ET.Element], prims: dict[str, str]
) -> tuple[list[tuple[str, int, str]], list[str], int]:
    """(name, offset, primitive) of the on-wire fields, the constant ones, the block length."""
    fields: list[tuple[str, int, str]] = []
    constants: list[str] = []
    offset = 0
    for f in elems:
        if f.attrib.get("presence") == "constant":
            constants.append(f.attrib["name"])
            continue
        prim = prims.get(f.attrib.get("type", ""), f.attrib.get("primitiveType", ""))
        offset = int(f.attrib.get("offset", offset))
        fields.append((f.attrib["name"], offset, prim))
        offset += _SIZE[prim]
    return fields, constants, offset


def _code(fields: tuple[_sbe.FieldLayout, ...]) -> list[tuple[str, int, str]]:
    return [(f.name, f.offset, f.primitive) for f in fields]


def test_layout_matches_the_official_schema() -> None:
    root = _schema_root()
    assert root.tag == _SBE_NS + "messageSchema"
    assert int(root.attrib["id"]) == _sbe.SCHEMA_ID
    assert int(root.attrib["version"]) == _sbe.SCHEMA_VERSION
    assert root.attrib["byteOrder"] == "littleEndian"
    prims = _primitives(root)
    types = root.find("types")
    assert types is not None
    composites = {c.attrib["name"]: c for c in types.findall("composite")}

    for code in (_sbe.HEADER_LAYOUT, _sbe.GROUP_SIZE, _sbe.GROUP_SIZE16):
        xml_fields, _, size = _layout(composites[code.name].findall("type"), prims)
        assert _code(code.fields) == xml_fields, code.name
        assert struct.calcsize("<" + "".join(sbe_layout._CHAR[p] for _, _, p in xml_fields)) == size
    assert sbe_layout._HEADER.size == 8
    for code in (_sbe.GROUP_SIZE, _sbe.GROUP_SIZE16):
        (count,) = (t for t in composites[code.name] if t.attrib["name"] == "numInGroup")
        xml_max = int(count.attrib.get("maxValue", _UMAX[count.attrib["primitiveType"]]))
        assert code.max_count == xml_max, code.name
    var = composites["varString8"].findall("type")
    assert [(t.attrib["name"], t.attrib["primitiveType"]) for t in var] == [
        ("length", "uint8"),
        ("varData", "uint8"),
    ]
    assert var[1].attrib["characterEncoding"] == "UTF-8"

    messages = root.findall(_SBE_NS + "message")
    assert sorted(int(m.attrib["id"]) for m in messages) == sorted(MESSAGES)
    for msg in messages:
        code_msg = MESSAGES[int(msg.attrib["id"])]
        assert code_msg.name == msg.attrib["name"]
        fields, constants, block = _layout(msg.findall("field"), prims)
        assert _code(code_msg.fields) == fields, code_msg.name
        assert constants == []
        assert code_msg.block_length == int(msg.attrib.get("blockLength", block))
        assert sbe_layout._ROOT[code_msg.template_id].size == code_msg.block_length
        groups = msg.findall("group")
        assert [g.attrib["name"] for g in groups] == [g.name for g in code_msg.groups]
        for g, code_group in zip(groups, code_msg.groups, strict=True):
            assert int(g.attrib["id"]) == code_group.group_id
            dimension = g.attrib.get("dimensionType", "groupSizeEncoding")
            assert code_group.dimension.name == dimension
            gfields, gconstants, gblock = _layout(g.findall("field"), prims)
            assert _code(code_group.fields) == gfields, f"{code_msg.name}.{code_group.name}"
            assert list(code_group.constants) == gconstants
            assert code_group.block_length == int(g.attrib.get("blockLength", gblock))
        data = msg.findall("data")
        assert [(d.attrib["name"], d.attrib["type"]) for d in data] == [
            (n, "varString8") for n in code_msg.data
        ]
        # The decoder scales every price by priceExponent and every qty by qtyExponent.
        for f in msg.iter("field"):
            exponent = f.attrib.get(_MBX_NS + "exponent")
            if exponent is not None:
                kind = "price" if f.attrib["name"].lower().endswith("price") else "qty"
                assert f.attrib["name"].lower().endswith(kind)
                assert exponent == kind + "Exponent"
        # and the exponents precede the mantissas in the root block
        names = [n for n, _, _ in fields]
        assert names.index("priceExponent") < min(
            (i for i, n in enumerate(names) if n.endswith(("Price", "Qty"))), default=99
        )


# --------------------------------------------------------------------------------------------
# Corpus: user-data frames of another schema (id 3)


def test_user_data_frames_of_schema_3_are_rejected() -> None:
    lines = list(corpus("binance-sbe", "user_data"))
    assert lines
    for line in lines:
        assert line.binary
        with pytest.raises(SbeDecodeError) as info:
            _sbe.decode(line.payload)
        assert "schema id 3 is not the market-data stream schema (1)" in str(info.value), line.id
        assert isinstance(info.value, RemoteProtocolError)
        with pytest.raises(SbeDecodeError, match="schema id 3"):
            frame_info(line.payload)


# --------------------------------------------------------------------------------------------
# Property tests

I64 = st.integers(-(2**63), 2**63 - 1)
EXPONENTS = st.integers(-128, 127)
SYMBOLS = st.text(max_size=60)  # at most 240 UTF-8 bytes
VERSIONS = st.one_of(st.just(0), st.integers(0, 65535))
LEVELS = st.lists(st.tuples(I64, I64), max_size=25)


def _scaled(mantissa: int, exponent: int) -> float:
    return mantissa / 10**-exponent if exponent < 0 else float(mantissa * 10**exponent)


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, str, dict[str, Any]]:
    """A valid frame, its channel and the plain values it was built from."""
    kind = draw(st.sampled_from(["trade", "bestBidAsk", "depth20", "depth"]))
    common = {
        "symbol": draw(SYMBOLS),
        "event_time_us": draw(I64),
        "price_exponent": draw(EXPONENTS),
        "qty_exponent": draw(EXPONENTS),
        "schema_version": draw(VERSIONS),
    }
    args: dict[str, Any]
    if kind == "trade":
        trades = draw(st.lists(st.tuples(I64, I64, I64, st.booleans()), max_size=25))
        args = dict(common, transact_time_us=draw(I64), trades=trades)
        return encode_trades(**args), kind, args
    if kind == "bestBidAsk":
        names = ("book_update_id", "bid_price", "bid_qty", "ask_price", "ask_qty")
        args = dict(common, **{n: draw(I64) for n in names})
        return encode_best_bid_ask(**args), kind, args
    args = dict(common, bids=draw(LEVELS), asks=draw(LEVELS))
    if kind == "depth20":
        args["book_update_id"] = draw(I64)
        return encode_depth_snapshot(**args), kind, args
    args["first_book_update_id"] = draw(I64)
    args["last_book_update_id"] = draw(I64)
    return encode_depth_diff(**args), kind, args


@settings(max_examples=300, deadline=None)
@given(messages())
def test_encode_decode_encode_identity(msg: tuple[bytes, str, dict[str, Any]]) -> None:
    frame, kind, args = msg
    channel, decoded = _sbe.decode(frame)
    assert channel == kind and decoded.exact
    f = decoded.fields
    pe, qe = args["price_exponent"], args["qty_exponent"]
    assert f["sym"] == args["symbol"]
    assert f["event_time"] == args["event_time_us"]
    assert f["schema_version"] == args["schema_version"]
    assert (f["price_exponent"], f["qty_exponent"]) == (pe, qe)
    if kind == "trade":
        assert f["transact_time"] == args["transact_time_us"]
        assert [
            (t["id"], t["price_mantissa"], t["qty_mantissa"], t["is_buyer_maker"])
            for t in f["trades"]
        ] == args["trades"]
        for t in f["trades"]:
            assert t["price"] == _scaled(t["price_mantissa"], pe)
            assert t["qty"] == _scaled(t["qty_mantissa"], qe)
    elif kind == "bestBidAsk":
        for name in ("bid_price", "bid_qty", "ask_price", "ask_qty"):
            assert f[name + "_mantissa"] == args[name]
            assert f[name] == _scaled(args[name], pe if name.endswith("price") else qe)
    else:
        for side in ("bids", "asks"):
            assert [(lv["price_mantissa"], lv["qty_mantissa"]) for lv in f[side]] == args[side]
    assert frame_info(frame) == (MESSAGES_BY_CHANNEL[kind], args["symbol"])
    codec = codec_for("binance-sbe", kind)
    assert codec.render(f, stream_name(MESSAGES_BY_CHANNEL[kind], f["sym"]), 0) == frame


MESSAGES_BY_CHANNEL = {m.channel: tid for tid, m in MESSAGES.items()}


def _check_hostile(frame: bytes) -> None:
    """Only SbeDecodeError may escape; whatever decodes as exact must re-render exactly."""
    try:
        channel, decoded = _sbe.decode(frame)
    except SbeDecodeError:
        with pytest.raises(SbeDecodeError):
            frame_info(frame)
        return
    assert frame_info(frame)[1] == decoded.fields["sym"]
    if decoded.exact:
        assert codec_for("binance-sbe", channel).render(decoded.fields, "", 0) == frame


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_sbe_errors(frame: bytes) -> None:
    _check_hostile(frame)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(sorted(MESSAGES)),
    st.integers(0, 60),
    st.sampled_from([0, 1, 7]),
    st.binary(max_size=200),
)
def test_random_bodies_behind_valid_headers(
    template_id: int, block_length: int, version: int, body: bytes
) -> None:
    _check_hostile(_header(block_length, template_id, version=version) + body)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.data())
def test_mutated_frames_raise_only_sbe_errors(
    msg: tuple[bytes, str, dict[str, Any]], data: st.DataObject
) -> None:
    frame = bytearray(msg[0])
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        if not frame:
            break
        i = data.draw(st.integers(0, len(frame) - 1))
        if op == "set":
            frame[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            frame[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del frame[i]
        else:
            del frame[i:]
    _check_hostile(bytes(frame))


@pytest.mark.parametrize("channel", list(GOLDEN))
def test_every_single_byte_change_of_the_goldens(channel: str) -> None:
    frame = GOLDEN[channel]
    for i in range(len(frame)):
        for value in (0x00, 0x01, 0x7F, 0x80, 0xFF, frame[i] ^ 0x10):
            _check_hostile(frame[:i] + bytes([value]) + frame[i + 1 :])


# --------------------------------------------------------------------------------------------
# API key

SECRET = "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI2kM4oQ6sU8wY0bD2fH4jL6nP8rT0vX2zZ9y"


def test_api_key_from_env_hides_the_secret() -> None:
    key = ApiKey.from_env(environ={"TICKTAPE_BINANCE_API_KEY": SECRET + "\n"})
    assert key.header() == ("X-MBX-APIKEY", SECRET)
    for text in (repr(key), str(key), f"{key}", f"{key!r}", repr([key]), repr({"k": key})):
        assert SECRET not in text and SECRET[:8] not in text
        assert f"ApiKey(****{SECRET[-4:]})" in text
    with pytest.raises(TypeError):
        pickle.dumps(key)
    assert copy.deepcopy({"k": key})["k"] is key
    assert key == ApiKey(SECRET) and key != ApiKey(SECRET[:-1])


def test_short_api_key_shows_nothing() -> None:
    assert repr(ApiKey("abcd1234")) == "ApiKey(****)"


def test_missing_api_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TICKTAPE_BINANCE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="TICKTAPE_BINANCE_API_KEY"):
        ApiKey.load()
    with pytest.raises(ConfigError, match="MY_KEY"):
        ApiKey.from_env("MY_KEY", environ={"MY_KEY": "  "})
    monkeypatch.setenv("TICKTAPE_BINANCE_API_KEY", SECRET)
    assert ApiKey.load().header()[1] == SECRET


def test_bad_api_keys_do_not_leak(tmp_path: Path) -> None:
    bad = SECRET[:20] + " " + SECRET[20:]
    makers: list[Callable[[], ApiKey]] = [
        lambda: ApiKey(bad),
        lambda: ApiKey.from_env("K", environ={"K": bad}),
        lambda: ApiKey(SECRET + "\r\nX-Evil: 1"),
    ]
    for make in makers:
        with pytest.raises(ConfigError) as info:
            make()
        assert SECRET[:20] not in str(info.value) and SECRET[:20] not in repr(info.value)
    path = tmp_path / "key"
    path.write_bytes(SECRET.encode() + b"\xff")
    with pytest.raises(ConfigError, match="not ASCII") as info:
        ApiKey.from_file(path)
    assert SECRET[:20] not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    path.write_text(SECRET + "\n")
    key = ApiKey.load(path)
    assert key.header() == ("X-MBX-APIKEY", SECRET) and SECRET not in repr(key)
    with pytest.raises(ConfigError, match="cannot read API key file"):
        ApiKey.from_file(tmp_path / "missing")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        ApiKey.from_file(tmp_path / "empty")
