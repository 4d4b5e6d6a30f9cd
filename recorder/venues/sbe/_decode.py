"""Decoding SBE frames by the extension rules: groups start at ``8 + blockLength`` and entries
step by the group's own ``blockLength``, so a newer schema version that appends fields still
decodes (the row is then marked inexact, and the archive keeps its raw bytes).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any, Final

from recorder.core._codec import Decoded
from recorder.venues.sbe._layout import (
    _BBO_ROOT,
    _DIFF_ROOT,
    _HEADER,
    _LEVEL,
    _SNAPSHOT_ROOT,
    _TRADE,
    _TRADES_ROOT,
    _WALK,
    BEST_BID_ASK,
    DEPTH_DIFF,
    DEPTH_SNAPSHOT,
    MESSAGES,
    SCHEMA_ID,
    SCHEMA_VERSION,
    TRADES,
    Buffer,
    MessageLayout,
    SbeDecodeError,
)

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
