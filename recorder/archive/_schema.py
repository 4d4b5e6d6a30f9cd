"""The archive's explicit schemas: common columns, each channel's typed columns, metadata.

Every file of a (venue, channel) has the same schema: the common columns (``recv_time``,
``conn``, ``seq``, ``stream``, ``envelope``), the channel's typed columns, and ``raw`` -- the
payload bytes, kept only for rows whose typed columns do not re-render them exactly."""

from __future__ import annotations

from typing import Final

import orjson
import pyarrow as pa

from recorder.core._codec import ChannelCodec

FORMAT_VERSION: Final = "1"
TMP_DIR: Final = ".ticktape-tmp"
META_PREFIX: Final = "ticktape."

COMMON_FIELDS: Final = [
    pa.field("recv_time", pa.timestamp("ns", tz="UTC"), nullable=False),
    pa.field("conn", pa.string(), nullable=False),
    pa.field("seq", pa.int64(), nullable=False),
    pa.field("stream", pa.string(), nullable=False),
    pa.field("envelope", pa.int8(), nullable=False),
]
RAW_FIELD: Final = pa.field("raw", pa.binary())
COMMON_NAMES: Final = frozenset(f.name for f in COMMON_FIELDS) | {"raw"}


def recorder_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ticktape")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def archive_schema(codec: ChannelCodec) -> pa.Schema:
    """The explicit Arrow schema of every file of ``codec``'s (venue, channel)."""
    typed = codec.typed_fields
    clash = {f.name for f in typed} & (
        COMMON_NAMES | {"venue", "channel", "symbol", "date", "hour"}
    )
    if clash:
        raise ValueError(f"{codec.venue}/{codec.channel}: typed columns shadow {sorted(clash)}")
    return pa.schema(
        [*COMMON_FIELDS, *typed, RAW_FIELD],
        metadata={
            META_PREFIX + "format_version": FORMAT_VERSION,
            META_PREFIX + "recorder_version": recorder_version(),
            META_PREFIX + "venue": codec.venue,
            META_PREFIX + "channel": codec.channel,
        },
    )


def unit_cast_schema(schema: pa.Schema) -> pa.Schema:
    """The same schema with every timestamp replaced by int64 (for reading raw integers)."""

    def conv(t: pa.DataType) -> pa.DataType:
        if pa.types.is_timestamp(t):
            return pa.int64()
        if pa.types.is_list(t):
            return pa.list_(conv(t.value_type))
        if pa.types.is_struct(t):
            return pa.struct([pa.field(f.name, conv(f.type), f.nullable) for f in t])
        return t

    return pa.schema([pa.field(f.name, conv(f.type), f.nullable) for f in schema])


ARCHIVE_ORDER: Final = [("recv_time", "ascending"), ("conn", "ascending"), ("seq", "ascending")]
"""The order of the rows of every file (``sort_by`` keys)."""


def listed_parts(schema: pa.Schema) -> list[str]:
    """The part files a compacted file absorbed (from its metadata); [] for a part file."""
    meta = schema.metadata or {}
    raw = meta.get((META_PREFIX + "parts").encode())
    if not raw:
        return []
    parts = orjson.loads(raw)
    return [str(p) for p in parts]


def parts_metadata(parts: list[str]) -> dict[str, str]:
    """The metadata entry of a compacted file that lists the ``parts`` it absorbed."""
    return {META_PREFIX + "parts": orjson.dumps(parts).decode()}


__all__ = [
    "ARCHIVE_ORDER",
    "COMMON_FIELDS",
    "COMMON_NAMES",
    "FORMAT_VERSION",
    "META_PREFIX",
    "RAW_FIELD",
    "TMP_DIR",
    "archive_schema",
    "listed_parts",
    "parts_metadata",
    "recorder_version",
    "unit_cast_schema",
]
