"""Binance spot SBE market-data streams (venue ``binance-sbe``): layout, decoder, encoder, codecs.

Sans-IO and synchronous. Every market-data event arrives as one SBE message in one binary
WebSocket frame (schema ``spot_stream`` id 1, version 0, little-endian; templates 10000 trade,
10001 bestBidAsk, 10002 depth20, 10003 depth). The layout lives in this module as data
(:data:`MESSAGES`); the structs are derived from it, and a test cross-checks it against the
official ``stream_1_0.xml``. Nothing is read from disk at run time.

Decoding follows the SBE extension rules: groups start at ``8 + blockLength`` of the header and
entries are stepped by the group's own ``blockLength``, so a newer schema version that appends
fields still decodes (the row is then marked inexact, so the archive keeps its raw bytes).
Prices and quantities are stored twice: the exact ``int64`` mantissa with the message's
``int8`` exponent, and a ``float64`` value for analysis. Timestamps are microseconds.
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from recorder.core._codec import Decoded, register
from recorder.core._errors import ConfigError, RemoteProtocolError
from recorder.venues._channels import register_common
from recorder.venues._jsonspec import Mismatch

__all__ = [
    "API_KEY_ENV",
    "API_KEY_HEADER",
    "CODECS",
    "MESSAGES",
    "SCHEMA_ID",
    "SCHEMA_VERSION",
    "VENUE",
    "ApiKey",
    "FieldLayout",
    "SbeDecodeError",
    "channel_of",
    "encode_best_bid_ask",
    "encode_depth_diff",
    "encode_depth_snapshot",
    "encode_trades",
    "frame_info",
    "stream_name",
]

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


# --------------------------------------------------------------------------------------------
# Decoding

_Groups = list[tuple[int, int, int]]  # (entry block length, count, offset of first entry)


def _parse(buf: Buffer) -> tuple[MessageLayout, int, _Groups, str, bool]:
    """Validate a frame's structure: (layout, version, groups, symbol, exact).

    Every bound is checked before it is used, so nothing past the buffer is ever read and a
    huge count cannot make us loop (entries are at least the known entry length, > 0).
    """
    n = len(buf)
    if n < 8:
        raise SbeDecodeError(f"SBE frame of {n} bytes is shorter than the 8-byte message header")
    block_length, template_id, schema_id, version = _HEADER.unpack_from(buf, 0)
    if schema_id != SCHEMA_ID:
        raise SbeDecodeError(
            f"SBE schema id {schema_id} is not the market-data stream schema ({SCHEMA_ID}) "
            f"(header at offset 0: templateId {template_id}, version {version}, "
            f"frame length {n})"
        )
    walk = _WALK.get(template_id)
    if walk is None:
        raise SbeDecodeError(
            f"SBE templateId {template_id} at offset 2 is not a market-data message of schema "
            f"{SCHEMA_ID} (expected one of {', '.join(map(str, MESSAGES))})"
        )
    layout, groups = walk
    name = layout.name
    exact = True
    if block_length != layout.block_length:
        if block_length < layout.block_length:
            raise SbeDecodeError(
                f"{name}: header blockLength {block_length} at offset 0 is shorter than the "
                f"{layout.block_length} bytes of the known root fields"
            )
        exact = False  # a newer version's extra root fields: decodable, not re-renderable
    pos = 8 + block_length
    if pos > n:
        raise SbeDecodeError(
            f"{name}: truncated root block: blockLength {block_length} needs bytes 8..{pos}, "
            f"frame length is {n}"
        )
    found: _Groups = []
    for gname, dim, entry_length, max_count, _entry in groups:
        if pos + dim.size > n:
            raise SbeDecodeError(
                f"{name}.{gname}: truncated group header: {dim.size} bytes expected at offset "
                f"{pos}, frame length is {n}"
            )
        gbl, count = dim.unpack_from(buf, pos)
        if gbl < entry_length:
            raise SbeDecodeError(
                f"{name}.{gname}: group blockLength {gbl} at offset {pos} is shorter than the "
                f"{entry_length} bytes of the known entry fields"
            )
        if count > max_count:
            raise SbeDecodeError(
                f"{name}.{gname}: numInGroup {count} at offset {pos + 2} exceeds the schema "
                f"maximum {max_count}"
            )
        if gbl != entry_length:
            exact = False
        start = pos + dim.size
        pos = start + gbl * count
        if pos > n:
            raise SbeDecodeError(
                f"{name}.{gname}: {count} entries of {gbl} bytes from offset {start} need "
                f"{gbl * count} bytes, only {n - start} left (frame length {n})"
            )
        found.append((gbl, count, start))
    if pos >= n:
        raise SbeDecodeError(
            f"{name}: truncated: symbol length (uint8) expected at offset {pos}, frame "
            f"length is {n}"
        )
    length = buf[pos]
    start = pos + 1
    end = start + length
    if end > n:
        raise SbeDecodeError(
            f"{name}: truncated symbol: {length} bytes expected at offset {start}, only "
            f"{n - start} left (frame length {n})"
        )
    try:
        symbol = str(buf[start:end], "utf-8")
    except UnicodeDecodeError as exc:
        raise SbeDecodeError(
            f"{name}: symbol at offset {start} is not valid UTF-8 ({exc.reason} at offset "
            f"{start + exc.start})"
        ) from None
    if end != n:
        if version <= SCHEMA_VERSION:
            raise SbeDecodeError(
                f"{name}: {n - end} trailing bytes after the symbol, from offset {end} "
                f"(frame length {n}; version {version} ends with the symbol)"
            )
        exact = False  # a newer version may append var data; keep the raw bytes
    return layout, version, found, symbol, exact


def frame_info(frame: Buffer) -> tuple[int, str]:
    """(templateId, symbol) of a frame, validating its structure without decoding entries.

    The recorder calls this per binary frame to name the stream
    (:func:`stream_name`); raises :class:`SbeDecodeError` if the frame is malformed.
    """
    layout, _version, _groups, symbol, _exact = _parse(frame)
    return layout.template_id, symbol


_POW10: Final[tuple[int, ...]] = tuple(10**k for k in range(129))


def _scaler(exponent: int) -> Callable[[int], float]:
    """mantissa -> float(mantissa * 10**exponent), correctly rounded.

    int / int true division is correctly rounded in Python, unlike ``m * 0.01``.
    """
    if exponent < 0:
        return _POW10[-exponent].__rtruediv__
    k = _POW10[exponent]
    return lambda m: float(m * k)


_SCALERS: Final = tuple(_scaler(e) for e in range(-128, 128))


def _entries(
    buf: Buffer, group: tuple[int, int, int], entry: struct.Struct
) -> Iterator[tuple[Any, ...]]:
    """The known fields of each entry of a group (already bounds-checked by ``_parse``)."""
    gbl, count, start = group
    if gbl == entry.size:
        return entry.iter_unpack(memoryview(buf)[start : start + gbl * count])
    return (entry.unpack_from(buf, start + i * gbl) for i in range(count))


def _levels(
    buf: Buffer,
    group: tuple[int, int, int],
    price: Callable[[int], float],
    qty: Callable[[int], float],
) -> list[dict[str, Any]]:
    return [
        {"price": price(p), "price_mantissa": p, "qty": qty(q), "qty_mantissa": q}
        for p, q in _entries(buf, group, _LEVEL)
    ]


def _decode_trades(buf: Buffer, version: int, groups: _Groups, sym: str, exact: bool) -> Decoded:
    event_time, transact_time, pe, qe = _TRADES_ROOT.unpack_from(buf, 8)
    price, qty = _SCALERS[pe + 128], _SCALERS[qe + 128]
    trades: list[dict[str, Any]] = []
    for trade_id, p, q, maker in _entries(buf, groups[0], _TRADE):
        if maker > 1:
            is_maker: bool | None = None  # not a boolEnum value (255 is SBE's null)
            exact = False
        else:
            is_maker = maker == 1
        trades.append(
            {
                "id": trade_id,
                "price": price(p),
                "price_mantissa": p,
                "qty": qty(q),
                "qty_mantissa": q,
                "is_buyer_maker": is_maker,
            }
        )
    fields = {
        "event_time": event_time,
        "transact_time": transact_time,
        "price_exponent": pe,
        "qty_exponent": qe,
        "trades": trades,
        "sym": sym,
        "schema_version": version,
    }
    return Decoded(fields, 0, exact)


def _decode_bbo(buf: Buffer, version: int, groups: _Groups, sym: str, exact: bool) -> Decoded:
    event_time, update_id, pe, qe, bp, bq, ap, aq = _BBO_ROOT.unpack_from(buf, 8)
    price, qty = _SCALERS[pe + 128], _SCALERS[qe + 128]
    fields = {
        "event_time": event_time,
        "book_update_id": update_id,
        "price_exponent": pe,
        "qty_exponent": qe,
        "bid_price": price(bp),
        "bid_price_mantissa": bp,
        "bid_qty": qty(bq),
        "bid_qty_mantissa": bq,
        "ask_price": price(ap),
        "ask_price_mantissa": ap,
        "ask_qty": qty(aq),
        "ask_qty_mantissa": aq,
        "sym": sym,
        "schema_version": version,
    }
    return Decoded(fields, 0, exact)


def _decode_snapshot(buf: Buffer, version: int, groups: _Groups, sym: str, exact: bool) -> Decoded:
    event_time, update_id, pe, qe = _SNAPSHOT_ROOT.unpack_from(buf, 8)
    price, qty = _SCALERS[pe + 128], _SCALERS[qe + 128]
    fields = {
        "event_time": event_time,
        "book_update_id": update_id,
        "price_exponent": pe,
        "qty_exponent": qe,
        "bids": _levels(buf, groups[0], price, qty),
        "asks": _levels(buf, groups[1], price, qty),
        "sym": sym,
        "schema_version": version,
    }
    return Decoded(fields, 0, exact)


def _decode_diff(buf: Buffer, version: int, groups: _Groups, sym: str, exact: bool) -> Decoded:
    event_time, first_id, last_id, pe, qe = _DIFF_ROOT.unpack_from(buf, 8)
    price, qty = _SCALERS[pe + 128], _SCALERS[qe + 128]
    fields = {
        "event_time": event_time,
        "first_book_update_id": first_id,
        "last_book_update_id": last_id,
        "price_exponent": pe,
        "qty_exponent": qe,
        "bids": _levels(buf, groups[0], price, qty),
        "asks": _levels(buf, groups[1], price, qty),
        "sym": sym,
        "schema_version": version,
    }
    return Decoded(fields, 0, exact)


_DECODERS: Final[dict[int, Callable[[Buffer, int, _Groups, str, bool], Decoded]]] = {
    TRADES.template_id: _decode_trades,
    BEST_BID_ASK.template_id: _decode_bbo,
    DEPTH_SNAPSHOT.template_id: _decode_snapshot,
    DEPTH_DIFF.template_id: _decode_diff,
}


def decode(frame: Buffer) -> tuple[str, Decoded]:
    """(channel, typed fields) of any market-data frame; raises :class:`SbeDecodeError`."""
    layout, version, groups, symbol, exact = _parse(frame)
    return layout.channel, _DECODERS[layout.template_id](frame, version, groups, symbol, exact)


# --------------------------------------------------------------------------------------------
# Encoding


def _build(
    layout: MessageLayout,
    version: int,
    root: Sequence[Any],
    groups: Sequence[Sequence[Sequence[Any]]],
    symbol: str,
) -> bytes:
    try:
        sym = symbol.encode("utf-8")
    except (UnicodeEncodeError, AttributeError):
        raise ValueError(f"{layout.name}: symbol must be a str encodable as UTF-8") from None
    if len(sym) > 255:
        raise ValueError(f"{layout.name}: symbol is {len(sym)} UTF-8 bytes, at most 255 fit")
    _, walk = _WALK[layout.template_id]
    size = 8 + layout.block_length + 1 + len(sym)
    for (gname, dim, entry_length, max_count, _), entries in zip(walk, groups, strict=True):
        if len(entries) > max_count:
            raise ValueError(f"{layout.name}.{gname}: {len(entries)} entries, at most {max_count}")
        size += dim.size + entry_length * len(entries)
    out = bytearray(size)
    try:
        _HEADER.pack_into(out, 0, layout.block_length, layout.template_id, SCHEMA_ID, version)
    except struct.error as exc:
        raise ValueError(f"{layout.name}: schema version {version!r}: {exc}") from None
    try:
        _ROOT[layout.template_id].pack_into(out, 8, *root)
    except struct.error as exc:
        raise ValueError(f"{layout.name}: root fields {tuple(root)!r}: {exc}") from None
    pos = 8 + layout.block_length
    for (gname, dim, entry_length, _, entry), entries in zip(walk, groups, strict=True):
        dim.pack_into(out, pos, entry_length, len(entries))
        pos += dim.size
        for i, values in enumerate(entries):
            try:
                entry.pack_into(out, pos, *values)
            except struct.error as exc:
                raise ValueError(f"{layout.name}.{gname}[{i}] {values!r}: {exc}") from None
            pos += entry_length
    out[pos] = len(sym)
    out[pos + 1 :] = sym
    return bytes(out)


def encode_trades(
    *,
    symbol: str,
    event_time_us: int,
    transact_time_us: int,
    price_exponent: int,
    qty_exponent: int,
    trades: Sequence[tuple[int, int, int, bool]],
    schema_version: int = SCHEMA_VERSION,
) -> bytes:
    """A TradesStreamEvent; ``trades`` holds (id, price mantissa, qty mantissa, buyer maker)."""
    entries = [(t, p, q, _bool(m)) for t, p, q, m in trades]
    return _build(
        TRADES,
        schema_version,
        (event_time_us, transact_time_us, price_exponent, qty_exponent),
        (entries,),
        symbol,
    )


def _bool(value: Any) -> Any:
    # Only real booleans (and 0/1) are boolEnum values; anything else fails in struct.pack.
    return int(value) if isinstance(value, bool) else value


def encode_best_bid_ask(
    *,
    symbol: str,
    event_time_us: int,
    book_update_id: int,
    price_exponent: int,
    qty_exponent: int,
    bid_price: int,
    bid_qty: int,
    ask_price: int,
    ask_qty: int,
    schema_version: int = SCHEMA_VERSION,
) -> bytes:
    """A BestBidAskStreamEvent; prices and quantities are mantissas."""
    root = (
        event_time_us,
        book_update_id,
        price_exponent,
        qty_exponent,
        bid_price,
        bid_qty,
        ask_price,
        ask_qty,
    )
    return _build(BEST_BID_ASK, schema_version, root, (), symbol)


def encode_depth_snapshot(
    *,
    symbol: str,
    event_time_us: int,
    book_update_id: int,
    price_exponent: int,
    qty_exponent: int,
    bids: Sequence[tuple[int, int]],
    asks: Sequence[tuple[int, int]],
    schema_version: int = SCHEMA_VERSION,
) -> bytes:
    """A DepthSnapshotStreamEvent (``@depth20``); levels are (price, qty) mantissa pairs."""
    root = (event_time_us, book_update_id, price_exponent, qty_exponent)
    return _build(DEPTH_SNAPSHOT, schema_version, root, (bids, asks), symbol)


def encode_depth_diff(
    *,
    symbol: str,
    event_time_us: int,
    first_book_update_id: int,
    last_book_update_id: int,
    price_exponent: int,
    qty_exponent: int,
    bids: Sequence[tuple[int, int]],
    asks: Sequence[tuple[int, int]],
    schema_version: int = SCHEMA_VERSION,
) -> bytes:
    """A DepthDiffStreamEvent (``@depth``); levels are (price, qty) mantissa pairs."""
    root = (event_time_us, first_book_update_id, last_book_update_id, price_exponent, qty_exponent)
    return _build(DEPTH_DIFF, schema_version, root, (bids, asks), symbol)


def _level_pairs(levels: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    return [(lv["price_mantissa"], lv["qty_mantissa"]) for lv in levels]


def _render_trades(f: Mapping[str, Any]) -> bytes:
    return encode_trades(
        symbol=f["sym"],
        event_time_us=f["event_time"],
        transact_time_us=f["transact_time"],
        price_exponent=f["price_exponent"],
        qty_exponent=f["qty_exponent"],
        trades=[
            (t["id"], t["price_mantissa"], t["qty_mantissa"], t["is_buyer_maker"])
            for t in f["trades"]
        ],
        schema_version=f["schema_version"],
    )


def _render_bbo(f: Mapping[str, Any]) -> bytes:
    return encode_best_bid_ask(
        symbol=f["sym"],
        event_time_us=f["event_time"],
        book_update_id=f["book_update_id"],
        price_exponent=f["price_exponent"],
        qty_exponent=f["qty_exponent"],
        bid_price=f["bid_price_mantissa"],
        bid_qty=f["bid_qty_mantissa"],
        ask_price=f["ask_price_mantissa"],
        ask_qty=f["ask_qty_mantissa"],
        schema_version=f["schema_version"],
    )


def _render_snapshot(f: Mapping[str, Any]) -> bytes:
    return encode_depth_snapshot(
        symbol=f["sym"],
        event_time_us=f["event_time"],
        book_update_id=f["book_update_id"],
        price_exponent=f["price_exponent"],
        qty_exponent=f["qty_exponent"],
        bids=_level_pairs(f["bids"]),
        asks=_level_pairs(f["asks"]),
        schema_version=f["schema_version"],
    )


def _render_diff(f: Mapping[str, Any]) -> bytes:
    return encode_depth_diff(
        symbol=f["sym"],
        event_time_us=f["event_time"],
        first_book_update_id=f["first_book_update_id"],
        last_book_update_id=f["last_book_update_id"],
        price_exponent=f["price_exponent"],
        qty_exponent=f["qty_exponent"],
        bids=_level_pairs(f["bids"]),
        asks=_level_pairs(f["asks"]),
        schema_version=f["schema_version"],
    )


# --------------------------------------------------------------------------------------------
# Channel codecs

_TS = pa.timestamp("us", tz="UTC")
_LEVEL_TYPE = pa.list_(
    pa.struct(
        [
            pa.field("price", pa.float64()),
            pa.field("price_mantissa", pa.int64()),
            pa.field("qty", pa.float64()),
            pa.field("qty_mantissa", pa.int64()),
        ]
    )
)
_TRADE_TYPE = pa.list_(
    pa.struct(
        [
            pa.field("id", pa.int64()),
            pa.field("price", pa.float64()),
            pa.field("price_mantissa", pa.int64()),
            pa.field("qty", pa.float64()),
            pa.field("qty_mantissa", pa.int64()),
            pa.field("is_buyer_maker", pa.bool_()),
        ]
    )
)
_EXPONENTS = [pa.field("price_exponent", pa.int8()), pa.field("qty_exponent", pa.int8())]
# The header's version is kept so that frames of a newer, layout-compatible version still
# re-render exactly; blockLengths are not stored: a non-canonical one makes the row inexact.
_TAIL = [pa.field("sym", pa.string()), pa.field("schema_version", pa.uint16())]


def _money(name: str) -> list[pa.Field]:
    return [pa.field(name, pa.float64()), pa.field(name + "_mantissa", pa.int64())]


_TYPED_FIELDS: Final[dict[int, list[pa.Field]]] = {
    TRADES.template_id: [
        pa.field("event_time", _TS),
        pa.field("transact_time", _TS),
        *_EXPONENTS,
        pa.field("trades", _TRADE_TYPE),
        *_TAIL,
    ],
    BEST_BID_ASK.template_id: [
        pa.field("event_time", _TS),
        pa.field("book_update_id", pa.int64()),
        *_EXPONENTS,
        *_money("bid_price"),
        *_money("bid_qty"),
        *_money("ask_price"),
        *_money("ask_qty"),
        *_TAIL,
    ],
    DEPTH_SNAPSHOT.template_id: [
        pa.field("event_time", _TS),
        pa.field("book_update_id", pa.int64()),
        *_EXPONENTS,
        pa.field("bids", _LEVEL_TYPE),
        pa.field("asks", _LEVEL_TYPE),
        *_TAIL,
    ],
    DEPTH_DIFF.template_id: [
        pa.field("event_time", _TS),
        pa.field("first_book_update_id", pa.int64()),
        pa.field("last_book_update_id", pa.int64()),
        *_EXPONENTS,
        pa.field("bids", _LEVEL_TYPE),
        pa.field("asks", _LEVEL_TYPE),
        *_TAIL,
    ],
}

_RENDERERS: Final[dict[int, Callable[[Mapping[str, Any]], bytes]]] = {
    TRADES.template_id: _render_trades,
    BEST_BID_ASK.template_id: _render_bbo,
    DEPTH_SNAPSHOT.template_id: _render_snapshot,
    DEPTH_DIFF.template_id: _render_diff,
}


@dataclass(frozen=True)
class SbeChannel:
    """The codec of one SBE message kind (one template id), satisfying ``ChannelCodec``."""

    template_id: int
    venue: str = VENUE
    binary: bool = True

    @property
    def channel(self) -> str:
        return MESSAGES[self.template_id].channel

    @property
    def typed_fields(self) -> list[pa.Field]:
        return _TYPED_FIELDS[self.template_id]

    def decode(self, payload: bytes) -> Decoded:
        layout, version, groups, symbol, exact = _parse(payload)
        if layout.template_id != self.template_id:
            raise SbeDecodeError(
                f"{layout.name} (templateId {layout.template_id}) on channel {self.channel}, "
                f"which expects templateId {self.template_id}"
            )
        return _DECODERS[self.template_id](payload, version, groups, symbol, exact)

    def render(self, fields: Mapping[str, Any], stream: str, envelope: int) -> bytes:
        if envelope != 0:
            raise Mismatch(f"binance-sbe frames have no envelope, got {envelope}")
        try:
            return _RENDERERS[self.template_id](fields)
        except (ValueError, TypeError) as exc:
            raise Mismatch(str(exc)) from None

    def event_ns(self, fields: Mapping[str, Any]) -> int | None:
        us = fields.get("event_time")
        return None if us is None else int(us) * 1000


CODECS: Final = {m.channel: SbeChannel(tid) for tid, m in MESSAGES.items()}
"""The four market-data codecs by channel name."""

for _codec in CODECS.values():
    register(_codec)
register_common(VENUE)  # text frames (JSON replies, serverShutdown) go to ``control``


# --------------------------------------------------------------------------------------------
# API key

API_KEY_ENV: Final = "TICKTAPE_BINANCE_API_KEY"
API_KEY_HEADER: Final = "X-MBX-APIKEY"


class ApiKey:
    """The Ed25519 API key the SBE endpoint requires in the upgrade request's headers.

    The secret never appears in ``repr``/``str`` or in any error message (only, for long
    keys, its last 4 characters, enough to tell keys apart in logs).
    """

    __slots__ = ("_key",)

    def __init__(self, key: str, *, source: str = "the API key") -> None:
        key = key.strip()
        if not key:
            raise ConfigError(f"{source} is empty")
        # A header value must not carry spaces or control characters (header injection);
        # Binance keys are printable ASCII. The message names the source, never the value.
        if not all("!" <= c <= "~" for c in key):
            raise ConfigError(
                f"{source} contains characters that are not printable ASCII "
                "(whitespace, control or non-ASCII)"
            )
        self._key = key

    @classmethod
    def from_env(cls, var: str = API_KEY_ENV, environ: Mapping[str, str] | None = None) -> ApiKey:
        """The key in environment variable ``var``; ConfigError if unset or empty."""
        env = os.environ if environ is None else environ
        value = env.get(var)
        if value is None or not value.strip():
            raise ConfigError(
                f"binance-sbe needs an API key: set environment variable {var} (or pass a key file)"
            )
        return cls(value, source=f"environment variable {var}")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ApiKey:
        """The key stored in a file (surrounding whitespace ignored)."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read API key file {p}: {exc.strerror}") from None
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            # UnicodeDecodeError's text quotes a byte of the key: do not chain it.
            raise ConfigError(f"API key file {p} is not ASCII text") from None
        return cls(text, source=f"API key file {p}")

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, var: str = API_KEY_ENV) -> ApiKey:
        """From ``path`` if given, else from environment variable ``var``."""
        return cls.from_file(path) if path is not None else cls.from_env(var)

    def header(self) -> tuple[str, str]:
        """The ``("X-MBX-APIKEY", key)`` header pair for the WebSocket handshake."""
        return (API_KEY_HEADER, self._key)

    def __repr__(self) -> str:
        tail = self._key[-4:] if len(self._key) >= 16 else ""
        return f"ApiKey(****{tail})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ApiKey):
            return NotImplemented
        return hmac.compare_digest(self._key.encode(), other._key.encode())

    def __hash__(self) -> int:
        return hash(self._key)

    # Immutable: copies may share it (dataclasses.asdict deep-copies), but pickles may not
    # carry the secret to disk or to another process by accident.
    def __copy__(self) -> ApiKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ApiKey:
        return self

    def __reduce__(self) -> Any:
        raise TypeError("ApiKey cannot be pickled")
