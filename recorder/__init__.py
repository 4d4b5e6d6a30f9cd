"""ticktape recorder: capture exchange WebSocket market data into a lossless Parquet archive.

The public surface: :class:`Recorder` with :class:`RecorderConfig` and :class:`VenueJob` (run a
capture job, optionally tapping its live messages), :class:`Message` (what every connection
yields and replay gives back), the archive writer and reader functions, and the errors.

Layers, lowest first (held by import-linter contracts, see ``pyproject.toml``): ``core``
(messages, codec contract, errors), ``venues`` (sans-IO venue protocol cores and codecs),
``net`` (WebSocket and REST under Trio), ``archive`` (the Parquet archive), ``capture`` (the
supervisor and its policies), then ``cli``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recorder.archive._buffer import WriterStatistics
from recorder.archive._reader import list_partitions
from recorder.archive._schema import FORMAT_VERSION, archive_schema
from recorder.archive._writer import ArchiveWriter
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

if TYPE_CHECKING:
    from recorder.capture import Recorder, RecorderConfig, RecorderStatistics


def __getattr__(name: str) -> Any:
    # The capture layer (trio, httpx, the supervisor) is loaded on first use rather than with
    # the package: the archive writer's child process imports ``recorder`` too, and has no
    # use for it (it would double the child's start-up time).
    if name in _CAPTURE:
        from recorder import capture

        return getattr(capture, name)
    raise AttributeError(f"module 'recorder' has no attribute {name!r}")


_CAPTURE = frozenset(("Recorder", "RecorderConfig", "RecorderStatistics"))

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
