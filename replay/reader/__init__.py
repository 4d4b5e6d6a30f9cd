"""Archives read back as :class:`recorder.Message` objects in global order, and NDJSON export."""

from replay.reader._ndjson import read_ndjson, write_ndjson
from replay.reader._reader import ArchiveReader, Selection, open_archive

__all__ = ["ArchiveReader", "Selection", "open_archive", "read_ndjson", "write_ndjson"]
