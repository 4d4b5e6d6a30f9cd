"""Binance payload specs: every channel's typed columns, registered as codecs on import.

The specs re-render each payload exactly (see :mod:`recorder.venues._jsonspec`); the key
order and number formats follow live captures where they differ from the doc examples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from recorder.core._codec import register
from recorder.venues._channels import JsonChannel, register_common
from recorder.venues._jsonspec import (
    Bool,
    Const,
    Dec,
    Int,
    Json,
    Key,
    Levels,
    Node,
    Obj,
    ObjList,
    Payload,
    Str,
    Time,
)
from recorder.venues._reordered import Reordered
from recorder.venues.binance._envelope import COMBINED, SPOT, USDM

# --------------------------------------------------------------------------------------------
# Payload specs
# --------------------------------------------------------------------------------------------


def _e(event: str) -> Key:
    return Key("e", Const(event))


def _opt(json: str, node: Node) -> Key:
    return Key(json, node, optional=True)


_E = Key("E", Time("event_time"))
_S = Key("s", Str("sym"))
_T_TRADE = Key("T", Time("trade_time"))
_T_TX = Key("T", Time("transaction_time"))
_M_MAKER = Key("m", Bool("buyer_is_maker"))
_PS = _opt("ps", Str("pair"))  # [connector] CM-UM fields; position of ps as on COIN-M
_ST = _opt("st", Int("symbol_type"))  # position unknown: last
LAYOUT: Final = "layout"
"""int8 column of :class:`Reordered` objects: which key order a payload used (as Bybit's)."""


def _payload(root: Node, *, event_time: str | None = "event_time", sym: bool = True) -> Payload:
    return Payload(root, event_time=event_time, event_time_unit="ms", symbol="sym" if sym else None)


@dataclass(frozen=True)
class ArrayPayload(Payload):
    """An all-market array: its event time is the latest ``event_time`` of its items."""

    def event_ns(self, row: Mapping[str, Any]) -> int | None:
        assert isinstance(self.root, ObjList)
        times = [item.get("event_time") for item in row.get(self.root.name) or ()]
        known = [t for t in times if t is not None]
        return max(known) * 1_000_000 if known else None


def _array(column: str, item: Obj) -> Payload:
    return ArrayPayload(ObjList(column, item), event_time_unit="ms")


def _kline(*, symbol: bool, ids: str) -> Obj:
    keys = [
        Key("t", Time("open_time")),
        Key("T", Time("close_time")),
        *([Key("s", Str("kline_sym"))] if symbol else []),
        Key("i", Str("interval")),
        Key("f", Int(f"first_{ids}_id")),
        Key("L", Int(f"last_{ids}_id")),
        Key("o", Dec("open")),
        Key("c", Dec("close")),
        Key("h", Dec("high")),
        Key("l", Dec("low")),
        Key("v", Dec("volume")),
        Key("n", Int("trade_count")),
        Key("x", Bool("is_closed")),
        Key("q", Dec("quote_volume")),
        Key("V", Dec("taker_buy_volume")),
        Key("Q", Dec("taker_buy_quote_volume")),
        Key("B", Dec("ignore")),
    ]
    return Obj(*keys)


_LEVELS = (Key("b", Levels("bids")), Key("a", Levels("asks")))
_BOOK_SNAPSHOT = Obj(
    Key("lastUpdateId", Int("last_update_id")),
    Key("bids", Levels("bids")),
    Key("asks", Levels("asks")),
)


def _mini_ticker(usdm: bool) -> Obj:
    return Obj(
        _e("24hrMiniTicker"),
        _E,
        _S,
        *([_PS] if usdm else []),
        Key("c", Dec("last_price")),
        Key("o", Dec("open")),
        Key("h", Dec("high")),
        Key("l", Dec("low")),
        Key("v", Dec("volume")),
        Key("q", Dec("quote_volume")),
        *([_ST] if usdm else []),
    )


def _ticker(usdm: bool) -> Obj:
    spot_only = not usdm
    return Obj(
        _e("24hrTicker"),
        _E,
        _S,
        *([_PS] if usdm else []),
        Key("p", Dec("price_change")),
        Key("P", Dec("price_change_pct")),
        Key("w", Dec("weighted_avg_price")),
        *([Key("x", Dec("prev_close_price"))] if spot_only else []),
        Key("c", Dec("last_price")),
        Key("Q", Dec("last_qty")),
        *(
            [
                Key("b", Dec("bid_price")),
                Key("B", Dec("bid_qty")),
                Key("a", Dec("ask_price")),
                Key("A", Dec("ask_qty")),
            ]
            if spot_only
            else []
        ),
        Key("o", Dec("open")),
        Key("h", Dec("high")),
        Key("l", Dec("low")),
        Key("v", Dec("volume")),
        Key("q", Dec("quote_volume")),
        Key("O", Time("open_time")),
        Key("C", Time("close_time")),
        Key("F", Int("first_trade_id")),
        Key("L", Int("last_trade_id")),
        Key("n", Int("trade_count")),
        *([_ST] if usdm else []),
    )


_TICKER_WINDOW = Obj(
    Key("e", Str("event_type")),  # "1hTicker" / "4hTicker" / "1dTicker"
    _E,
    _S,
    Key("p", Dec("price_change")),
    Key("P", Dec("price_change_pct")),
    Key("o", Dec("open")),
    Key("h", Dec("high")),
    Key("l", Dec("low")),
    Key("c", Dec("last_price")),
    Key("w", Dec("weighted_avg_price")),
    Key("v", Dec("volume")),
    Key("q", Dec("quote_volume")),
    Key("O", Time("open_time")),
    Key("C", Time("close_time")),
    Key("F", Int("first_trade_id")),
    Key("L", Int("last_trade_id")),
    Key("n", Int("trade_count")),
)

_SPOT_SPECS: Final[dict[str, Payload]] = {
    "trade": _payload(
        Obj(
            _e("trade"),
            _E,
            _S,
            Key("t", Int("trade_id")),
            Key("p", Dec("price")),
            Key("q", Dec("qty")),
            _opt("b", Int("buyer_order_id")),  # removed 2024-06-18
            _opt("a", Int("seller_order_id")),
            _T_TRADE,
            _M_MAKER,
            Key("M", Bool("best_match")),  # documented as "ignore"
        )
    ),
    "aggTrade": _payload(
        Obj(
            _e("aggTrade"),
            _E,
            _S,
            Key("a", Int("agg_trade_id")),
            Key("p", Dec("price")),
            Key("q", Dec("qty")),
            Key("f", Int("first_trade_id")),
            Key("l", Int("last_trade_id")),
            _T_TRADE,
            _M_MAKER,
            Key("M", Bool("best_match")),
        )
    ),
    "kline": _payload(Obj(_e("kline"), _E, _S, Key("k", _kline(symbol=True, ids="trade")))),
    "miniTicker": _payload(_mini_ticker(False)),
    "miniTicker_arr": _array("tickers", _mini_ticker(False)),
    "ticker": _payload(_ticker(False)),
    "ticker_arr": _array("tickers", _ticker(False)),
    "ticker_window": _payload(_TICKER_WINDOW),
    "ticker_window_arr": _array("tickers", _TICKER_WINDOW),
    "bookTicker": _payload(
        Obj(
            Key("u", Int("update_id")),
            _S,
            Key("b", Dec("bid_price")),
            Key("B", Dec("bid_qty")),
            Key("a", Dec("ask_price")),
            Key("A", Dec("ask_qty")),
        ),
        event_time=None,
    ),
    "avgPrice": _payload(
        Obj(
            _e("avgPrice"),
            _E,
            _S,
            Key("i", Str("interval")),
            Key("w", Dec("avg_price")),
            Key("T", Time("last_trade_time")),
        )
    ),
    "depthPartial": _payload(_BOOK_SNAPSHOT, event_time=None, sym=False),
    "depth": _payload(
        Obj(
            _e("depthUpdate"),
            _E,
            _S,
            Key("U", Int("first_update_id")),
            Key("u", Int("final_update_id")),
            *_LEVELS,
        )
    ),
    "referencePrice": _payload(
        Obj(
            _e("referencePrice"),
            _S,
            Key("r", Dec("reference_price")),  # may be null
            Key("t", Time("engine_time")),
        ),
        event_time="engine_time",
    ),
    "blockTrade": _payload(
        Obj(
            _e("blockTrade"),
            _E,
            _S,
            Key("t", Int("trade_id")),
            Key("p", Dec("price")),
            Key("q", Dec("qty")),
            _T_TRADE,
            _M_MAKER,
        )
    ),
    "depth_snapshot": _payload(_BOOK_SNAPSHOT, event_time=None, sym=False),
    "book_checkpoint": _payload(_BOOK_SNAPSHOT, event_time=None, sym=False),
}


def _usdm_depth() -> Obj:
    return Obj(
        _e("depthUpdate"),
        _E,
        _T_TX,
        _S,
        _PS,
        Key("U", Int("first_update_id")),
        Key("u", Int("final_update_id")),
        Key("pu", Int("prev_final_update_id")),
        *_LEVELS,
        _ST,
    )


# Documented order first; the captured 2019-2024 wire order as the alternative (layout 1).
_USDM_MARK_PRICE = Reordered(
    _e("markPriceUpdate"),
    _E,
    _S,
    Key("p", Dec("mark_price")),
    _opt("ap", Dec("mark_price_avg")),  # 2026-03
    _opt("i", Dec("index_price")),  # 2020
    _opt("P", Dec("est_settle_price")),  # 2021
    Key("r", Dec("funding_rate")),
    Key("T", Time("next_funding_time")),
    _ST,
    column=LAYOUT,
    alternatives=[("e", "E", "s", "p", "ap", "P", "i", "r", "T", "st")],
)
_USDM_BOOK_TICKER = Reordered(
    _e("bookTicker"),
    Key("u", Int("update_id")),
    _E,
    _T_TX,
    _S,
    _PS,
    Key("b", Dec("bid_price")),
    Key("B", Dec("bid_qty")),
    Key("a", Dec("ask_price")),
    Key("A", Dec("ask_qty")),
    _ST,
    column=LAYOUT,
    alternatives=[("e", "u", "s", "ps", "b", "B", "a", "A", "T", "E", "st")],
)
_USDM_ASSET_INDEX = Obj(
    _e("assetIndexUpdate"),
    _E,
    _S,
    Key("i", Dec("index_price")),
    Key("b", Dec("bid_buffer")),
    Key("a", Dec("ask_buffer")),
    Key("B", Dec("bid_rate")),
    Key("A", Dec("ask_rate")),
    Key("q", Dec("auto_exchange_bid_buffer")),
    Key("g", Dec("auto_exchange_ask_buffer")),
    Key("Q", Dec("auto_exchange_bid_rate")),
    Key("G", Dec("auto_exchange_ask_rate")),
)

_USDM_SPECS: Final[dict[str, Payload]] = {
    "aggTrade": _payload(
        Reordered(
            _e("aggTrade"),
            _E,
            _S,
            _opt("a", Int("agg_trade_id")),  # absent in 2019
            Key("p", Dec("price")),
            Key("q", Dec("qty")),
            _opt("nq", Dec("normal_qty")),  # 2025-12
            Key("f", Int("first_trade_id")),
            Key("l", Int("last_trade_id")),
            _T_TRADE,
            _M_MAKER,
            _ST,
            column=LAYOUT,
            alternatives=[("e", "E", "a", "s", "p", "q", "nq", "f", "l", "T", "m", "st")],
        )
    ),
    # Undocumented; fields as captured 2020-2024.
    "trade": _payload(
        Obj(
            _e("trade"),
            _E,
            _T_TRADE,
            _S,
            Key("t", Int("trade_id")),
            Key("p", Dec("price")),
            Key("q", Dec("qty")),
            _opt("X", Str("trade_type")),  # MARKET, INSURANCE_FUND, ...
            _M_MAKER,
        )
    ),
    "markPrice": _payload(_USDM_MARK_PRICE),
    "markPrice_arr": _array("mark_prices", _USDM_MARK_PRICE),
    "kline": _payload(Obj(_e("kline"), _E, _S, Key("k", _kline(symbol=True, ids="trade")))),
    "continuousKline": _payload(
        Obj(
            _e("continuous_kline"),
            _E,
            Key("ps", Str("pair")),
            Key("ct", Str("contract_type")),
            Key("k", _kline(symbol=False, ids="update")),
        ),
        sym=False,
    ),
    "miniTicker": _payload(_mini_ticker(True)),
    "miniTicker_arr": _array("tickers", _mini_ticker(True)),
    "ticker": _payload(_ticker(True)),
    "ticker_arr": _array("tickers", _ticker(True)),
    "bookTicker": _payload(_USDM_BOOK_TICKER),
    "forceOrder": _payload(
        Obj(
            _e("forceOrder"),
            _E,
            Key(
                "o",
                Obj(
                    _S,
                    Key("S", Str("side")),
                    Key("o", Str("order_type")),
                    Key("f", Str("time_in_force")),
                    Key("q", Dec("orig_qty")),
                    Key("p", Dec("price")),
                    Key("ap", Dec("avg_price")),
                    Key("X", Str("order_status")),
                    Key("l", Dec("last_filled_qty")),
                    Key("z", Dec("filled_qty")),
                    _T_TRADE,
                ),
            ),
            _PS,  # [connector] !forceOrder@arr only; position unknown
            _ST,
        )
    ),
    "depthPartial": _payload(_usdm_depth()),
    "depth": _payload(_usdm_depth()),
    "rpiDepth": _payload(_usdm_depth()),
    "compositeIndex": _payload(
        Obj(
            _e("compositeIndex"),
            _E,
            _S,
            Key("p", Dec("index_price")),
            Key("C", Str("base_asset_category")),
            Key(
                "c",
                ObjList(
                    "components",
                    Obj(
                        Key("b", Str("base_asset")),
                        Key("q", Str("quote_asset")),
                        Key("w", Dec("weight_qty")),
                        Key("W", Dec("weight_pct")),
                        Key("i", Dec("index_price")),
                    ),
                ),
            ),
        )
    ),
    "contractInfo": _payload(
        Obj(
            _e("contractInfo"),
            _E,
            _S,
            _opt("ps", Str("pair")),  # dropped after the CM migration
            Key("ct", Str("contract_type")),
            Key("dt", Time("delivery_time")),
            Key("ot", Time("onboard_time")),
            Key("cs", Str("contract_status")),
            # Brackets mix integer and fractional numbers and change rarely: keep them as text.
            _opt("bks", Json("brackets")),
            _ST,
        )
    ),
    "assetIndex": _payload(_USDM_ASSET_INDEX),
    "assetIndex_arr": _array("asset_indexes", _USDM_ASSET_INDEX),
    "tradingSession": _payload(
        Obj(
            Key("e", Str("event_type")),  # EquityUpdate, CommodityUpdate, ...
            _E,
            Key("t", Time("session_start")),
            Key("T", Time("session_end")),
            Key("S", Str("session_type")),
        ),
        sym=False,
    ),
    "depth_snapshot": _payload(
        Obj(
            Key("lastUpdateId", Int("last_update_id")),
            _E,
            _T_TX,
            Key("bids", Levels("bids")),
            Key("asks", Levels("asks")),
        ),
        sym=False,
    ),
    "book_checkpoint": _payload(_BOOK_SNAPSHOT, event_time=None, sym=False),
}

SPECS: Final[dict[str, dict[str, Payload]]] = {SPOT: _SPOT_SPECS, USDM: _USDM_SPECS}
"""Every channel's payload spec, per venue."""

_FORBIDDEN_COLUMNS: Final = frozenset({"venue", "channel", "symbol", "date", "hour"})


def _register_all() -> None:
    for venue, specs in SPECS.items():
        register_common(venue)
        for channel, payload in specs.items():
            names = [f.name for f in payload.schema_fields()]
            bad = _FORBIDDEN_COLUMNS.intersection(n.lower() for n in names)
            if bad or len({n.lower() for n in names}) != len(names):
                raise ValueError(f"{venue}/{channel}: bad column names {sorted(bad) or names}")
            register(JsonChannel(venue, channel, payload, envelope=COMBINED))


_register_all()
