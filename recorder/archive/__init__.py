"""The lossless Parquet archive: layout, schemas, storage, encoding, writing, reading.

- ``_layout.py``: safe Hive partition paths;
- ``_storage.py``: local and object-store roots, secrets kept out of text;
- ``_schema.py``: the explicit schemas and file metadata;
- ``_buffer.py``: per-partition buffers, staged rows and their encoding;
- ``_writer.py``: part files (:class:`ArchiveWriter`); ``_compaction.py``: compaction, recovery;
- ``_reader.py``: the one reader: a selection's partitions and files, the time filter, rows;
- ``_columnar.py`` / ``_render.py``: payloads to typed columns and back, a batch at a time;
- ``_writerproc.py``: the writer in a process of its own;
- ``_inspect.py``: ``ticktape ls`` and ``ticktape verify``;
- ``_schemadoc.py``: the schema reference in the README.
"""

from recorder.archive._buffer import Rows, WriterStatistics, as_unparsed
from recorder.archive._inspect import (
    PartitionSummary,
    VerifyReport,
    group_summary,
    summarize,
    verify,
)
from recorder.archive._layout import PartitionKey, encode_value
from recorder.archive._reader import (
    ArchiveListing,
    FileBatches,
    PartitionFiles,
    Selection,
    dictionary_schema,
    list_partitions,
    overlaps,
    read_schema,
    read_table,
    recv_ns,
    select,
    time_mask,
)
from recorder.archive._render import payloads, typed_rows
from recorder.archive._schema import (
    COMMON_FIELDS,
    FORMAT_VERSION,
    META_PREFIX,
    RAW_FIELD,
    archive_schema,
    recorder_version,
)
from recorder.archive._storage import ArchiveRoot, open_archive_root, redact
from recorder.archive._writer import ArchiveWriter

__all__ = [
    "COMMON_FIELDS",
    "FORMAT_VERSION",
    "META_PREFIX",
    "RAW_FIELD",
    "ArchiveListing",
    "ArchiveRoot",
    "ArchiveWriter",
    "FileBatches",
    "PartitionFiles",
    "PartitionKey",
    "PartitionSummary",
    "Rows",
    "Selection",
    "VerifyReport",
    "WriterStatistics",
    "archive_schema",
    "as_unparsed",
    "dictionary_schema",
    "encode_value",
    "group_summary",
    "list_partitions",
    "open_archive_root",
    "overlaps",
    "payloads",
    "read_schema",
    "read_table",
    "recorder_version",
    "recv_ns",
    "redact",
    "select",
    "summarize",
    "time_mask",
    "typed_rows",
    "verify",
]
