"""Compaction and crash recovery: what a writer finds in its partitions and merges.

A partition's parts (``part-<writer>-<session>-<n>.parquet``) are merged, with the writer's
earlier compacted file if there is one, into ``data-<writer>.parquet``; the merged file lists
every part it absorbed in its metadata and is written (atomically) before the parts are
deleted. A crash between the two steps leaves parts that the merged file lists: readers
skip them (:func:`recorder.archive._reader.list_partitions`) and the next compaction deletes
them. After a crash, a writer drops its temporary files and adopts the parts it left.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs

from recorder.archive._layout import PartitionKey, parse_relpath
from recorder.archive._reader import read_table
from recorder.archive._schema import ARCHIVE_ORDER, listed_parts


def data_name(writer_id: str) -> str:
    """The compacted file of a writer in each partition."""
    return f"data-{writer_id}.parquet"


def _is_own_part(name: str, writer_id: str) -> bool:
    return name.startswith(f"part-{writer_id}-") and name.endswith(".parquet")


def own_parts(fs: pafs.FileSystem, dir_: str, writer_id: str) -> list[str]:
    """The part files of ``writer_id`` in one partition directory, sorted."""
    sel = pafs.FileSelector(dir_, allow_not_found=True)
    return sorted(
        posixpath.basename(i.path)
        for i in fs.get_file_info(sel)
        if i.type == pafs.FileType.File and _is_own_part(posixpath.basename(i.path), writer_id)
    )


@dataclass(frozen=True, slots=True)
class Merge:
    """A partition's merged rows, the parts its file must list, and the parts to delete once
    it is written."""

    table: pa.Table
    absorbed: list[str]
    parts: list[str]


def merge_partition(
    fs: pafs.FileSystem, dir_: str, writer_id: str, schema: pa.Schema
) -> Merge | None:
    """The merge of ``writer_id``'s parts and compacted file in ``dir_`` (in ``schema``, rows in
    archive order); None if there is no part to merge.

    Parts the compacted file already lists (a crash after its rename) are deleted here."""
    parts = own_parts(fs, dir_, writer_id)
    data_path = posixpath.join(dir_, data_name(writer_id))
    absorbed: list[str] = []
    tables: list[pa.Table] = []
    if fs.get_file_info(data_path).type == pafs.FileType.File:
        old = read_table(fs, data_path)
        listed = listed_parts(old.schema)
        absorbed.extend(listed)
        for p in parts:
            if p in listed:  # already inside the merged file
                fs.delete_file(posixpath.join(dir_, p))
        parts = [p for p in parts if p not in listed]
        tables.append(old)
    if not parts:
        return None
    tables.extend(read_table(fs, posixpath.join(dir_, p)) for p in parts)
    merged = pa.concat_tables([t.cast(schema) for t in tables]).sort_by(ARCHIVE_ORDER)
    absorbed.extend(parts)
    return Merge(merged.replace_schema_metadata(schema.metadata), absorbed, parts)


def clear_tmp(fs: pafs.FileSystem, tmp: str) -> None:
    """Delete the files a crashed writer left in its temporary directory."""
    for info in fs.get_file_info(pafs.FileSelector(tmp, allow_not_found=True)):
        if info.type == pafs.FileType.File:
            fs.delete_file(info.path)


def left_parts(
    fs: pafs.FileSystem, base: str, writer_id: str
) -> Iterator[tuple[PartitionKey, str]]:
    """Every part file of ``writer_id`` under ``base``, with its partition."""
    sel = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    for info in fs.get_file_info(sel):
        if info.type != pafs.FileType.File:
            continue
        name = posixpath.basename(info.path)
        if not _is_own_part(name, writer_id):
            continue
        key = parse_relpath(posixpath.relpath(posixpath.dirname(info.path), base))
        if key is not None:
            yield key, name


__all__ = ["Merge", "clear_tmp", "data_name", "left_parts", "merge_partition", "own_parts"]
