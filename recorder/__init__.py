"""ticktape recorder: capture exchange WebSocket market data into a lossless Parquet archive.

The public surface is small: :class:`Message` (what every connection yields and replay gives
back), the archive writer, and the errors. Venue protocol cores live in private modules
(``_binance``, ``_bybit``, ``_sbe``), one concern per file.
"""

from recorder._archive import (
    FORMAT_VERSION,
    ArchiveWriter,
    WriterStatistics,
    archive_schema,
    list_partitions,
)
from recorder._channels import ChannelCodec, Decoded, channels_of, codec_for, venues
from recorder._errors import (
    ArchiveError,
    ConfigError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    TicktapeError,
    UnsupportedMessage,
)
from recorder._message import (
    ALL_SYMBOLS,
    CONTROL_CHANNEL,
    SESSION_CHANNEL,
    UNPARSED_CHANNEL,
    Message,
    SessionEvent,
)

__all__ = [
    "ALL_SYMBOLS",
    "CONTROL_CHANNEL",
    "FORMAT_VERSION",
    "SESSION_CHANNEL",
    "UNPARSED_CHANNEL",
    "ArchiveError",
    "ArchiveWriter",
    "ChannelCodec",
    "ConfigError",
    "Decoded",
    "LocalProtocolError",
    "Message",
    "ProtocolError",
    "RemoteProtocolError",
    "SessionEvent",
    "TicktapeError",
    "UnsupportedMessage",
    "WriterStatistics",
    "archive_schema",
    "channels_of",
    "codec_for",
    "list_partitions",
    "venues",
]
