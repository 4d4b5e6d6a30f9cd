"""Symbol universes: "every TRADING symbol quoted in USDT", resolved from the exchange.

The selection itself is pure (:func:`select_symbols` over :class:`Instrument` rows); fetching
goes through the weight-budgeted REST client: Binance ``exchangeInfo`` (the SBE venue uses the
spot one), Bybit ``instruments-info`` page by page. The recorder re-resolves periodically and
hands the difference to the shard planner's ``rebalance``: new listings are subscribed,
delisted symbols dropped, nothing else moves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from recorder.core._errors import RemoteProtocolError
from recorder.net._rest import RestClient
from recorder.venues import Instrument, UniverseSelect
from recorder.venues import binance as bn


def select_symbols(instruments: Iterable[Instrument], sel: UniverseSelect) -> list[str]:
    """The sorted symbols ``sel`` picks out of ``instruments``."""
    pattern = re.compile(sel.match) if sel.match is not None else None
    out = sorted(
        {
            i.symbol
            for i in instruments
            if (sel.quote is None or i.quote.upper() == sel.quote.upper())
            and (sel.base is None or i.base.upper() == sel.base.upper())
            and (sel.status is None or i.status.upper() == sel.status.upper())
            and (pattern is None or pattern.fullmatch(i.symbol))
        }
    )
    return out[: sel.max_symbols] if sel.max_symbols is not None else out


def _loads(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RemoteProtocolError(f"{what}: invalid JSON: {exc}") from None


async def fetch_instruments(venue: str, rest: RestClient) -> list[Instrument]:
    """Every instrument the venue lists (raises RemoteProtocolError on a bad answer)."""
    if venue.startswith("bybit"):
        return await _bybit_instruments(venue, rest)
    api = "binance-spot" if venue == "binance-sbe" else venue
    path = bn.exchange_info_path(api)
    weight = 20 if api == "binance-spot" else 1
    resp = await rest.get(path, weight=weight)
    if resp.status != 200:
        raise RemoteProtocolError(f"{venue}: exchangeInfo answered HTTP {resp.status}")
    return [
        Instrument(s.symbol, s.status, s.base, s.quote) for s in bn.parse_exchange_info(resp.body)
    ]


async def _bybit_instruments(venue: str, rest: RestClient) -> list[Instrument]:
    category = venue.split("-", 1)[1]
    out: list[Instrument] = []
    cursor: str | None = None
    for _ in range(1000):  # pages; a bound in case the cursor never ends
        params = {"category": category, "limit": "1000"}
        if cursor:
            params["cursor"] = cursor
        resp = await rest.get("/v5/market/instruments-info", params)
        if resp.status != 200:
            raise RemoteProtocolError(f"{venue}: instruments-info answered HTTP {resp.status}")
        body = _loads(resp.body, f"{venue} instruments-info")
        result = body.get("result") if isinstance(body, dict) else None
        items = result.get("list") if isinstance(result, dict) else None
        if not isinstance(items, list):
            raise RemoteProtocolError(f"{venue}: instruments-info without result.list")
        for it in items:
            if isinstance(it, dict) and isinstance(it.get("symbol"), str):
                out.append(
                    Instrument(
                        it["symbol"],
                        str(it.get("status", "")),
                        str(it.get("baseCoin", "")),
                        str(it.get("quoteCoin", "")),
                    )
                )
        nxt = result.get("nextPageCursor") if isinstance(result, dict) else None
        cursor = nxt if isinstance(nxt, str) and nxt else None
        if cursor is None:
            break
    return out


def expand_streams(venue: str, symbols: Sequence[str], channels: Sequence[str]) -> list[str]:
    """Stream names for every (symbol, channel) pair, in the venue's naming scheme."""
    if venue.startswith("bybit"):
        return [f"{ch}.{sym.upper()}" for sym in symbols for ch in channels]
    return [f"{sym.lower()}@{ch}" for sym in symbols for ch in channels]
