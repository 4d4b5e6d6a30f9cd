"""Encoding SBE frames from typed fields: the exact inverse of :mod:`._decode`, used to
re-render archived rows and by the simulator.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from recorder.venues.sbe._layout import (
    _HEADER,
    _ROOT,
    _WALK,
    BEST_BID_ASK,
    DEPTH_DIFF,
    DEPTH_SNAPSHOT,
    SCHEMA_ID,
    SCHEMA_VERSION,
    TRADES,
    MessageLayout,
)

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
