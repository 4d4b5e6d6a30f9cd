"""Bybit V5 public market data: sans-IO protocol core and channel codecs.

Covers the venues ``bybit-spot``, ``bybit-linear``, ``bybit-inverse`` and ``bybit-option`` (one
venue per V5 *category*). Nothing here does I/O: like h11/wsproto, the functions turn bytes into
typed values and typed values into bytes, and the recorder's Trio code drives them.

* topics: :func:`classify`, :func:`topic_of`, :func:`validate_topic`
* codecs: one per (venue, channel), registered at import (see :mod:`recorder.core`)
* control: :func:`plan_requests`, :func:`check_connection_budget`, :func:`subscribe_request`,
  :func:`ping_request`, :func:`parse_control`
* legacy v2: :func:`detect_legacy` (such frames raise :class:`UnsupportedMessage`)
* books: :class:`BookSync`
* REST: :func:`orderbook_request`, :func:`instruments_request`, :func:`parse_instruments`,
  :func:`is_rate_limited`

Reference: ``shared/protocols/bybit-v5.md``."""

from recorder.venues.bybit._books import (
    BookEvent,
    BookSync,
    Gap,
    Reset,
    Stale,
    Synced,
)
from recorder.venues.bybit._codec import (
    LAYOUT,
    VariantCodec,
)
from recorder.venues.bybit._control import (
    ARGS_CHARS_PER_CONNECTION,
    DERIVATIVE_ARGS_PER_REQUEST,
    OPTION_ARGS_PER_CONNECTION,
    SPOT_ARGS_PER_REQUEST,
    ControlReply,
    check_connection_budget,
    parse_control,
    ping_request,
    plan_connections,
    plan_requests,
    subscribe_request,
    unsubscribe_request,
)
from recorder.venues.bybit._legacy import (
    Route,
    detect_legacy,
    route,
)
from recorder.venues.bybit._nodes import (
    FMT_TRIMMED,
    FMT_ZERO_SHORT,
    BookLevels,
    WideDec,
)
from recorder.venues.bybit._rest import (
    INSTRUMENTS_PATH,
    ORDERBOOK_PATH,
    RATE_LIMIT_RET_CODES,
    REST_HOST,
    REST_TESTNET_HOST,
    WS_HOST,
    WS_TESTNET_HOST,
    instruments_request,
    is_rate_limited,
    orderbook_request,
    parse_instruments,
    ws_url,
)
from recorder.venues.bybit._specs import (
    checkpoint_payload,
)
from recorder.venues.bybit._topics import (
    CATEGORIES,
    LEGACY_MESSAGE,
    VENUES,
    TopicInfo,
    category_of,
    classify,
    topic_of,
    validate_topic,
)

__all__ = [
    "ARGS_CHARS_PER_CONNECTION",
    "CATEGORIES",
    "DERIVATIVE_ARGS_PER_REQUEST",
    "FMT_TRIMMED",
    "FMT_ZERO_SHORT",
    "INSTRUMENTS_PATH",
    "LAYOUT",
    "LEGACY_MESSAGE",
    "OPTION_ARGS_PER_CONNECTION",
    "ORDERBOOK_PATH",
    "RATE_LIMIT_RET_CODES",
    "REST_HOST",
    "REST_TESTNET_HOST",
    "SPOT_ARGS_PER_REQUEST",
    "VENUES",
    "WS_HOST",
    "WS_TESTNET_HOST",
    "BookEvent",
    "BookLevels",
    "BookSync",
    "ControlReply",
    "Gap",
    "Reset",
    "Route",
    "Stale",
    "Synced",
    "TopicInfo",
    "VariantCodec",
    "WideDec",
    "category_of",
    "check_connection_budget",
    "checkpoint_payload",
    "classify",
    "detect_legacy",
    "instruments_request",
    "is_rate_limited",
    "orderbook_request",
    "parse_control",
    "parse_instruments",
    "ping_request",
    "plan_connections",
    "plan_requests",
    "route",
    "subscribe_request",
    "topic_of",
    "unsubscribe_request",
    "validate_topic",
    "ws_url",
]
