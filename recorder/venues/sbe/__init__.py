"""Binance spot SBE market-data streams (venue ``binance-sbe``): layout, decoder, encoder, codecs.

Sans-IO and synchronous. Every market-data event arrives as one SBE message in one binary
WebSocket frame (schema ``spot_stream`` id 1, version 0, little-endian; templates 10000 trade,
10001 bestBidAsk, 10002 depth20, 10003 depth). The layout lives in this module as data
(:data:`MESSAGES`); the structs are derived from it, and a test cross-checks it against the
official ``stream_1_0.xml``. Nothing is read from disk at run time.

Decoding follows the SBE extension rules: groups start at ``8 + blockLength`` of the header and
entries are stepped by the group's own ``blockLength``, so a newer schema version that appends
fields still decodes (the row is then marked inexact, so the archive keeps its raw bytes).
Prices and quantities are stored twice: the exact ``int64`` mantissa with the message's
``int8`` exponent, and a ``float64`` value for analysis. Timestamps are microseconds."""

from recorder.venues.sbe._codecs import (
    CODECS,
    SbeChannel,
)
from recorder.venues.sbe._decode import (
    decode,
    frame_info,
)
from recorder.venues.sbe._encode import (
    encode_best_bid_ask,
    encode_depth_diff,
    encode_depth_snapshot,
    encode_trades,
)
from recorder.venues.sbe._key import (
    API_KEY_ENV,
    API_KEY_HEADER,
    ApiKey,
)
from recorder.venues.sbe._layout import (
    BEST_BID_ASK,
    DEPTH_DIFF,
    DEPTH_SNAPSHOT,
    GROUP_SIZE,
    GROUP_SIZE16,
    HEADER_LAYOUT,
    MESSAGES,
    SCHEMA_ID,
    SCHEMA_VERSION,
    STREAM_SUFFIX,
    TRADES,
    VAR_STRING8,
    VENUE,
    Buffer,
    CompositeLayout,
    FieldLayout,
    GroupLayout,
    MessageLayout,
    SbeDecodeError,
    channel_of,
    stream_name,
)

__all__ = [
    "API_KEY_ENV",
    "API_KEY_HEADER",
    "BEST_BID_ASK",
    "CODECS",
    "DEPTH_DIFF",
    "DEPTH_SNAPSHOT",
    "GROUP_SIZE",
    "GROUP_SIZE16",
    "HEADER_LAYOUT",
    "MESSAGES",
    "SCHEMA_ID",
    "SCHEMA_VERSION",
    "STREAM_SUFFIX",
    "TRADES",
    "VAR_STRING8",
    "VENUE",
    "ApiKey",
    "Buffer",
    "CompositeLayout",
    "FieldLayout",
    "GroupLayout",
    "MessageLayout",
    "SbeChannel",
    "SbeDecodeError",
    "channel_of",
    "decode",
    "encode_best_bid_ask",
    "encode_depth_diff",
    "encode_depth_snapshot",
    "encode_trades",
    "frame_info",
    "stream_name",
]
