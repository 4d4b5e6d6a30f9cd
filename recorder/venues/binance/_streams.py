"""Binance stream names: which streams exist on which venue and route, and their symbols.

Reference: ``binance-spot.md`` §6 and ``binance-usdm-futures.md`` §3-§5.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

from recorder.core._errors import LocalProtocolError
from recorder.core._message import ALL_SYMBOLS, CONTROL_CHANNEL
from recorder.venues.binance._envelope import SPOT, USDM, VENUES, Route

# --------------------------------------------------------------------------------------------
# Stream names
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a stream name means: its channel, symbol partition and (USDⓈ-M) URL route."""

    channel: str
    symbol: str
    route: Route | None = None


_SPOT_INTERVALS = "1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M"
_USDM_INTERVALS = "1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M"
_CONTRACT_TYPES = ("perpetual", "current_quarter", "next_quarter", "tradifi_perpetual")

# (suffix after "<symbol>@", channel, route); full-match regexes.
_SPOT_SYMBOL_STREAMS: Final[list[tuple[str, str, Route | None]]] = [
    (r"trade", "trade", None),
    (r"aggTrade", "aggTrade", None),
    (rf"kline_(?:{_SPOT_INTERVALS})(?:@\+08:00)?", "kline", None),
    (r"miniTicker", "miniTicker", None),
    (r"ticker", "ticker", None),
    (r"ticker_(?:1h|4h|1d)", "ticker_window", None),
    (r"bookTicker", "bookTicker", None),
    (r"avgPrice", "avgPrice", None),
    (r"depth(?:5|10|20)(?:@100ms)?", "depthPartial", None),
    (r"depth(?:@100ms)?", "depth", None),
    (r"referencePrice", "referencePrice", None),
    (r"blockTrade", "blockTrade", None),
]
_SPOT_ALL_STREAMS: Final[dict[str, str]] = {
    "!miniTicker@arr": "miniTicker_arr",
    "!ticker@arr": "ticker_arr",
    "!ticker_1h@arr": "ticker_window_arr",
    "!ticker_4h@arr": "ticker_window_arr",
    "!ticker_1d@arr": "ticker_window_arr",
}
_SPOT_RETIRED: Final = {"!ticker@arr": "retired on 2026-03-26 (use <symbol>@ticker)"}

_USDM_SYMBOL_STREAMS: Final[list[tuple[str, str, Route | None]]] = [
    (r"aggTrade", "aggTrade", "market"),
    # Undocumented (seen in captures); route not in the table, /market is our best guess.
    (r"trade", "trade", "market"),
    (r"markPrice(?:@1s)?", "markPrice", "market"),
    (rf"kline_(?:{_USDM_INTERVALS})", "kline", "market"),
    (r"miniTicker", "miniTicker", "market"),
    (r"ticker", "ticker", "market"),
    (r"bookTicker", "bookTicker", "public"),
    (r"forceOrder", "forceOrder", "market"),
    (r"depth(?:5|10|20)(?:@500ms|@100ms)?", "depthPartial", "public"),
    (r"depth(?:@500ms|@100ms|@0ms)?", "depth", "public"),
    (r"rpiDepth@500ms", "rpiDepth", "public"),
    (r"compositeIndex", "compositeIndex", "market"),
    (r"assetIndex", "assetIndex", "market"),
]
_USDM_CONTINUOUS = re.compile(rf"continuousKline_(?:1s|{_USDM_INTERVALS})")
_USDM_ALL_STREAMS: Final[dict[str, tuple[str, Route]]] = {
    "!markPrice@arr": ("markPrice_arr", "market"),
    "!markPrice@arr@1s": ("markPrice_arr", "market"),
    "!miniTicker@arr": ("miniTicker_arr", "market"),
    "!ticker@arr": ("ticker_arr", "market"),
    "!bookTicker": ("bookTicker", "public"),
    "!forceOrder@arr": ("forceOrder", "market"),
    "!contractInfo": ("contractInfo", "market"),
    "!assetIndex@arr": ("assetIndex_arr", "market"),
    "tradingSession": ("tradingSession", "market"),
}

_SERVER_SHUTDOWN_STREAM: Final = "!serverShutdown"

_COMPILED: Final[dict[str, list[tuple[re.Pattern[str], str, Route | None]]]] = {
    SPOT: [(re.compile(p), c, r) for p, c, r in _SPOT_SYMBOL_STREAMS],
    USDM: [(re.compile(p), c, r) for p, c, r in _USDM_SYMBOL_STREAMS],
}


def _valid_symbol(sym: str) -> bool:
    # Lowercase ASCII letters/digits, '_' (USDⓈ-M delivery contracts such as btcusdt_210129),
    # and non-ASCII letters (Spot lists a few symbols with CJK characters).
    if not sym:
        return False
    for ch in sym:
        if ch.isascii():
            if not (ch.islower() or ch.isdigit() or ch == "_"):
                return False
        elif not ch.isalnum() or ch.isupper():
            return False
    return True


def _check_venue(venue: str) -> None:
    if venue not in VENUES:
        raise LocalProtocolError(f"unknown Binance venue {venue!r} (expected one of {VENUES})")


def _parse(venue: str, stream: str) -> StreamInfo | str:
    """StreamInfo, or the reason the name is not a valid stream of ``venue``."""
    if venue == SPOT:
        if stream in _SPOT_ALL_STREAMS:
            return StreamInfo(_SPOT_ALL_STREAMS[stream], ALL_SYMBOLS)
    elif venue == USDM:
        if stream in _USDM_ALL_STREAMS:
            channel, all_route = _USDM_ALL_STREAMS[stream]
            return StreamInfo(channel, ALL_SYMBOLS, all_route)
    else:
        return f"unknown venue {venue!r}"
    sym, at, suffix = stream.partition("@")
    if not at or not suffix:
        return "expected <symbol>@<stream> or one of the all-market stream names"
    if not _valid_symbol(sym):
        return "the symbol part must be lowercase letters and digits"
    if venue == USDM and _USDM_CONTINUOUS.fullmatch(suffix):
        for ct in _CONTRACT_TYPES:
            pair = sym.removesuffix("_" + ct)
            if pair != sym and pair and "_" not in pair:
                return StreamInfo("continuousKline", sym.upper(), "market")
        return f"continuousKline needs <pair>_<contractType> with contractType in {_CONTRACT_TYPES}"
    for pattern, channel, route in _COMPILED[venue]:
        if pattern.fullmatch(suffix):
            if venue == SPOT and "_" in sym:
                return "Spot symbols have no '_'"
            return StreamInfo(channel, sym.upper(), route)
    return f"unknown stream type {suffix!r}"


@functools.lru_cache(maxsize=65536)
def classify(venue: str, stream: str) -> StreamInfo | None:
    """Channel, symbol and route of a received stream name; None if it is not a known stream.

    ``!serverShutdown`` (the combined-stream name of the shutdown notice) is the control
    channel. Cached, because the recorder calls this for every frame.
    """
    if stream == _SERVER_SHUTDOWN_STREAM:
        return StreamInfo(CONTROL_CHANNEL, ALL_SYMBOLS)
    info = _parse(venue, stream)
    return info if isinstance(info, StreamInfo) else None


def parse_stream_name(venue: str, stream: str) -> StreamInfo:
    """Validate a stream name we are about to subscribe to; raises LocalProtocolError."""
    _check_venue(venue)
    if not isinstance(stream, str) or not stream:
        raise LocalProtocolError(f"{venue}: empty or non-string stream name {stream!r}")
    if stream != stream.strip() or any(c in stream for c in '/"\\?&# '):
        raise LocalProtocolError(f"{venue}: stream name {stream!r} contains a forbidden character")
    if venue == SPOT and stream in _SPOT_RETIRED:
        raise LocalProtocolError(f"{venue}: stream {stream!r} was {_SPOT_RETIRED[stream]}")
    info = _parse(venue, stream)
    if isinstance(info, str):
        raise LocalProtocolError(f"{venue}: invalid stream name {stream!r}: {info}")
    return info
