"""Binance REST: ``/api/v3/depth``, ``/api/v3/exchangeInfo`` (spot, SBE), ``/fapi/v1/depth``,
``/fapi/v1/exchangeInfo`` (USDⓈ-M) and ``/dapi/v1/…`` (COIN-M, by USDⓈ-M's rules) with
request-weight accounting (``binance-spot.md`` §7, ``binance-usdm-futures.md`` §6):
``X-MBX-USED-WEIGHT-1M``, 429 + ``Retry-After``, then 418.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

import orjson
import trio

from replay.sim._binance_coinm import pair_of
from replay.sim._rest import Response, dec, json_response, snapshot
from replay.sim._runtime import VenueRuntime
from replay.sim._types import SymbolSpec

PREFIX = {
    "binance-spot": "/api/v3",
    "binance-sbe": "/api/v3",
    "binance-usdm": "/fapi/v1",
    "binance-coinm": "/dapi/v1",
}
FUTURES = frozenset({"binance-usdm", "binance-coinm"})
SPOT_WEIGHT_LIMIT = 6000
USDM_WEIGHT_LIMIT = 2400
USDM_LIMITS = {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10, 1000: 20}


def spot_depth_weight(limit: int) -> int:
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def binance_rest(rt: VenueRuntime, path: str, params: dict[str, str]) -> Response:
    usdm = rt.name in FUTURES  # USDⓈ-M and COIN-M share limits, weights and parameters
    prefix = PREFIX[rt.name]
    now = trio.current_time()
    limit_w = rt.cfg.rest_weight_limit or (USDM_WEIGHT_LIMIT if usdm else SPOT_WEIGHT_LIMIT)
    window = int(now // 60)
    used = rt.rest_weight.get(window, 0)

    def hdr(w: int) -> list[tuple[str, str]]:
        return [("X-MBX-USED-WEIGHT-1M", str(w))]

    if rt.rest_banned_until > now:
        rt.counters.rest_rejected += 1
        retry = math.ceil(rt.rest_banned_until - now)
        return json_response(
            418,
            {"code": -1003, "msg": f"Way too much request weight used; IP banned until "
             f"{int((rt.clock() // 1_000_000) + retry * 1000)}."},
            [*hdr(used), ("Retry-After", str(retry))],
        )  # fmt: skip
    if rt.rest_429_until > now:  # continuing after a 429 => 418 ban
        rt.counters.rest_rejected += 1
        rt.rest_banned_until = now + rt.cfg.rest_ban_seconds
        retry = math.ceil(rt.cfg.rest_ban_seconds)
        return json_response(
            418,
            {"code": -1003, "msg": "Way too much request weight used; IP banned."},
            [*hdr(used), ("Retry-After", str(retry))],
        )

    if path == f"{prefix}/ping":
        weight, result = 1, json_response(200, {})
    elif path == f"{prefix}/time":
        weight, result = 1, json_response(200, {"serverTime": rt.clock() // 1_000_000})
    elif path == f"{prefix}/exchangeInfo":
        weight = 1 if usdm else 20
        info = _exchange_info(rt, usdm, limit_w)
        wanted: list[str] = []
        if not usdm and "symbol" in params:
            wanted = [params["symbol"]]
        elif not usdm and "symbols" in params:
            try:
                wanted = [str(x) for x in orjson.loads(params["symbols"])]
            except orjson.JSONDecodeError:
                wanted = ["?"]
        if wanted:
            have = {s["symbol"]: s for s in info["symbols"]}
            if any(w not in have for w in wanted):
                result = json_response(400, {"code": -1121, "msg": "Invalid symbol."})
            else:
                info["symbols"] = [have[w] for w in wanted]
                result = json_response(200, info)
        else:
            result = json_response(200, info)
    elif path == f"{prefix}/depth":
        weight, result = _binance_depth(rt, usdm, params)
    else:
        return json_response(404, {"code": -1000, "msg": "Not found"}, hdr(used))

    if used + weight > limit_w:
        rt.counters.rest_rejected += 1
        retry = math.ceil((window + 1) * 60 - now)
        rt.rest_429_until = now + retry
        return json_response(
            429,
            {"code": -1003, "msg": f"Too much request weight used; current limit is {limit_w} "
             "request weight per 1 MINUTE. Please use WebSocket Streams for live updates to "
             "avoid polling the API."},
            [*hdr(used), ("Retry-After", str(retry))],
        )  # fmt: skip
    used += weight
    rt.rest_weight = {window: used}
    status, headers, body = result
    return status, headers + hdr(used), body


def _binance_depth(rt: VenueRuntime, usdm: bool, params: dict[str, str]) -> tuple[int, Response]:
    symbol = params.get("symbol", "")
    raw_limit = params.get("limit", "500" if usdm else "100")
    try:
        limit = int(raw_limit)
    except ValueError:
        return 1, json_response(400, {"code": -1100, "msg": "Illegal characters found in parameter "
                              "'limit'; legal range is '^[0-9]{1,20}$'."})  # fmt: skip
    if usdm:
        if limit not in USDM_LIMITS:
            return 1, json_response(
                400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}
            )
        weight = USDM_LIMITS[limit]
    else:
        if limit < 1:
            return 1, json_response(
                400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}
            )
        limit = min(limit, 5000)
        weight = spot_depth_weight(limit)
    if not symbol:
        msg = "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
        return 1, json_response(400, {"code": -1102, "msg": msg})
    snap = snapshot(rt, symbol, limit)
    if snap is None:
        return weight, json_response(400, {"code": -1121, "msg": "Invalid symbol."})
    bids = [list(x) for x in snap.bids]
    asks = [list(x) for x in snap.asks]
    if rt.name == "binance-coinm":  # COIN-M names the contract and its pair (U: not in the ref)
        body = {"lastUpdateId": snap.last_update_id, "symbol": symbol, "pair": pair_of(symbol),
                "E": snap.time_ms, "T": snap.time_ms - 1, "bids": bids, "asks": asks}  # fmt: skip
    elif usdm:
        body = {"lastUpdateId": snap.last_update_id, "E": snap.time_ms, "T": snap.time_ms - 1,
                "bids": bids, "asks": asks}  # fmt: skip
    else:
        body = {"lastUpdateId": snap.last_update_id, "bids": bids, "asks": asks}
    return weight, json_response(200, body)


def _coinm_symbol(spec: SymbolSpec, tick: str, step: str) -> dict[str, Any]:
    """A COIN-M ``/dapi/v1/exchangeInfo`` symbol: ``contractStatus`` (not ``status``),
    ``contractSize`` in USD, margin in the base asset; ``_YYMMDD`` contracts are quarterlies."""
    expiry = spec.symbol.partition("_")[2]
    perpetual = expiry == "PERP"
    delivery = 4133404800000
    if not perpetual:
        day = datetime.datetime.strptime(expiry, "%y%m%d").replace(tzinfo=datetime.UTC)
        delivery = int(day.timestamp() * 1000) + 8 * 3_600_000  # settles 08:00 UTC
    return {
        "symbol": spec.symbol, "pair": pair_of(spec.symbol),
        "contractType": "PERPETUAL" if perpetual else "CURRENT_QUARTER",
        "deliveryDate": delivery, "onboardDate": 1597042800000, "contractStatus": "TRADING",
        "contractSize": spec.contract_size or 100, "marginAsset": spec.base,
        "baseAsset": spec.base, "quoteAsset": spec.quote,
        "pricePrecision": spec.price_decimals, "quantityPrecision": spec.qty_decimals,
        "baseAssetPrecision": 8, "quotePrecision": 8, "equalQtyPrecision": 4,
        "underlyingType": "COIN", "underlyingSubType": [],
        "filters": [
            {"filterType": "PRICE_FILTER", "maxPrice": "4520958", "minPrice": tick,
             "tickSize": tick},
            {"filterType": "LOT_SIZE", "maxQty": "1000000", "minQty": step, "stepSize": step},
        ],
        "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }  # fmt: skip


def _exchange_info(rt: VenueRuntime, usdm: bool, limit_w: int) -> dict[str, Any]:
    symbols = []
    for spec in rt.source.instruments():
        tick = dec(spec.tick, spec.price_decimals)
        step = dec(spec.lot, spec.qty_decimals)
        if rt.name == "binance-coinm":
            symbols.append(_coinm_symbol(spec, tick, step))
        elif usdm:
            symbols.append({
                "symbol": spec.symbol, "pair": spec.symbol, "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000, "onboardDate": 1569398400000, "status": "TRADING",
                "baseAsset": spec.base, "quoteAsset": spec.quote, "marginAsset": spec.quote,
                "pricePrecision": spec.price_decimals, "quantityPrecision": spec.qty_decimals,
                "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN",
                "underlyingSubType": [],
                "filters": [
                    {"filterType": "PRICE_FILTER", "maxPrice": "1000000", "minPrice": tick,
                     "tickSize": tick},
                    {"filterType": "LOT_SIZE", "maxQty": "10000000", "minQty": step,
                     "stepSize": step},
                ],
                "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
            })  # fmt: skip
        else:
            w = spec.wire_pd
            tick8 = dec(spec.tick * 10 ** (w - spec.price_decimals), w)
            step8 = dec(spec.lot * 10 ** (spec.wire_qd - spec.qty_decimals), spec.wire_qd)
            symbols.append({
                "symbol": spec.symbol, "status": "TRADING", "baseAsset": spec.base,
                "baseAssetPrecision": 8, "quoteAsset": spec.quote, "quoteAssetPrecision": 8,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": tick8,
                     "maxPrice": "1000000.00000000", "tickSize": tick8},
                    {"filterType": "LOT_SIZE", "minQty": step8, "maxQty": "9000.00000000",
                     "stepSize": step8},
                ],
            })  # fmt: skip
    limits: list[dict[str, Any]] = [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
         "limit": limit_w},
    ]  # fmt: skip
    return {"timezone": "UTC", "serverTime": rt.clock() // 1_000_000, "rateLimits": limits,
            "exchangeFilters": [], "symbols": symbols}  # fmt: skip
