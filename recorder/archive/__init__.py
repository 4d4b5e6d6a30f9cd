"""The lossless Parquet archive: layout, schemas, storage, encoding, writing, reading.

- ``_layout.py``: safe Hive partition paths;
- ``_storage.py``: local and object-store roots, secrets kept out of text;
- ``_writer.py``: schemas, buffering, part files, compaction and recovery;
- ``_columnar.py`` / ``_render.py``: payloads to typed columns and back, a batch at a time;
- ``_writerproc.py``: the writer in a process of its own;
- ``_inspect.py``: ``ticktape ls`` and ``ticktape verify``;
- ``_schemadoc.py``: the schema reference in the README.
"""
