"""Bybit channel specs (snake_case columns; ``sym`` is the data symbol), registered on import,
and the recorder's hourly ``book_checkpoint`` payloads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from recorder.core._codec import register
from recorder.core._errors import LocalProtocolError
from recorder.venues._channels import register_common
from recorder.venues._jsonspec import (
    Bool,
    Dec,
    Int,
    Json,
    Key,
    Node,
    Obj,
    ObjList,
    Str,
    Time,
)
from recorder.venues.bybit._codec import VariantCodec
from recorder.venues.bybit._nodes import BookLevels, WideDec, _Obj
from recorder.venues.bybit._topics import VENUES, category_of, classify

# --------------------------------------------------------------------------------------------
# Channel specs. Column names are snake_case; ``sym`` is the data symbol (``symbol`` is a
# Hive partition of the archive).


def _pick(table: Mapping[str, Key], order: str) -> list[Key]:
    return [table[k] for k in order.split()]


def _top(data: Node, *, data_optional: bool = False) -> dict[str, Key]:
    return {
        "id": Key("id", Str("msg_id")),
        "topic": Key("topic", Str("topic")),
        "type": Key("type", Str("msg_type")),
        "ts": Key("ts", Time("event_time")),
        "cts": Key("cts", Time("match_time"), optional=True),
        "cs": Key("cs", Int("cross_seq"), optional=True),
        "data": Key("data", data, optional=data_optional),
    }


def _variants(data: Node, *orders: str) -> list[Obj]:
    table = _top(data)
    return [_Obj(*_pick(table, o)) for o in orders]


# orderbook ---------------------------------------------------------------------------------

_BOOK_DATA = _Obj(
    Key("s", Str("sym")),
    Key("b", BookLevels("bids")),
    Key("a", BookLevels("asks")),
    Key("u", Int("update_id")),
    Key("seq", Int("cross_seq"), optional=True),  # absent on options (2023)
)
# Futures depth > 1 put ``type`` before ``ts``; spot (all depths) and futures level 1 the
# reverse (bybit-v5.md 4); options lead with ``id`` and end with ``type``.
_BOOK_FUT = "topic type ts data cts"
_BOOK_SPOT = "topic ts type data cts"
_BOOK_OPT = "id topic ts data type cts"
_BOOK_ORDERS: Final[Mapping[str, tuple[str, ...]]] = {
    "spot": (_BOOK_SPOT, _BOOK_FUT),
    "linear": (_BOOK_FUT, _BOOK_SPOT),
    "inverse": (_BOOK_FUT, _BOOK_SPOT),
    "option": (_BOOK_OPT, _BOOK_SPOT, _BOOK_FUT),
}

# publicTrade -------------------------------------------------------------------------------

_TRADE_KEYS: Final[Mapping[str, Key]] = {
    "T": Key("T", Time("trade_time")),
    "s": Key("s", Str("sym")),
    "S": Key("S", Str("side")),
    "v": Key("v", Dec("qty")),
    "p": Key("p", Dec("price")),
    "L": Key("L", Str("tick_direction"), optional=True),  # perps & futures only
    "i": Key("i", Str("trade_id")),  # numeric on spot, UUID on derivatives: keep text
    "BT": Key("BT", Bool("block_trade"), optional=True),
    "RPI": Key("RPI", Bool("rpi"), optional=True),  # since ~2025
    "seq": Key("seq", Int("cross_seq"), optional=True),  # since ~2024
    "mP": Key("mP", Dec("mark_price"), optional=True),  # option only
    "iP": Key("iP", Dec("index_price"), optional=True),
    "mIv": Key("mIv", Dec("mark_iv"), optional=True),
    "iv": Key("iv", Dec("iv"), optional=True),
}
_TRADE_CANON: Final = [
    "trade_time",
    "sym",
    "side",
    "price",
    "price_dp",
    "qty",
    "qty_dp",
    "tick_direction",
    "trade_id",
    "block_trade",
    "rpi",
    "cross_seq",
    "mark_price",
    "mark_price_dp",
    "index_price",
    "index_price_dp",
    "mark_iv",
    "mark_iv_dp",
    "iv",
    "iv_dp",
]
_TRADE_DOC_ORDER: Final = "T s S v p L i BT RPI seq mP iP mIv iv"
# The live order first (from captures), then the documented example's order. Variants are
# only ever appended: an archived row's ``layout`` is an index into this list.
_TRADE_ITEM_ORDERS: Final[Mapping[str, tuple[str, ...]]] = {
    "spot": ("i T p v S seq s BT RPI L mP iP mIv iv", _TRADE_DOC_ORDER),
    "linear": (_TRADE_DOC_ORDER,),
    "inverse": (_TRADE_DOC_ORDER,),
    "option": ("p v i T BT s S mP iP mIv iv L RPI seq", _TRADE_DOC_ORDER),
}
_TRADE_ORDERS: Final[Mapping[str, tuple[str, ...]]] = {
    "spot": ("topic ts type data", "topic type ts data"),
    "linear": ("topic type ts data", "topic ts type data"),
    "inverse": ("topic type ts data", "topic ts type data"),
    "option": ("id topic ts data type", "topic ts type data", "topic type ts data"),
}


def _trade_variants(category: str) -> list[Obj]:
    out: list[Obj] = []
    for item_order in _TRADE_ITEM_ORDERS[category]:
        item = _Obj(*_pick(_TRADE_KEYS, item_order), canon=_TRADE_CANON)
        out += _variants(ObjList("trades", item), *_TRADE_ORDERS[category])
    return out


# tickers -----------------------------------------------------------------------------------

_TICKER_FIELDS: Final[Mapping[str, Node]] = {
    # linear / inverse
    "tickDirection": Str("tick_direction"),
    "price24hPcnt": Dec("price_24h_pcnt"),
    "lastPrice": Dec("last_price"),
    "prevPrice24h": Dec("prev_price_24h"),
    "highPrice24h": Dec("high_price_24h"),
    "lowPrice24h": Dec("low_price_24h"),
    "prevPrice1h": Dec("prev_price_1h"),
    "markPrice": Dec("mark_price"),
    "indexPrice": Dec("index_price"),
    "openInterest": Dec("open_interest"),
    "openInterestValue": WideDec("open_interest_value"),
    "singleOpenInterest": Dec("single_open_interest"),
    "singleOpenInterestValue": WideDec("single_open_interest_value"),
    "turnover24h": WideDec("turnover_24h"),
    "volume24h": WideDec("volume_24h"),
    "fundingIntervalHour": Dec("funding_interval_hour"),
    "fundingCap": Dec("funding_cap"),
    "nextFundingTime": Dec("next_funding_time"),  # ms as a string, "" on dated futures
    "fundingRate": Dec("funding_rate"),
    "bid1Price": Dec("bid1_price"),
    "bid1Size": Dec("bid1_size"),
    "ask1Price": Dec("ask1_price"),
    "ask1Size": Dec("ask1_size"),
    "deliveryTime": Str("delivery_time"),  # ISO text
    "basisRate": Dec("basis_rate"),
    "basis": Dec("basis"),
    "deliveryFeeRate": Dec("delivery_fee_rate"),
    "predictedDeliveryPrice": Dec("predicted_delivery_price"),
    "basisRateYear": Dec("basis_rate_year"),
    "preOpenPrice": Dec("pre_open_price"),
    "preQty": Dec("pre_qty"),
    "curPreListingPhase": Str("cur_pre_listing_phase"),
    # spot
    "usdIndexPrice": Dec("usd_index_price"),
    # option
    "bidPrice": Dec("bid_price"),
    "bidSize": Dec("bid_size"),
    "bidIv": Dec("bid_iv"),
    "askPrice": Dec("ask_price"),
    "askSize": Dec("ask_size"),
    "askIv": Dec("ask_iv"),
    "markPriceIv": Dec("mark_price_iv"),
    "underlyingPrice": Dec("underlying_price"),
    "totalVolume": WideDec("total_volume"),
    "totalTurnover": WideDec("total_turnover"),
    "delta": Dec("delta"),
    "gamma": Dec("gamma"),
    "vega": Dec("vega"),
    "theta": Dec("theta"),
    "change24h": Dec("change_24h"),
}

# Snapshot order as sent (2026 capture; dated-futures fields placed as in the docs example).
_TICKER_FUT_SNAPSHOT = (
    "tickDirection price24hPcnt lastPrice prevPrice24h highPrice24h lowPrice24h prevPrice1h "
    "markPrice indexPrice openInterest openInterestValue turnover24h volume24h "
    "fundingIntervalHour fundingCap singleOpenInterest singleOpenInterestValue "
    "deliveryTime basisRate deliveryFeeRate predictedDeliveryPrice basis basisRateYear "
    "nextFundingTime fundingRate bid1Price bid1Size ask1Price ask1Size "
    "preOpenPrice preQty curPreListingPhase"
)
# Deltas list the fields added since 2023 after ask1Size (seen in the captures).
_TICKER_FUT_DELTA = (
    "tickDirection price24hPcnt lastPrice prevPrice24h highPrice24h lowPrice24h prevPrice1h "
    "markPrice indexPrice openInterest openInterestValue turnover24h volume24h "
    "nextFundingTime fundingRate bid1Price bid1Size ask1Price ask1Size "
    "singleOpenInterest singleOpenInterestValue "
    "deliveryTime basisRate deliveryFeeRate predictedDeliveryPrice basis basisRateYear "
    "fundingIntervalHour fundingCap preOpenPrice preQty curPreListingPhase"
)
_TICKER_SPOT = (
    "lastPrice highPrice24h lowPrice24h prevPrice24h volume24h turnover24h price24hPcnt "
    "usdIndexPrice"
)
_TICKER_OPT = (
    "bidPrice bidSize bidIv askPrice askSize askIv lastPrice highPrice24h lowPrice24h "
    "markPrice indexPrice markPriceIv underlyingPrice openInterest turnover24h volume24h "
    "totalVolume totalTurnover delta gamma vega theta predictedDeliveryPrice change24h"
)


def _ticker_data(order: str) -> _Obj:
    # Every field optional: deltas carry only what changed, and fields come and go by
    # contract type (perpetual, dated future, pre-market).
    keys = [Key("symbol", Str("sym"))]
    keys += [Key(k, _TICKER_FIELDS[k], optional=True) for k in order.split()]
    return _Obj(*keys)


def _ticker_variants(category: str) -> list[Obj]:
    if category == "spot":
        return _variants(
            _ticker_data(_TICKER_SPOT), "topic ts type cs data", "topic type data cs ts"
        )
    if category == "option":
        return _variants(_ticker_data(_TICKER_OPT), "id topic ts data type", "topic ts type data")
    top = "topic type data cs ts"
    snap = _variants(_ticker_data(_TICKER_FUT_SNAPSHOT), top)
    delta = _variants(_ticker_data(_TICKER_FUT_DELTA), top)
    return [*snap, *delta]


# kline -------------------------------------------------------------------------------------

_KLINE_ITEM = _Obj(
    Key("start", Time("start_time")),
    Key("end", Time("end_time")),
    Key("interval", Str("interval")),
    Key("open", Dec("open")),
    Key("close", Dec("close")),
    Key("high", Dec("high")),
    Key("low", Dec("low")),
    Key("volume", WideDec("volume")),
    Key("turnover", WideDec("turnover")),
    Key("confirm", Bool("confirm")),
    Key("timestamp", Time("last_match_time")),
)
_KLINE_ORDERS: Final[Mapping[str, tuple[str, ...]]] = {
    "spot": ("type topic data ts", "topic data ts type"),
    "linear": ("topic data ts type", "type topic data ts"),
    "inverse": ("topic data ts type", "type topic data ts"),
}

# liquidations ------------------------------------------------------------------------------

_LIQ_ITEM = _Obj(
    Key("T", Time("update_time")),
    Key("s", Str("sym")),
    Key("S", Str("side")),  # position side: Buy = a long was liquidated
    Key("v", Dec("qty")),
    Key("p", Dec("price")),  # bankruptcy price
)
_LIQ_ORDERS = ("topic type ts data", "topic ts type data")
# Retired ``liquidation.{symbol}``: one object per message.
_OLD_LIQ_DATA = _Obj(
    Key("updatedTime", Time("update_time")),
    Key("symbol", Str("sym")),
    Key("side", Str("side")),
    Key("size", Dec("qty")),
    Key("price", Dec("price")),
)

# REST orderbook ----------------------------------------------------------------------------

_REST_BOOK = _Obj(
    Key("retCode", Int("ret_code")),
    Key("retMsg", Str("ret_msg")),
    Key(
        "result",
        _Obj(
            Key("s", Str("sym")),
            Key("a", BookLevels("asks")),
            Key("b", BookLevels("bids")),
            Key("ts", Time("event_time")),
            Key("u", Int("update_id")),
            Key("seq", Int("cross_seq"), optional=True),
            Key("cts", Time("match_time"), optional=True),
        ),
    ),
    Key("retExtInfo", Json("ret_ext_info")),
    Key("time", Time("response_time")),
)


def _book_variants(category: str) -> list[Obj]:
    return _variants(_BOOK_DATA, *_BOOK_ORDERS[category])


def _register_all() -> None:
    for venue in VENUES:
        cat = category_of(venue)
        register(VariantCodec(venue, "orderbook", _book_variants(cat)))
        # The recorder's hourly book state: an orderbook snapshot message it writes itself.
        register(VariantCodec(venue, "book_checkpoint", _book_variants(cat)))
        register(VariantCodec(venue, "orderbook_snapshot", [_REST_BOOK]))
        register(VariantCodec(venue, "publicTrade", _trade_variants(cat)))
        register(VariantCodec(venue, "tickers", _ticker_variants(cat)))
        if cat != "option":
            kl = ObjList("klines", _KLINE_ITEM)
            register(VariantCodec(venue, "kline", _variants(kl, *_KLINE_ORDERS[cat])))
        if cat in ("linear", "inverse"):
            liq = ObjList("liquidations", _LIQ_ITEM)
            register(VariantCodec(venue, "allLiquidation", _variants(liq, *_LIQ_ORDERS)))
            register(VariantCodec(venue, "liquidation", _variants(_OLD_LIQ_DATA, *_LIQ_ORDERS)))
        register_common(venue)


_register_all()


def checkpoint_payload(
    venue: str,
    topic: str,
    ts_ms: int,
    *,
    bids: Sequence[Sequence[str]],
    asks: Sequence[Sequence[str]],
    update_id: int,
    cross_seq: int | None = None,
    cts_ms: int | None = None,
) -> bytes:
    """A ``book_checkpoint`` payload: an orderbook snapshot message in the venue's own key
    order (price/size texts as received), so it decodes with the orderbook spec."""
    info = classify(venue, topic)
    if info is None or info.channel != "orderbook":
        raise LocalProtocolError(f"{venue}: not an orderbook topic: {topic!r}")
    data: dict[str, Any] = {
        "s": info.symbol,
        "b": [[p, q] for p, q in bids],
        "a": [[p, q] for p, q in asks],
        "u": update_id,
    }
    if cross_seq is not None:
        data["seq"] = cross_seq
    parts: dict[str, Any] = {"topic": topic, "type": "snapshot", "ts": ts_ms, "data": data}
    if cts_ms is not None:
        parts["cts"] = cts_ms
    # Options lead with an exchange message id that a checkpoint does not have: use the
    # venue's first layout without "id" instead of inventing one.
    order = next(o for o in _BOOK_ORDERS[category_of(venue)] if "id" not in o.split()).split()
    return orjson.dumps({k: parts[k] for k in order if k in parts})
