"""Bybit endpoints: WebSocket URLs, REST order book and instruments, rate-limit answers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson

from recorder.core._errors import LocalProtocolError, RemoteProtocolError
from recorder.venues.bybit._topics import _SYMBOL, category_of

# --------------------------------------------------------------------------------------------
# URLs and REST

WS_HOST: Final = "wss://stream.bybit.com"
WS_TESTNET_HOST: Final = "wss://stream-testnet.bybit.com"
REST_HOST: Final = "https://api.bybit.com"
REST_TESTNET_HOST: Final = "https://api-testnet.bybit.com"
ORDERBOOK_PATH: Final = "/v5/market/orderbook"
INSTRUMENTS_PATH: Final = "/v5/market/instruments-info"
_REST_BOOK_LIMIT: Final[Mapping[str, int]] = {
    "spot": 1000,
    "linear": 1000,
    "inverse": 1000,
    "option": 25,
}


def ws_url(venue: str, *, testnet: bool = False, host: str | None = None) -> str:
    """Public stream URL of a category (``host`` overrides, e.g. a local simulator)."""
    base = host or (WS_TESTNET_HOST if testnet else WS_HOST)
    return f"{base.rstrip('/')}/v5/public/{category_of(venue)}"


def orderbook_request(
    venue: str, symbol: str, limit: int | None = None, *, host: str = REST_HOST
) -> tuple[str, dict[str, str]]:
    """(url, params) of ``GET /v5/market/orderbook``; ``limit`` None = category maximum."""
    cat = category_of(venue)
    top = _REST_BOOK_LIMIT[cat]
    if limit is None:
        limit = top
    if not 1 <= limit <= top:
        raise LocalProtocolError(f"{venue}: orderbook limit must be 1..{top}, got {limit}")
    if not _SYMBOL.match(symbol):
        raise LocalProtocolError(f"{venue}: bad symbol {symbol!r} (Bybit symbols are uppercase)")
    params = {"category": cat, "symbol": symbol, "limit": str(limit)}
    return host.rstrip("/") + ORDERBOOK_PATH, params


def instruments_request(
    venue: str,
    cursor: str | None = None,
    *,
    limit: int = 1000,
    status: str | None = None,
    host: str = REST_HOST,
) -> tuple[str, dict[str, str]]:
    """(url, params) of one page of ``GET /v5/market/instruments-info``."""
    if not 1 <= limit <= 1000:
        raise LocalProtocolError(f"instruments-info limit must be 1..1000, got {limit}")
    params = {"category": category_of(venue), "limit": str(limit)}
    if status is not None:
        params["status"] = status
    if cursor:
        params["cursor"] = cursor
    return host.rstrip("/") + INSTRUMENTS_PATH, params


def _rest_result(body: bytes) -> dict[str, Any]:
    try:
        msg = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RemoteProtocolError(f"bybit REST: invalid JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise RemoteProtocolError("bybit REST: body is not an object")
    if msg.get("retCode") != 0:
        raise RemoteProtocolError(
            f"bybit REST: retCode {msg.get('retCode')!r}: {msg.get('retMsg')!r}"
        )
    result = msg.get("result")
    if not isinstance(result, dict):
        raise RemoteProtocolError("bybit REST: no result object")
    return result


def parse_instruments(
    body: bytes, *, statuses: Iterable[str] | None = None
) -> tuple[list[str], str | None]:
    """(symbols, next cursor or None) of an instruments-info page; keeps only ``statuses``
    when given (e.g. ``{"Trading"}``)."""
    result = _rest_result(body)
    items = result.get("list")
    if not isinstance(items, list):
        raise RemoteProtocolError("bybit REST: instruments-info without a list")
    keep = None if statuses is None else set(statuses)
    symbols = [
        it["symbol"]
        for it in items
        if isinstance(it, dict)
        and isinstance(it.get("symbol"), str)
        and (keep is None or it.get("status") in keep)
    ]
    cursor = result.get("nextPageCursor")
    return symbols, (cursor if isinstance(cursor, str) and cursor else None)


RATE_LIMIT_RET_CODES: Final = frozenset({10006, 10018})
"""retCodes Bybit uses for "too many visits" / IP rate limit (outside bybit-v5.md)."""


def is_rate_limited(status: int, body: bytes = b"") -> bool:
    """True for Bybit's IP rate-limit answer: HTTP 403 "access too frequent" (wait >= 10 min),
    or a JSON body with a rate-limit retCode."""
    if status == 403:
        return not body or b"too frequent" in body.lower() or b"403" in body[:64]
    if status in (200, 429) and body[:1] == b"{":
        try:
            msg = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False
        return isinstance(msg, dict) and msg.get("retCode") in RATE_LIMIT_RET_CODES
    return status == 429
