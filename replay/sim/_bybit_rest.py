"""Bybit REST: ``/v5/market/orderbook``, ``/v5/market/instruments-info`` (cursor pagination),
``/v5/market/time`` and the 600 requests / 5 s IP limit (``bybit-v5.md`` §3, §5).
"""

from __future__ import annotations

import base64
from typing import Any

import trio

from replay.sim._rest import Response, dec, json_response, snapshot
from replay.sim._runtime import VenueRuntime
from replay.sim._types import SymbolSpec

BYBIT_DEFAULT_LIMIT = {"spot": 1, "linear": 25, "inverse": 25, "option": 1}
BYBIT_MAX_LIMIT = {"spot": 1000, "linear": 1000, "inverse": 1000, "option": 25}


def _bybit_env(rt: VenueRuntime, result: Any, code: int = 0, msg: str = "OK") -> Response:
    body = {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {},
            "time": rt.clock() // 1_000_000}  # fmt: skip
    return json_response(200, body)


def bybit_rest(rt: VenueRuntime, path: str, params: dict[str, str]) -> Response:
    now = trio.current_time()
    times = rt.rest_times
    times.append(now)
    while times and times[0] <= now - rt.cfg.bybit_rest_window:
        times.popleft()
    if len(times) > rt.cfg.bybit_rest_limit:
        rt.counters.rest_rejected += 1
        return 403, [("Content-Type", "text/plain")], b"access too frequent"
    category = rt.name.split("-", 1)[1]
    if path == "/v5/market/time":
        ms = rt.clock() // 1_000_000
        return _bybit_env(rt, {"timeSecond": str(ms // 1000), "timeNano": str(ms * 10**6)})
    if path not in ("/v5/market/orderbook", "/v5/market/instruments-info"):
        return 404, [], b'{"retCode":404,"retMsg":"Not Found"}'
    cat = params.get("category", "")
    if cat != category:
        return _bybit_env(rt, {}, 10001, "Illegal category" if cat else "category is required")
    if path == "/v5/market/orderbook":
        symbol = params.get("symbol", "")
        try:
            limit = int(params.get("limit", BYBIT_DEFAULT_LIMIT[category]))
        except ValueError:
            return _bybit_env(rt, {}, 10001, "params error: limit")
        if not 1 <= limit <= BYBIT_MAX_LIMIT[category]:
            return _bybit_env(rt, {}, 10001, "params error: limit")
        snap = snapshot(rt, symbol, limit) if symbol else None
        if snap is None:
            return _bybit_env(rt, {}, 10001, "params error: symbol invalid")
        return _bybit_env(rt, {"s": symbol, "a": [list(x) for x in snap.asks],
                                "b": [list(x) for x in snap.bids], "ts": snap.time_ms,
                                "u": snap.last_update_id, "seq": snap.seq,
                                "cts": snap.cts_ms})  # fmt: skip
    items = [_instrument(category, s) for s in rt.source.instruments()]
    wanted = params.get("symbol")
    if wanted:
        items = [i for i in items if i["symbol"] == wanted]
    if category == "spot":
        return _bybit_env(rt, {"category": category, "list": items, "nextPageCursor": ""})
    try:
        limit = min(int(params.get("limit", 500)), 1000)
    except ValueError:
        return _bybit_env(rt, {}, 10001, "params error: limit")
    page = max(1, min(limit, rt.cfg.instruments_page_size))
    start = 0
    cursor = params.get("cursor") or ""
    if cursor:
        try:
            start = int(base64.urlsafe_b64decode(cursor.encode()).decode().split(":")[1])
        except (ValueError, IndexError):
            return _bybit_env(rt, {}, 10001, "params error: cursor")
    chunk = items[start : start + page]
    nxt = start + page
    next_cursor = (
        base64.urlsafe_b64encode(f"offset:{nxt}".encode()).decode() if nxt < len(items) else ""
    )
    return _bybit_env(rt, {"category": category, "list": chunk, "nextPageCursor": next_cursor})


def _instrument(category: str, spec: SymbolSpec) -> dict[str, Any]:
    tick = dec(spec.tick, spec.price_decimals)
    step = dec(spec.lot, spec.qty_decimals)
    if category == "spot":
        return {"symbolId": 1, "symbol": spec.symbol, "baseCoin": spec.base,
                "quoteCoin": spec.quote, "innovation": "0", "status": "Trading",
                "marginTrading": "utaOnly", "stTag": "0",
                "lotSizeFilter": {"basePrecision": step, "quotePrecision": "0.0000001",
                                  "minOrderQty": step, "maxOrderQty": "83", "minOrderAmt": "5",
                                  "maxOrderAmt": "8000000"},
                "priceFilter": {"tickSize": tick}, "symbolType": ""}  # fmt: skip
    if category == "option":
        kind = "Call" if spec.symbol.endswith("-C") else "Put"
        return {"symbol": spec.symbol, "status": "Trading", "baseCoin": spec.base,
                "quoteCoin": spec.quote, "settleCoin": spec.quote, "optionsType": kind,
                "launchTime": "1767225600000", "deliveryTime": "1774598400000",
                "priceFilter": {"minPrice": tick, "maxPrice": "1110000", "tickSize": tick},
                "lotSizeFilter": {"maxOrderQty": "500", "minOrderQty": step, "qtyStep": step},
                "displayName": spec.symbol}  # fmt: skip
    contract = "LinearPerpetual" if category == "linear" else "InversePerpetual"
    settle = spec.quote if category == "linear" else spec.base
    return {"symbol": spec.symbol, "symbolId": 1, "contractType": contract, "status": "Trading",
            "baseCoin": spec.base, "quoteCoin": spec.quote, "launchTime": "1585526400000",
            "deliveryTime": "0", "deliveryFeeRate": "", "priceScale": str(spec.price_decimals),
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00",
                               "leverageStep": "0.01"},
            "priceFilter": {"minPrice": tick, "maxPrice": "1999999.80", "tickSize": tick},
            "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": step, "qtyStep": step,
                              "postOnlyMaxOrderQty": "1190.000", "maxMktOrderQty": "500.000",
                              "minNotionalValue": "5"},
            "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoin": settle,
            "copyTrading": "both", "upperFundingRate": "0.00375",
            "lowerFundingRate": "-0.00375", "isPreListing": False, "preListingInfo": None,
            "symbolType": ""}  # fmt: skip
