"""REST endpoints (GET only) served with h11, one port per venue.

Binance: ``/api/v3/depth``, ``/api/v3/exchangeInfo`` (spot, SBE), ``/fapi/v1/depth``,
``/fapi/v1/exchangeInfo`` (USDⓈ-M) with request-weight accounting (``binance-spot.md`` §7,
``binance-usdm-futures.md`` §6). Bybit: ``/v5/market/orderbook``, ``/v5/market/instruments-info``
with cursor pagination and the 600 requests / 5 s IP limit (``bybit-v5.md`` §3, §5).
"""

from __future__ import annotations

import base64
import math
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import h11
import orjson
import trio

from replay.sim._conn import VenueRuntime
from replay.sim._types import BYBIT_VENUES, DepthSnapshot, SymbolSpec

Response = tuple[int, list[tuple[str, str]], bytes]

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


async def serve_rest(rt: VenueRuntime, stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = await _next_event(conn, stream)
            if not isinstance(event, h11.Request):
                return
            while not isinstance(await _next_event(conn, stream), h11.EndOfMessage | None):
                pass
            status, headers, body = handle(rt, event.method.decode(), event.target.decode())
            hdrs = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            hdrs += headers
            await stream.send_all(conn.send(h11.Response(status_code=status, headers=hdrs)) or b"")
            await stream.send_all(conn.send(h11.Data(data=body)) or b"")
            await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
        return
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()


async def _next_event(conn: h11.Connection, stream: trio.SocketStream) -> Any:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            conn.receive_data(data)
            if not data and conn.their_state is not h11.DONE:
                return None
            continue
        return event


def _json(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return status, headers or [], orjson.dumps(obj)


def handle(rt: VenueRuntime, method: str, target: str) -> Response:
    rt.counters.rest_requests += 1
    if method not in ("GET", "HEAD"):
        return _json(405, {"code": -1000, "msg": "Method not allowed"})
    parts = urlsplit(target)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if rt.name in BYBIT_VENUES:
        return _bybit(rt, parts.path, params)
    return _binance(rt, parts.path, params)


# -- Binance ------------------------------------------------------------------------------------


def _binance(rt: VenueRuntime, path: str, params: dict[str, str]) -> Response:
    usdm = rt.name == "binance-usdm"
    prefix = "/fapi/v1" if usdm else "/api/v3"
    now = trio.current_time()
    limit_w = rt.cfg.rest_weight_limit or (USDM_WEIGHT_LIMIT if usdm else SPOT_WEIGHT_LIMIT)
    window = int(now // 60)
    used = rt.rest_weight.get(window, 0)

    def hdr(w: int) -> list[tuple[str, str]]:
        return [("X-MBX-USED-WEIGHT-1M", str(w))]

    if rt.rest_banned_until > now:
        rt.counters.rest_rejected += 1
        retry = math.ceil(rt.rest_banned_until - now)
        return _json(
            418,
            {"code": -1003, "msg": f"Way too much request weight used; IP banned until "
             f"{int((rt.clock() // 1_000_000) + retry * 1000)}."},
            [*hdr(used), ("Retry-After", str(retry))],
        )  # fmt: skip
    if rt.rest_429_until > now:  # continuing after a 429 => 418 ban
        rt.counters.rest_rejected += 1
        rt.rest_banned_until = now + rt.cfg.rest_ban_seconds
        retry = math.ceil(rt.cfg.rest_ban_seconds)
        return _json(
            418,
            {"code": -1003, "msg": "Way too much request weight used; IP banned."},
            [*hdr(used), ("Retry-After", str(retry))],
        )

    if path == f"{prefix}/ping":
        weight, result = 1, _json(200, {})
    elif path == f"{prefix}/time":
        weight, result = 1, _json(200, {"serverTime": rt.clock() // 1_000_000})
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
                result = _json(400, {"code": -1121, "msg": "Invalid symbol."})
            else:
                info["symbols"] = [have[w] for w in wanted]
                result = _json(200, info)
        else:
            result = _json(200, info)
    elif path == f"{prefix}/depth":
        weight, result = _binance_depth(rt, usdm, params)
    else:
        return _json(404, {"code": -1000, "msg": "Not found"}, hdr(used))

    if used + weight > limit_w:
        rt.counters.rest_rejected += 1
        retry = math.ceil((window + 1) * 60 - now)
        rt.rest_429_until = now + retry
        return _json(
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
        return 1, _json(400, {"code": -1100, "msg": "Illegal characters found in parameter "
                              "'limit'; legal range is '^[0-9]{1,20}$'."})  # fmt: skip
    if usdm:
        if limit not in USDM_LIMITS:
            return 1, _json(
                400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}
            )
        weight = USDM_LIMITS[limit]
    else:
        if limit < 1:
            return 1, _json(
                400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}
            )
        limit = min(limit, 5000)
        weight = spot_depth_weight(limit)
    if not symbol:
        return 1, _json(400, {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent, "
                              "was empty/null, or malformed."})  # fmt: skip
    snap = _snapshot(rt, symbol, limit)
    if snap is None:
        return weight, _json(400, {"code": -1121, "msg": "Invalid symbol."})
    bids = [list(x) for x in snap.bids]
    asks = [list(x) for x in snap.asks]
    if usdm:
        body = {"lastUpdateId": snap.last_update_id, "E": snap.time_ms, "T": snap.time_ms - 1,
                "bids": bids, "asks": asks}  # fmt: skip
    else:
        body = {"lastUpdateId": snap.last_update_id, "bids": bids, "asks": asks}
    return weight, _json(200, body)


def _snapshot(rt: VenueRuntime, symbol: str, limit: int) -> DepthSnapshot | None:
    if rt.stale:
        age = rt.stale.pop(0)
        target = trio.current_time() - age
        chosen: DepthSnapshot | None = None
        for t, snaps in rt.snap_history:
            snap = snaps.get(symbol)
            if isinstance(snap, DepthSnapshot) and (chosen is None or t <= target):
                chosen = snap
        if chosen is not None:
            return DepthSnapshot(
                chosen.last_update_id, chosen.bids[:limit], chosen.asks[:limit],
                chosen.time_ms, chosen.seq, chosen.cts_ms,
            )  # fmt: skip
    return rt.source.depth_snapshot(symbol, limit, rt.clock())


def _dec(value: int, decimals: int) -> str:
    if decimals <= 0:
        return str(value)
    s = str(value).rjust(decimals + 1, "0")
    return f"{s[:-decimals]}.{s[-decimals:]}"


def _exchange_info(rt: VenueRuntime, usdm: bool, limit_w: int) -> dict[str, Any]:
    symbols = []
    for spec in rt.source.instruments():
        tick = _dec(spec.tick, spec.price_decimals)
        step = _dec(spec.lot, spec.qty_decimals)
        if usdm:
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
            tick8 = _dec(spec.tick * 10 ** (w - spec.price_decimals), w)
            step8 = _dec(spec.lot * 10 ** (spec.wire_qd - spec.qty_decimals), spec.wire_qd)
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


# -- Bybit --------------------------------------------------------------------------------------

BYBIT_DEFAULT_LIMIT = {"spot": 1, "linear": 25, "inverse": 25, "option": 1}
BYBIT_MAX_LIMIT = {"spot": 1000, "linear": 1000, "inverse": 1000, "option": 25}


def _bybit_env(rt: VenueRuntime, result: Any, code: int = 0, msg: str = "OK") -> Response:
    return _json(200, {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {},
                       "time": rt.clock() // 1_000_000})  # fmt: skip


def _bybit(rt: VenueRuntime, path: str, params: dict[str, str]) -> Response:
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
        snap = _snapshot(rt, symbol, limit) if symbol else None
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
    tick = _dec(spec.tick, spec.price_decimals)
    step = _dec(spec.lot, spec.qty_decimals)
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
