"""Binance endpoints: WebSocket URLs, REST paths, request weights, exchange info.

Sans-IO: request descriptions and parsers; the recorder's REST client does the I/O.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import orjson

from recorder.core._errors import LocalProtocolError, RemoteProtocolError
from recorder.venues.binance._control import MAX_STREAMS_PER_CONNECTION
from recorder.venues.binance._envelope import SPOT, Route
from recorder.venues.binance._streams import _check_venue, parse_stream_name

# --------------------------------------------------------------------------------------------
# URLs and REST
# --------------------------------------------------------------------------------------------

SPOT_WS_BASE: Final = "wss://stream.binance.com:9443"
SPOT_WS_DATA_BASE: Final = "wss://data-stream.binance.vision"
"""Market-data-only Spot host (same stream catalogue, no user data)."""
USDM_WS_BASE: Final = "wss://fstream.binance.com"
SPOT_REST_BASE: Final = "https://api.binance.com"
SPOT_REST_DATA_BASE: Final = "https://data-api.binance.vision"
USDM_REST_BASE: Final = "https://fapi.binance.com"

SPOT_WEIGHT_LIMIT_1M: Final = 6000
USDM_WEIGHT_LIMIT_1M: Final = 2400
USED_WEIGHT_HEADER: Final = "X-MBX-USED-WEIGHT-1M"


def route_of(venue: str, streams: Iterable[str]) -> Route | None:
    """The one route all ``streams`` belong to (None on Spot); raises if they need several."""
    _check_venue(venue)
    routes = {parse_stream_name(venue, s).route for s in streams}
    if len(routes) > 1:
        raise LocalProtocolError(
            f"{venue}: streams of routes {sorted(str(r) for r in routes)} cannot share a "
            "connection (a stream on the wrong route silently delivers nothing)"
        )
    return routes.pop() if routes else None


def ws_url(
    venue: str, base: str | None = None, streams: Sequence[str] = (), route: Route | None = None
) -> str:
    """Combined-stream URL ``<base>[/<route>]/stream?streams=a/b``.

    ``base`` defaults to the venue's main host. USDⓈ-M needs a route; it is derived from
    ``streams`` when not given and must match them.
    """
    _check_venue(venue)
    streams = list(streams)
    if len(streams) > MAX_STREAMS_PER_CONNECTION:
        raise LocalProtocolError(f"{venue}: more than {MAX_STREAMS_PER_CONNECTION} streams")
    needed = route_of(venue, streams)
    if venue == SPOT:
        if route is not None:
            raise LocalProtocolError(f"{venue}: Spot has no routes, got {route!r}")
        root = (base or SPOT_WS_BASE).rstrip("/")
    else:
        if route is None:
            route = needed
        if route not in ("public", "market"):
            raise LocalProtocolError(f"{venue}: route must be 'public' or 'market', got {route!r}")
        if needed is not None and needed != route:
            raise LocalProtocolError(f"{venue}: streams belong to route {needed!r}, not {route!r}")
        root = (base or USDM_WS_BASE).rstrip("/") + "/" + route
    if not streams:
        return root + "/stream"
    return root + "/stream?streams=" + "/".join(streams)


def depth_path(venue: str, symbol: str, limit: int | None = None) -> str:
    """Path and query of the REST depth snapshot (``/api/v3/depth`` or ``/fapi/v1/depth``)."""
    _check_venue(venue)
    if not symbol or symbol != symbol.upper():
        raise LocalProtocolError(f"{venue}: REST symbols are uppercase, got {symbol!r}")
    path = "/api/v3/depth" if venue == SPOT else "/fapi/v1/depth"
    query = "?symbol=" + urllib.parse.quote(symbol, safe="")
    if limit is not None:
        depth_weight(venue, limit)  # validates
        query += f"&limit={limit}"
    return path + query


def exchange_info_path(venue: str) -> str:
    _check_venue(venue)
    return "/api/v3/exchangeInfo" if venue == SPOT else "/fapi/v1/exchangeInfo"


_USDM_DEPTH_WEIGHTS: Final = {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10, 1000: 20}


def depth_weight(venue: str, limit: int | None = None) -> int:
    """Request weight of a depth snapshot of ``limit`` levels (None = the default limit)."""
    _check_venue(venue)
    if venue == SPOT:
        limit = 100 if limit is None else limit
        if type(limit) is not int or limit < 1:
            raise LocalProtocolError(f"{venue}: depth limit must be a positive int, got {limit!r}")
        # Limits above 5000 are served as 5000 (§7.1).
        for top, weight in ((100, 5), (500, 25), (1000, 50)):
            if limit <= top:
                return weight
        return 250
    limit = 500 if limit is None else limit
    try:
        return _USDM_DEPTH_WEIGHTS[limit]
    except (KeyError, TypeError):
        raise LocalProtocolError(
            f"{venue}: depth limit must be one of {sorted(_USDM_DEPTH_WEIGHTS)}, got {limit!r}"
        ) from None


def used_weight(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> int | None:
    """``X-MBX-USED-WEIGHT-1M`` from response headers (case-insensitive); None if absent."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if name.lower() == "x-mbx-used-weight-1m":
            text = value.strip()
            if not text.isdigit():
                raise RemoteProtocolError(f"bad {USED_WEIGHT_HEADER} header: {value!r}")
            return int(text)
    return None


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    symbol: str
    status: str
    base: str
    quote: str


def parse_exchange_info(body: bytes) -> list[SymbolInfo]:
    """The symbols of an ``exchangeInfo`` response body (Spot or USDⓈ-M)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RemoteProtocolError(f"exchangeInfo: invalid JSON: {exc}") from None
    if not isinstance(value, dict) or not isinstance(value.get("symbols"), list):
        raise RemoteProtocolError("exchangeInfo: no 'symbols' array")
    out = []
    for s in value["symbols"]:
        try:
            info = SymbolInfo(s["symbol"], s["status"], s["baseAsset"], s["quoteAsset"])
        except (KeyError, TypeError):
            raise RemoteProtocolError(f"exchangeInfo: malformed symbol entry {s!r:.200}") from None
        if not all(isinstance(x, str) for x in (info.symbol, info.status, info.base, info.quote)):
            raise RemoteProtocolError(f"exchangeInfo: non-string field in {s!r:.200}")
        out.append(info)
    return out
