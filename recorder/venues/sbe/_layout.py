"""The SBE layout of Binance's ``spot_stream`` schema (id 1, version 0) as data.

Names, offsets and primitive types exactly as in ``stream_1_0.xml``; the structs are derived
from this table, and a test cross-checks it against the official XML.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from recorder.core._errors import RemoteProtocolError

VENUE: Final = "binance-sbe"
SCHEMA_ID: Final = 1
SCHEMA_VERSION: Final = 0

Buffer = bytes | bytearray | memoryview


class SbeDecodeError(RemoteProtocolError):
    """A binary frame that is not a valid market-data SBE message of schema 1."""


# --------------------------------------------------------------------------------------------
# Layout (names, offsets and primitive types exactly as in stream_1_0.xml)


@dataclass(frozen=True, slots=True)
class FieldLayout:
    name: str
    offset: int
    primitive: str


@dataclass(frozen=True, slots=True)
class CompositeLayout:
    name: str
    fields: tuple[FieldLayout, ...]
    max_count: int = 0
    """For group dimension encodings: the largest ``numInGroup`` allowed."""


@dataclass(frozen=True, slots=True)
class GroupLayout:
    name: str
    group_id: int
    dimension: CompositeLayout
    block_length: int
    fields: tuple[FieldLayout, ...]
    constants: tuple[str, ...] = ()
    """Fields with ``presence="constant"``: in the schema, not on the wire."""


@dataclass(frozen=True, slots=True)
class MessageLayout:
    name: str
    template_id: int
    channel: str
    block_length: int
    fields: tuple[FieldLayout, ...]
    groups: tuple[GroupLayout, ...]
    data: tuple[str, ...]


_F = FieldLayout

HEADER_LAYOUT: Final = CompositeLayout(
    "messageHeader",
    (
        _F("blockLength", 0, "uint16"),
        _F("templateId", 2, "uint16"),
        _F("schemaId", 4, "uint16"),
        _F("version", 6, "uint16"),
    ),
)
GROUP_SIZE: Final = CompositeLayout(
    "groupSizeEncoding",
    (_F("blockLength", 0, "uint16"), _F("numInGroup", 2, "uint32")),
    max_count=2147483647,
)
GROUP_SIZE16: Final = CompositeLayout(
    "groupSize16Encoding",
    (_F("blockLength", 0, "uint16"), _F("numInGroup", 2, "uint16")),
    max_count=65535,
)
VAR_STRING8: Final = CompositeLayout("varString8", (_F("length", 0, "uint8"),))

_LEVEL_FIELDS = (_F("price", 0, "int64"), _F("qty", 8, "int64"))

TRADES: Final = MessageLayout(
    "TradesStreamEvent",
    10000,
    "trade",
    18,
    (
        _F("eventTime", 0, "int64"),
        _F("transactTime", 8, "int64"),
        _F("priceExponent", 16, "int8"),
        _F("qtyExponent", 17, "int8"),
    ),
    (
        GroupLayout(
            "trades",
            100,
            GROUP_SIZE,
            25,
            (
                _F("id", 0, "int64"),
                _F("price", 8, "int64"),
                _F("qty", 16, "int64"),
                _F("isBuyerMaker", 24, "uint8"),
            ),
            constants=("isBestMatch",),
        ),
    ),
    ("symbol",),
)
BEST_BID_ASK: Final = MessageLayout(
    "BestBidAskStreamEvent",
    10001,
    "bestBidAsk",
    50,
    (
        _F("eventTime", 0, "int64"),
        _F("bookUpdateId", 8, "int64"),
        _F("priceExponent", 16, "int8"),
        _F("qtyExponent", 17, "int8"),
        _F("bidPrice", 18, "int64"),
        _F("bidQty", 26, "int64"),
        _F("askPrice", 34, "int64"),
        _F("askQty", 42, "int64"),
    ),
    (),
    ("symbol",),
)
DEPTH_SNAPSHOT: Final = MessageLayout(
    "DepthSnapshotStreamEvent",
    10002,
    "depth20",
    18,
    (
        _F("eventTime", 0, "int64"),
        _F("bookUpdateId", 8, "int64"),
        _F("priceExponent", 16, "int8"),
        _F("qtyExponent", 17, "int8"),
    ),
    (
        GroupLayout("bids", 100, GROUP_SIZE16, 16, _LEVEL_FIELDS),
        GroupLayout("asks", 101, GROUP_SIZE16, 16, _LEVEL_FIELDS),
    ),
    ("symbol",),
)
DEPTH_DIFF: Final = MessageLayout(
    "DepthDiffStreamEvent",
    10003,
    "depth",
    26,
    (
        _F("eventTime", 0, "int64"),
        _F("firstBookUpdateId", 8, "int64"),
        _F("lastBookUpdateId", 16, "int64"),
        _F("priceExponent", 24, "int8"),
        _F("qtyExponent", 25, "int8"),
    ),
    (
        GroupLayout("bids", 100, GROUP_SIZE16, 16, _LEVEL_FIELDS),
        GroupLayout("asks", 101, GROUP_SIZE16, 16, _LEVEL_FIELDS),
    ),
    ("symbol",),
)

MESSAGES: Final[dict[int, MessageLayout]] = {
    m.template_id: m for m in (TRADES, BEST_BID_ASK, DEPTH_SNAPSHOT, DEPTH_DIFF)
}
"""Every market-data message of schema 1, by template id."""

_CHAR = {
    "int8": "b",
    "uint8": "B",
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "uint64": "Q",
}


def _struct(fields: Sequence[FieldLayout], size: int) -> struct.Struct:
    """A little-endian struct reading ``fields`` at their offsets (gaps become pad bytes)."""
    fmt = "<"
    pos = 0
    for f in sorted(fields, key=lambda f: f.offset):
        if f.offset < pos:
            raise ValueError(f"overlapping field {f.name} at {f.offset}")
        fmt += "x" * (f.offset - pos) + _CHAR[f.primitive]
        pos = f.offset + struct.calcsize("<" + _CHAR[f.primitive])
    if pos > size:
        raise ValueError(f"fields need {pos} bytes, block is {size}")
    return struct.Struct(fmt)


def _composite_size(c: CompositeLayout) -> int:
    last = max(c.fields, key=lambda f: f.offset)
    return last.offset + struct.calcsize("<" + _CHAR[last.primitive])


_HEADER = _struct(HEADER_LAYOUT.fields, 8)
_DIM_STRUCT = {c.name: _struct(c.fields, _composite_size(c)) for c in (GROUP_SIZE, GROUP_SIZE16)}
_ROOT = {tid: _struct(m.fields, m.block_length) for tid, m in MESSAGES.items()}
_TRADES_ROOT = _ROOT[TRADES.template_id]
_BBO_ROOT = _ROOT[BEST_BID_ASK.template_id]
_SNAPSHOT_ROOT = _ROOT[DEPTH_SNAPSHOT.template_id]
_DIFF_ROOT = _ROOT[DEPTH_DIFF.template_id]
_TRADE = _struct(TRADES.groups[0].fields, TRADES.groups[0].block_length)
_LEVEL = _struct(_LEVEL_FIELDS, 16)

# Per template: (name, dimension struct, known entry length, max count, entry struct) per group,
# precomputed so the per-frame walk does no attribute lookups on the layout objects.
_GroupWalk = tuple[str, struct.Struct, int, int, struct.Struct]
_WALK: dict[int, tuple[MessageLayout, tuple[_GroupWalk, ...]]] = {
    tid: (
        m,
        tuple(
            (
                g.name,
                _DIM_STRUCT[g.dimension.name],
                g.block_length,
                g.dimension.max_count,
                _struct(g.fields, g.block_length),
            )
            for g in m.groups
        ),
    )
    for tid, m in MESSAGES.items()
}

STREAM_SUFFIX: Final = {tid: m.channel for tid, m in MESSAGES.items()}


def channel_of(template_id: int) -> str:
    """The channel (and stream suffix) of a template id; KeyError if unknown."""
    return STREAM_SUFFIX[template_id]


def stream_name(template_id: int, symbol: str) -> str:
    """``<symbol lower>@<channel>``, the stream name Binance uses for this message kind."""
    return f"{symbol.lower()}@{STREAM_SUFFIX[template_id]}"
