"""Frames of the retired v2 API, recognised and refused; where a V5 frame belongs (route)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from recorder.core._errors import RemoteProtocolError, UnsupportedMessage
from recorder.core._message import ALL_SYMBOLS, CONTROL_CHANNEL
from recorder.venues.bybit._topics import LEGACY_MESSAGE, classify, topic_of

# --------------------------------------------------------------------------------------------
# Legacy v2 (retired): recognise, never decode

# v2 topic names (realtime / realtime_public): trade.BTCUSD, orderBookL2_25.BTCUSD,
# orderBook_200.100ms.BTCUSD, instrument_info.100ms.BTCUSD, klineV2.1.BTCUSD, candle.1.BTCUSDT,
# insurance.BTC. (``liquidation.`` is left out: V5 had that name too.)
_LEGACY_TOPICS: Final = frozenset(
    {
        "trade",
        "orderBookL2_25",
        "orderBook_200",
        "instrument_info",
        "klineV2",
        "candle",
        "insurance",
    }
)
_LEGACY_MARKERS: Final = (b'"request":{', b'"timestamp_e6"', b'"cross_seq"', b'"transactTimeE6"')


def detect_legacy(frame: bytes) -> bool:
    """True for a frame of Bybit's retired v2 WebSocket API (data or control)."""
    topic = topic_of(frame)
    if topic is not None and topic.split(".", 1)[0] in _LEGACY_TOPICS:
        return True
    return any(m in frame for m in _LEGACY_MARKERS)


@dataclass(frozen=True, slots=True)
class Route:
    """Where a received frame goes: channel, topic (stream) and symbol partition."""

    channel: str
    topic: str | None
    symbol: str


def route(venue: str, frame: bytes) -> Route:
    """Route a received frame without parsing it (hot path).

    Data pushes go to their topic's channel; frames without a topic to ``control``. Raises
    UnsupportedMessage for legacy v2 frames and RemoteProtocolError for an unknown topic;
    the recorder keeps such frames in ``unparsed``.
    """
    topic = topic_of(frame)
    if topic is not None:
        info = classify(venue, topic)
        if info is not None:
            return Route(info.channel, topic, info.symbol)
    if detect_legacy(frame):
        raise UnsupportedMessage(f"{venue}: {LEGACY_MESSAGE}")
    if topic is None:
        return Route(CONTROL_CHANNEL, None, ALL_SYMBOLS)
    raise RemoteProtocolError(f"{venue}: unknown topic {topic!r}")
