"""Reading an archive: its partitions, the files a reader should read, their rows, messages.

The one reader that replay, scans, book rebuilds and ``verify`` share. A partition-hour is
either its compacted ``data-*.parquet`` file, or its part files, or both for a moment after a
crash during compaction: the compacted file lists the parts it absorbed in its metadata, and
those parts are left out (``superseded``)."""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from recorder.archive._layout import PartitionKey, parse_relpath
from recorder.archive._render import payloads, typed_rows
from recorder.archive._schema import (
    META_PREFIX,
    TMP_DIR,
    archive_schema,
)
from recorder.archive._storage import open_archive_root, redact
from recorder.core._codec import codec_for
from recorder.core._errors import ArchiveError
from recorder.core._message import Message, replayed_messages
from recorder.venues._channels import JsonChannel


def table_to_messages(table: pa.Table, key: PartitionKey) -> list[Message]:
    """Rebuild messages from archive rows (the inverse of what the writer stores).

    Payloads are rendered a batch at a time (:mod:`recorder.archive._render`). A JSON channel's
    fields are decoded from the payload on first use (the writer stored what decoding
    gives); other channels' come from the typed columns (an ``unparsed`` frame's error is
    not in its bytes)."""
    codec = codec_for(key.venue, key.channel)
    decoded = None
    if not isinstance(codec, JsonChannel):
        decoded = [(f, codec.event_ns(f)) for f in typed_rows(codec, table)]
    where = (key.venue, key.channel, key.symbol)
    streams = table.column("stream").to_pylist()
    conns = table.column("conn").to_pylist()
    metas = [(*where, s, c) for s, c in zip(streams, conns, strict=True)]
    return list(
        replayed_messages(
            metas,
            table.column("recv_time").cast(pa.int64()).to_pylist(),
            table.column("seq").to_pylist(),
            payloads(codec, table).to_pylist(),
            decoded,
        )
    )


def _listed_parts(schema: pa.Schema) -> list[str]:
    meta = schema.metadata or {}
    raw = meta.get((META_PREFIX + "parts").encode())
    if not raw:
        return []
    parts = orjson.loads(raw)
    return [str(p) for p in parts]


def _read_file(fs: pafs.FileSystem, path: str) -> pa.Table:
    try:
        with fs.open_input_file(path) as f:
            return pq.read_table(f)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ArchiveError(f"cannot read {path}: {redact(str(exc))}") from exc


@dataclass(frozen=True, slots=True)
class PartitionFiles:
    """The files of one partition that a reader should read (superseded parts left out)."""

    key: PartitionKey
    paths: tuple[str, ...]
    superseded: tuple[str, ...]


def list_partitions(
    root: str, storage_options: Mapping[str, object] | None = None
) -> tuple[pafs.FileSystem, list[PartitionFiles]]:
    """Every partition under ``root`` with the files a reader should read, sorted."""
    r = open_archive_root(root, storage_options)
    fs, base = r.fs, r.base
    sel = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    by_dir: dict[str, list[str]] = defaultdict(list)
    try:
        infos = fs.get_file_info(sel)
    except OSError as exc:
        raise ArchiveError(f"cannot list {r.display}: {redact(str(exc))}") from None
    for info in infos:
        if info.type != pafs.FileType.File or not info.path.endswith(".parquet"):
            continue
        rel = posixpath.relpath(info.path, base)
        if rel.startswith(TMP_DIR):
            continue
        by_dir[posixpath.dirname(info.path)].append(posixpath.basename(info.path))
    out: list[PartitionFiles] = []
    for dir_, names in by_dir.items():
        key = parse_relpath(posixpath.relpath(dir_, base))
        if key is None:
            continue
        superseded: set[str] = set()
        # Only part files can be superseded: a compacted partition's footer need not be read
        # (with one file per symbol and channel, that read is most of a listing's cost).
        has_parts = any(n.startswith("part-") for n in names)
        for n in names:
            if has_parts and n.startswith("data-"):
                superseded.update(_listed_parts(_read_schema(fs, posixpath.join(dir_, n))))
        keep = tuple(sorted(posixpath.join(dir_, n) for n in names if n not in superseded))
        gone = tuple(sorted(posixpath.join(dir_, n) for n in names if n in superseded))
        out.append(PartitionFiles(key, keep, gone))
    out.sort(key=lambda p: p.key)
    return fs, out


def _read_schema(fs: pafs.FileSystem, path: str) -> pa.Schema:
    try:
        with fs.open_input_file(path) as f:
            return pq.read_schema(f)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ArchiveError(f"cannot read {path}: {redact(str(exc))}") from exc


def read_partition(fs: pafs.FileSystem, part: PartitionFiles) -> pa.Table:
    """All rows of a partition, in archive order."""
    codec = codec_for(part.key.venue, part.key.channel)
    schema = archive_schema(codec)
    tables = [_read_file(fs, p).cast(schema) for p in part.paths]
    if not tables:
        return schema.empty_table()
    t = pa.concat_tables(tables)
    if len(tables) > 1:
        t = t.sort_by([("recv_time", "ascending"), ("conn", "ascending"), ("seq", "ascending")])
    return t


__all__ = ["PartitionFiles", "list_partitions", "read_partition", "table_to_messages"]
