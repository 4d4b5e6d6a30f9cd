"""ticktape recorder: capture exchange WebSocket market data into a lossless Parquet archive.

The public surface: :class:`Recorder` with :class:`RecorderConfig` and :class:`VenueJob` (run a
capture job, optionally tapping its live messages), :class:`Message` (what every connection
yields and replay gives back), the archive writer and reader functions, and the errors.

Layers, lowest first (held by import-linter contracts, see ``pyproject.toml``): ``core``
(messages, codec contract, errors), ``venues`` (sans-IO venue protocol cores and codecs),
``net`` (WebSocket and REST under Trio), ``archive`` (the Parquet archive), ``capture`` (the
supervisor and its policies), then ``cli``.
"""

from recorder.archive._writer import (
    FORMAT_VERSION,
    ArchiveWriter,
    WriterStatistics,
    archive_schema,
    list_partitions,
)
from recorder.capture._config import RecorderConfig
from recorder.capture._supervisor import Recorder, RecorderStatistics
from recorder.core import HOUR_NS
from recorder.core._codec import ChannelCodec, Decoded, channels_of, codec_for, venues
from recorder.core._errors import (
    ArchiveError,
    ConfigError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    TicktapeError,
    UnsupportedMessage,
)
from recorder.core._message import (
    ALL_SYMBOLS,
    CONTROL_CHANNEL,
    SESSION_CHANNEL,
    UNPARSED_CHANNEL,
    Message,
    SessionEvent,
)
from recorder.venues import VenueJob

__all__ = [
    "ALL_SYMBOLS",
    "CONTROL_CHANNEL",
    "FORMAT_VERSION",
    "HOUR_NS",
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
    "Recorder",
    "RecorderConfig",
    "RecorderStatistics",
    "RemoteProtocolError",
    "SessionEvent",
    "TicktapeError",
    "UnsupportedMessage",
    "VenueJob",
    "WriterStatistics",
    "archive_schema",
    "channels_of",
    "codec_for",
    "list_partitions",
    "venues",
]
