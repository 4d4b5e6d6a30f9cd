"""Archives read back as :class:`recorder.Message` objects in global order, and NDJSON export."""

from recorder.archive import Selection
from replay.reader._archive import ArchiveReader, MessageChunks, open_archive
from replay.reader._ndjson import read_ndjson, write_ndjson

__all__ = [
    "ArchiveReader",
    "MessageChunks",
    "Selection",
    "open_archive",
    "read_ndjson",
    "write_ndjson",
]
