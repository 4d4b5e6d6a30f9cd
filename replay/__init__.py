"""ticktape replay: archives back through the recorder's message interface.

``open_archive(root, ...)`` yields :class:`recorder.Message` objects in the archive's global
order (recv_ns, connection, sequence), synchronously or as a Trio async iterator.
"""

from replay._reader import ArchiveReader, Selection, open_archive

__all__ = ["ArchiveReader", "Selection", "open_archive"]
