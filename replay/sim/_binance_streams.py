"""Binance stream names: which names each flavor (spot, USDⓈ-M, COIN-M, SBE) accepts, parsed.

``binance-spot.md`` §6, ``binance-usdm-futures.md`` §1/§5, ``binance-sbe.md`` §2; COIN-M uses
the USDⓈ-M forms with contract symbols (``btcusd_perp@aggTrade``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

INTERVAL_MS: dict[str, int] = {
    "1s": 1000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
    "1M": 2_592_000_000,
}
WINDOWS = {"1h", "4h", "1d"}

SPOT_DEPTH_SPEEDS = {"": 1000, "@1000ms": 1000, "@100ms": 100}
USDM_DEPTH_SPEEDS = {"": 250, "@500ms": 500, "@100ms": 100}

# usdm route of each stream kind ("public" = book data, "market" = the rest)
USDM_PUBLIC_KINDS = {"bookTicker", "allBookTicker", "depth", "partial", "rpiDepth"}


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed Binance stream name."""

    kind: str
    symbol: str | None = None  # uppercase
    period_ms: int = 0  # 0 = real time
    arg: str = ""  # interval, window, levels ...

    @property
    def usdm_route(self) -> str:
        return "public" if self.kind in USDM_PUBLIC_KINDS else "market"


_SYM = r"([a-z0-9]+)"
_SPOT_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Parsed | None]]] = []
_USDM_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Parsed | None]]] = []
_SBE_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Parsed | None]]] = []
_COINM_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Parsed | None]]] = []


def _kline(m: re.Match[str], period: Callable[[str], int]) -> Parsed | None:
    iv = m.group(2)
    if iv not in INTERVAL_MS:
        return None
    tz = m.group(3) if m.re.groups >= 3 else None  # spot `@+08:00` variant
    return Parsed("kline", m.group(1).upper(), period(iv), iv + (tz or ""))


def _depth_patterns(
    p: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Parsed | None]]],
    speeds: dict[str, int],
) -> None:
    """Partial book (``@depth5``...) and diff depth streams, at the venue's update speeds."""
    speed = "(" + "|".join(re.escape(k) for k in speeds if k) + ")?"
    p.append(
        (
            re.compile(rf"{_SYM}@depth(5|10|20){speed}"),
            lambda m: Parsed("partial", m.group(1).upper(), speeds[m.group(3) or ""], m.group(2)),
        )
    )
    p.append(
        (
            re.compile(rf"{_SYM}@depth{speed}"),
            lambda m: Parsed("depth", m.group(1).upper(), speeds[m.group(2) or ""]),
        )
    )


def _spot_patterns() -> None:
    p = _SPOT_PATTERNS
    p.append((re.compile(rf"{_SYM}@trade"), lambda m: Parsed("trade", m.group(1).upper())))
    p.append((re.compile(rf"{_SYM}@aggTrade"), lambda m: Parsed("aggTrade", m.group(1).upper())))
    p.append(
        (
            re.compile(rf"{_SYM}@kline_([0-9]+[smhdwM])(@\+08:00)?"),
            lambda m: _kline(m, lambda iv: 1000 if iv == "1s" else 2000),
        )
    )
    p.append(
        (
            re.compile(rf"{_SYM}@miniTicker"),
            lambda m: Parsed("miniTicker", m.group(1).upper(), 1000),
        )
    )
    p.append((re.compile(r"!miniTicker@arr"), lambda m: Parsed("allMiniTicker", None, 1000)))
    p.append((re.compile(rf"{_SYM}@ticker"), lambda m: Parsed("ticker", m.group(1).upper(), 1000)))
    p.append(
        (
            re.compile(rf"{_SYM}@ticker_(1h|4h|1d)"),
            lambda m: Parsed("windowTicker", m.group(1).upper(), 1000, m.group(2)),
        )
    )
    p.append(
        (
            re.compile(r"!ticker_(1h|4h|1d)@arr"),
            lambda m: Parsed("allWindowTicker", None, 1000, m.group(1)),
        )
    )
    p.append(
        (re.compile(rf"{_SYM}@bookTicker"), lambda m: Parsed("bookTicker", m.group(1).upper()))
    )
    p.append(
        (re.compile(rf"{_SYM}@avgPrice"), lambda m: Parsed("avgPrice", m.group(1).upper(), 1000))
    )
    p.append(
        (
            re.compile(rf"{_SYM}@referencePrice"),
            lambda m: Parsed("referencePrice", m.group(1).upper(), 1000),
        )
    )
    p.append(
        (re.compile(rf"{_SYM}@blockTrade"), lambda m: Parsed("blockTrade", m.group(1).upper()))
    )
    _depth_patterns(p, SPOT_DEPTH_SPEEDS)


def _usdm_patterns() -> None:
    p = _USDM_PATTERNS
    # `<symbol>@trade` is undocumented for USDⓈ-M but live (shared/corpus/binance-usdm/trade)
    p.append((re.compile(rf"{_SYM}@trade"), lambda m: Parsed("trade", m.group(1).upper())))
    p.append((re.compile(rf"{_SYM}@aggTrade"), lambda m: Parsed("aggTrade", m.group(1).upper())))
    p.append(
        (
            re.compile(rf"{_SYM}@markPrice(@1s)?"),
            lambda m: Parsed("markPrice", m.group(1).upper(), 1000 if m.group(2) else 3000),
        )
    )
    p.append(
        (
            re.compile(r"!markPrice@arr(@1s)?"),
            lambda m: Parsed("allMarkPrice", None, 1000 if m.group(1) else 3000),
        )
    )
    p.append((re.compile(rf"{_SYM}@kline_([0-9]+[smhdwM])"), lambda m: _kline(m, lambda iv: 250)))
    p.append(
        (
            re.compile(
                rf"{_SYM}_(perpetual|current_quarter|next_quarter|tradifi_perpetual)"
                r"@continuousKline_([0-9]+[smhdwM])"
            ),
            lambda m: (
                Parsed("continuousKline", m.group(1).upper(), 250, m.group(3) + "|" + m.group(2))
                if m.group(3) in INTERVAL_MS
                else None
            ),
        )
    )
    p.append(
        (
            re.compile(rf"{_SYM}@miniTicker"),
            lambda m: Parsed("miniTicker", m.group(1).upper(), 2000),
        )
    )
    p.append((re.compile(r"!miniTicker@arr"), lambda m: Parsed("allMiniTicker", None, 1000)))
    p.append((re.compile(rf"{_SYM}@ticker"), lambda m: Parsed("ticker", m.group(1).upper(), 2000)))
    p.append((re.compile(r"!ticker@arr"), lambda m: Parsed("allTicker", None, 1000)))
    p.append(
        (re.compile(rf"{_SYM}@bookTicker"), lambda m: Parsed("bookTicker", m.group(1).upper()))
    )
    p.append((re.compile(r"!bookTicker"), lambda m: Parsed("allBookTicker", None, 5000)))
    p.append(
        (
            re.compile(rf"{_SYM}@forceOrder"),
            lambda m: Parsed("forceOrder", m.group(1).upper(), 1000),
        )
    )
    p.append((re.compile(r"!forceOrder@arr"), lambda m: Parsed("allForceOrder", None, 1000)))
    _depth_patterns(p, USDM_DEPTH_SPEEDS)
    p.append(
        (
            re.compile(rf"{_SYM}@rpiDepth@500ms"),
            lambda m: Parsed("rpiDepth", m.group(1).upper(), 500),
        )
    )
    p.append(
        (
            re.compile(rf"{_SYM}@compositeIndex"),
            lambda m: Parsed("compositeIndex", m.group(1).upper(), 1000),
        )
    )
    p.append((re.compile(r"!contractInfo"), lambda m: Parsed("contractInfo", None, 0)))
    p.append((re.compile(r"!assetIndex@arr"), lambda m: Parsed("allAssetIndex", None, 1000)))
    p.append(
        (
            re.compile(r"([a-z0-9]+)@assetIndex"),
            lambda m: Parsed("assetIndex", None, 1000, m.group(1).upper()),
        )
    )
    p.append((re.compile(r"tradingSession"), lambda m: Parsed("tradingSession", None, 1000)))


def _sbe_patterns() -> None:
    p = _SBE_PATTERNS
    p.append((re.compile(rf"{_SYM}@trade"), lambda m: Parsed("trade", m.group(1).upper())))
    p.append(
        (re.compile(rf"{_SYM}@bestBidAsk"), lambda m: Parsed("bestBidAsk", m.group(1).upper()))
    )
    p.append((re.compile(rf"{_SYM}@depth20"), lambda m: Parsed("depth20", m.group(1).upper(), 50)))
    p.append((re.compile(rf"{_SYM}@depth"), lambda m: Parsed("depth", m.group(1).upper(), 20)))


def _coinm_patterns() -> None:
    """COIN-M (``dstream``): the USDⓈ-M forms for contract symbols such as ``btcusd_perp``."""
    p = _COINM_PATTERNS
    sym = r"([a-z0-9]+_[a-z0-9]+)"
    p.append((re.compile(rf"{sym}@aggTrade"), lambda m: Parsed("aggTrade", m.group(1).upper())))
    p.append(
        (
            re.compile(rf"{sym}@markPrice(@1s)?"),
            lambda m: Parsed("markPrice", m.group(1).upper(), 1000 if m.group(2) else 3000),
        )
    )
    p.append((re.compile(rf"{sym}@kline_([0-9]+[smhdwM])"), lambda m: _kline(m, lambda iv: 250)))
    p.append((re.compile(rf"{sym}@bookTicker"), lambda m: Parsed("bookTicker", m.group(1).upper())))
    p.append(
        (
            re.compile(rf"{sym}@forceOrder"),
            lambda m: Parsed("forceOrder", m.group(1).upper(), 1000),
        )
    )
    p.append((re.compile(r"!forceOrder@arr"), lambda m: Parsed("allForceOrder", None, 1000)))
    speed = "(" + "|".join(re.escape(k) for k in USDM_DEPTH_SPEEDS if k) + ")?"
    p.append(
        (
            re.compile(rf"{sym}@depth(5|10|20){speed}"),
            lambda m: Parsed(
                "partial", m.group(1).upper(), USDM_DEPTH_SPEEDS[m.group(3) or ""], m.group(2)
            ),
        )
    )
    p.append(
        (
            re.compile(rf"{sym}@depth{speed}"),
            lambda m: Parsed("depth", m.group(1).upper(), USDM_DEPTH_SPEEDS[m.group(2) or ""]),
        )
    )


_spot_patterns()
_usdm_patterns()
_sbe_patterns()
_coinm_patterns()
PATTERNS = {
    "spot": _SPOT_PATTERNS,
    "usdm": _USDM_PATTERNS,
    "sbe": _SBE_PATTERNS,
    "coinm": _COINM_PATTERNS,
}
FLAVORS = {
    "binance-spot": "spot",
    "binance-usdm": "usdm",
    "binance-sbe": "sbe",
    "binance-coinm": "coinm",
}
"""Venue -> flavor: the set of stream names and payload rules it follows."""


def parse_stream(flavor: str, name: str, symbols: Collection[str]) -> Parsed | None:
    """Parse a stream name; None if invalid (unknown form or symbol, not lowercase)."""
    for pat, make in PATTERNS[flavor]:
        m = pat.fullmatch(name)
        if m is not None:
            parsed = make(m)
            if parsed is None:
                return None
            if parsed.symbol is not None and parsed.symbol not in symbols:
                return None
            return parsed
    return None
