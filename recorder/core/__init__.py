"""The bottom layer: what every other layer speaks (no venue, no I/O).

- ``_message.py``: :class:`Message`, session events and the reserved channel names;
- ``_codec.py``: the channel-codec contract and its registry;
- ``_frame.py``: a received WebSocket frame and its receive time;
- ``_errors.py``: the error types (local vs remote protocol errors, config, archive);
- ``_time.py``: time units in integer nanoseconds;
- ``_secrets.py``: masking API keys and credentials in every text shown or stored.
"""

from recorder.core._codec import ChannelCodec, Decoded, channels_of, codec_for, register, venues
from recorder.core._errors import (
    ArchiveError,
    ConfigError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    TicktapeError,
    UnsupportedMessage,
)
from recorder.core._frame import Frame
from recorder.core._message import (
    ALL_SYMBOLS,
    CONTROL_CHANNEL,
    SESSION_CHANNEL,
    UNPARSED_CHANNEL,
    Message,
    SessionEvent,
    replayed_messages,
)
from recorder.core._secrets import redact_secrets, remember_secret
from recorder.core._time import HOUR_NS, MS_NS, SECOND_NS, US_NS

__all__ = [
    "ALL_SYMBOLS",
    "CONTROL_CHANNEL",
    "HOUR_NS",
    "MS_NS",
    "SECOND_NS",
    "SESSION_CHANNEL",
    "UNPARSED_CHANNEL",
    "US_NS",
    "ArchiveError",
    "ChannelCodec",
    "ConfigError",
    "Decoded",
    "Frame",
    "LocalProtocolError",
    "Message",
    "ProtocolError",
    "RemoteProtocolError",
    "SessionEvent",
    "TicktapeError",
    "UnsupportedMessage",
    "channels_of",
    "codec_for",
    "redact_secrets",
    "register",
    "remember_secret",
    "replayed_messages",
    "venues",
]
