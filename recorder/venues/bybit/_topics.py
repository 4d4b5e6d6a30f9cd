"""Bybit V5 venues (one per category) and topic names: what exists, and a frame's topic.

Reference: ``bybit-v5.md`` §4.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from recorder.core._errors import LocalProtocolError

CATEGORIES: Final = ("spot", "linear", "inverse", "option")
VENUES: Final = tuple(f"bybit-{c}" for c in CATEGORIES)

LEGACY_MESSAGE: Final = "Bybit v2 API (retired) is not supported"


def category_of(venue: str) -> str:
    """``bybit-linear`` -> ``linear``; raises LocalProtocolError for other venues."""
    if venue not in VENUES:
        raise LocalProtocolError(f"not a Bybit venue: {venue!r}")
    return venue[len("bybit-") :]


# --------------------------------------------------------------------------------------------
# Topics


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """What a topic is: channel name, symbol, and the orderbook depth or kline interval."""

    channel: str
    symbol: str
    depth: int | None = None
    interval: str | None = None


# Depths one may subscribe to today, per category (bybit-v5.md 4.1).
_DEPTHS: Final[Mapping[str, frozenset[int]]] = {
    "spot": frozenset({1, 50, 200, 1000}),
    "linear": frozenset({1, 50, 200, 1000}),
    "inverse": frozenset({1, 50, 200, 1000}),
    "option": frozenset({25, 100}),
}
# Depths that only occur in archives: level 500 (linear/inverse) went offline 2025-09-30.
_HISTORIC_DEPTHS: Final[Mapping[str, frozenset[int]]] = {
    "spot": frozenset(),
    "linear": frozenset({500}),
    "inverse": frozenset({500}),
    "option": frozenset(),
}
_INTERVALS: Final = frozenset(
    ["1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M"]
)
_SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9_\-]*\Z")
_CHANNELS_BY_CATEGORY: Final[Mapping[str, frozenset[str]]] = {
    "spot": frozenset({"orderbook", "publicTrade", "tickers", "kline"}),
    "linear": frozenset({"orderbook", "publicTrade", "tickers", "kline", "allLiquidation"}),
    "inverse": frozenset({"orderbook", "publicTrade", "tickers", "kline", "allLiquidation"}),
    "option": frozenset({"orderbook", "publicTrade", "tickers"}),
}
# Retired topics that still appear in archives (decoded, never subscribed).
_HISTORIC_CHANNELS: Final[Mapping[str, frozenset[str]]] = {
    "spot": frozenset(),
    "linear": frozenset({"liquidation"}),
    "inverse": frozenset({"liquidation"}),
    "option": frozenset(),
}


def _classify(category: str, topic: str, historic: bool) -> TopicInfo | None:
    parts = topic.split(".")
    name = parts[0]
    if name not in _CHANNELS_BY_CATEGORY[category] and not (
        historic and name in _HISTORIC_CHANNELS[category]
    ):
        return None
    if name in ("orderbook", "kline"):
        if len(parts) != 3 or not _SYMBOL.match(parts[2]):
            return None
        if name == "kline":
            return (
                TopicInfo("kline", parts[2], interval=parts[1]) if parts[1] in _INTERVALS else None
            )
        if not (parts[1].isascii() and parts[1].isdigit()):
            return None
        depth = int(parts[1])
        if depth in _DEPTHS[category] or (historic and depth in _HISTORIC_DEPTHS[category]):
            return TopicInfo("orderbook", parts[2], depth=depth)
        return None
    if len(parts) != 2 or not _SYMBOL.match(parts[1]):
        return None
    if name == "publicTrade" and category == "option" and not parts[1].isalnum():
        return None  # option trades are per base coin (publicTrade.BTC), not per contract
    return TopicInfo(name, parts[1])


def classify(venue: str, topic: str) -> TopicInfo | None:
    """Classify a topic received on ``venue``; None if it is not a known V5 topic there.

    Retired topics still found in archives (``orderbook.500``, ``liquidation.{symbol}``)
    are accepted here but not by :func:`validate_topic`.
    """
    if venue not in VENUES:
        return None
    return _classify(venue[len("bybit-") :], topic, historic=True)


def validate_topic(venue: str, topic: str) -> TopicInfo:
    """Classify a topic we are about to subscribe to; LocalProtocolError if invalid."""
    info = _classify(category_of(venue), topic, historic=False)
    if info is None:
        raise LocalProtocolError(f"{venue}: invalid or unsupported topic {topic!r}")
    return info


_TOPIC_KEY = b'"topic":"'
_TOPIC_LOOSE = re.compile(rb'"topic"\s*:\s*"([^"\\]*)"')


def topic_of(frame: bytes) -> str | None:
    """The ``topic`` of a frame, found by byte search (no JSON parse; hot path).

    Key order varies (option frames start with ``"id"``), so this searches the whole frame;
    only data pushes have a ``"topic"`` key, and nested objects never do.
    """
    i = frame.find(_TOPIC_KEY)
    if i >= 0:
        start = i + len(_TOPIC_KEY)
        end = frame.find(b'"', start)
        if end < 0:
            return None
        raw = frame[start:end]
        if b"\\" not in raw:
            return raw.decode("utf-8", "replace")
    if b'"topic"' not in frame:
        return None
    m = _TOPIC_LOOSE.search(frame)  # whitespace around ':' (not sent by Bybit, but legal)
    return m.group(1).decode("utf-8", "replace") if m else None
