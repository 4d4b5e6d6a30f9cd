"""SBE encoders for the simulator (``binance-sbe.md`` §2), on top of ``recorder.venues.sbe``."""

from __future__ import annotations

from collections.abc import Sequence

from recorder.venues import sbe as _rec


def encode_trades(
    event_us: int,
    transact_us: int,
    pexp: int,
    qexp: int,
    items: Sequence[tuple[int, int, int, bool]],
    symbol: str,
) -> bytes:
    return _rec.encode_trades(
        symbol=symbol,
        event_time_us=event_us,
        transact_time_us=transact_us,
        price_exponent=pexp,
        qty_exponent=qexp,
        trades=items,
    )


def encode_best_bid_ask(
    event_us: int, update_id: int, pexp: int, qexp: int, bbo: tuple[int, int, int, int], symbol: str
) -> bytes:
    return _rec.encode_best_bid_ask(
        symbol=symbol,
        event_time_us=event_us,
        book_update_id=update_id,
        price_exponent=pexp,
        qty_exponent=qexp,
        bid_price=bbo[0],
        bid_qty=bbo[1],
        ask_price=bbo[2],
        ask_qty=bbo[3],
    )


def encode_depth_snapshot(
    event_us: int,
    update_id: int,
    pexp: int,
    qexp: int,
    bids: Sequence[tuple[int, int]],
    asks: Sequence[tuple[int, int]],
    symbol: str,
) -> bytes:
    return _rec.encode_depth_snapshot(
        symbol=symbol,
        event_time_us=event_us,
        book_update_id=update_id,
        price_exponent=pexp,
        qty_exponent=qexp,
        bids=bids,
        asks=asks,
    )


def encode_depth_diff(
    event_us: int,
    first: int,
    last: int,
    pexp: int,
    qexp: int,
    bids: Sequence[tuple[int, int]],
    asks: Sequence[tuple[int, int]],
    symbol: str,
) -> bytes:
    return _rec.encode_depth_diff(
        symbol=symbol,
        event_time_us=event_us,
        first_book_update_id=first,
        last_book_update_id=last,
        price_exponent=pexp,
        qty_exponent=qexp,
        bids=bids,
        asks=asks,
    )
