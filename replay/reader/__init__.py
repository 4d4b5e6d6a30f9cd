"""Archives read back as :class:`recorder.Message` objects in global order, and NDJSON export."""

from replay.reader._archive import ArchiveReader, open_archive
from replay.reader._ndjson import read_ndjson, write_ndjson
from replay.reader._selection import Selection

__all__ = ["ArchiveReader", "Selection", "open_archive", "read_ndjson", "write_ndjson"]
