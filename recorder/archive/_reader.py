"""Reading an archive: which partitions and files a selection covers, and their rows.

Every reader of an archive (replay's merge, order books, Polars scans, ``ticktape ls`` and
``verify``, compaction) goes through this module, so that there is one answer to "which
files hold these rows":

* :func:`list_partitions` walks a root and gives every partition with the files to read: a
  compacted ``data-*.parquet`` and the part files it does not list as absorbed (a crash
  between compaction and deleting the parts leaves both; the parts are then *superseded*);
* :class:`Selection` is the one filter, on partitions (venue, channel, symbol, and the hours
  that overlap ``[start_ns, end_ns)``) and on rows (:func:`time_mask`, on the receive time);
* :func:`select` lists a selection, grouped by hour (:meth:`ArchiveListing.hours`);
* :func:`read_table` reads a whole file (the columns asked for, rows in a time range) and
  :class:`FileBatches` reads one a batch at a time, with bounded memory.

Synchronous: run it in a worker thread from async code.
"""

from __future__ import annotations

import functools
import posixpath
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from recorder.archive._layout import PartitionKey, parse_relpath
from recorder.archive._schema import TMP_DIR, archive_schema, listed_parts
from recorder.archive._storage import ArchiveRoot, open_archive_root, redact
from recorder.core import HOUR_NS
from recorder.core._codec import ChannelCodec
from recorder.core._errors import ArchiveError
from recorder.venues._jsonspec import Obj, Str


def overlaps(key: PartitionKey, start_ns: int | None, end_ns: int | None) -> bool:
    """Whether the hour of ``key`` holds receive times in ``[start_ns, end_ns)`` (None: open)."""
    if start_ns is not None and key.hour_end_ns <= start_ns:
        return False
    return end_ns is None or key.hour_start_ns < end_ns


def time_mask(
    recv: npt.NDArray[np.int64], start_ns: int | None, end_ns: int | None
) -> npt.NDArray[np.bool_] | None:
    """Which receive times (epoch ns) are in ``[start_ns, end_ns)``; None when all are."""
    if start_ns is None and end_ns is None:
        return None
    keep = np.ones(len(recv), np.bool_)
    if start_ns is not None:
        keep &= recv >= start_ns
    if end_ns is not None:
        keep &= recv < end_ns
    return None if keep.all() else keep


@dataclass(frozen=True)
class Selection:
    """Which part of an archive to read. ``None`` means everything; times are epoch ns,
    ``start_ns`` inclusive and ``end_ns`` exclusive, on the receive time."""

    venues: frozenset[str] | None = None
    channels: frozenset[str] | None = None
    symbols: frozenset[str] | None = None
    start_ns: int | None = None
    end_ns: int | None = None

    @classmethod
    def of(
        cls,
        venues: Iterable[str] | None = None,
        channels: Iterable[str] | None = None,
        symbols: Iterable[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> Selection:
        def fz(x: Iterable[str] | None) -> frozenset[str] | None:
            return None if x is None else frozenset(x)

        return cls(fz(venues), fz(channels), fz(symbols), start_ns, end_ns)

    def during(self, start_ns: int | None, end_ns: int | None) -> Selection:
        """The same partitions, over another time range."""
        return replace(self, start_ns=start_ns, end_ns=end_ns)

    def wants(self, key: PartitionKey) -> bool:
        """Whether the partition may hold selected rows."""
        if self.venues is not None and key.venue not in self.venues:
            return False
        if self.channels is not None and key.channel not in self.channels:
            return False
        if self.symbols is not None and key.symbol not in self.symbols:
            return False
        return overlaps(key, self.start_ns, self.end_ns)


@dataclass(frozen=True, slots=True)
class PartitionFiles:
    """The files of one partition that a reader should read (superseded parts left out)."""

    key: PartitionKey
    paths: tuple[str, ...]
    superseded: tuple[str, ...]

    @property
    def hour(self) -> int:
        """Hours since the epoch of the partition's start."""
        return self.key.hour_start_ns // HOUR_NS


def _root(root: str | ArchiveRoot, storage_options: Mapping[str, object] | None) -> ArchiveRoot:
    if isinstance(root, ArchiveRoot):
        return root
    return open_archive_root(root, storage_options)


def list_partitions(
    root: str | ArchiveRoot, storage_options: Mapping[str, object] | None = None
) -> tuple[pafs.FileSystem, list[PartitionFiles]]:
    """Every partition under ``root`` with the files a reader should read, sorted."""
    r = _root(root, storage_options)
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
                superseded.update(listed_parts(read_schema(fs, posixpath.join(dir_, n))))
        keep = tuple(sorted(posixpath.join(dir_, n) for n in names if n not in superseded))
        gone = tuple(sorted(posixpath.join(dir_, n) for n in names if n in superseded))
        out.append(PartitionFiles(key, keep, gone))
    out.sort(key=lambda p: p.key)
    return fs, out


@dataclass(frozen=True)
class ArchiveListing:
    """The partitions of a selection (sorted) and the filesystem their files are on."""

    fs: pafs.FileSystem
    selection: Selection
    partitions: list[PartitionFiles]

    def hours(
        self, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[tuple[int, list[PartitionFiles]]]:
        """The partitions grouped by hour (hours since the epoch), in time order; only the
        hours that overlap ``[start_ns, end_ns)`` if given."""
        by_hour: dict[int, list[PartitionFiles]] = defaultdict(list)
        for p in self.partitions:
            if overlaps(p.key, start_ns, end_ns):
                by_hour[p.hour].append(p)
        return sorted(by_hour.items())


def select(
    root: str | ArchiveRoot,
    selection: Selection | None = None,
    storage_options: Mapping[str, object] | None = None,
) -> ArchiveListing:
    """The partitions of ``root`` that ``selection`` (default: everything) wants."""
    selection = selection or Selection()
    fs, parts = list_partitions(root, storage_options)
    return ArchiveListing(fs, selection, [p for p in parts if selection.wants(p.key)])


def read_schema(fs: pafs.FileSystem, path: str) -> pa.Schema:
    """The schema (and metadata) of one file, from its footer."""
    try:
        with fs.open_input_file(path) as f:
            return pq.read_schema(f)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ArchiveError(f"cannot read {path}: {redact(str(exc))}") from exc


def recv_ns(data: pa.Table | pa.RecordBatch) -> npt.NDArray[np.int64]:
    """The receive times of rows, as epoch ns."""
    col = data.column("recv_time")
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return np.asarray(col.view(pa.int64()).to_numpy(), np.int64)


def read_table(
    fs: pafs.FileSystem,
    path: str,
    columns: Sequence[str] | None = None,
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> pa.Table:
    """One whole file: all its columns or ``columns`` (one a file's writer version did not
    have comes out all null), its rows received in ``[start_ns, end_ns)``."""
    try:
        with fs.open_input_file(path) as f:
            if columns is None:
                t = pq.read_table(f)
            else:
                pf = pq.ParquetFile(f)
                have = set(pf.schema_arrow.names)
                wanted = list(columns)
                if start_ns is not None or end_ns is not None:
                    wanted.append("recv_time")
                t = pf.read(columns=list(dict.fromkeys(c for c in wanted if c in have)))
    except (OSError, pa.ArrowInvalid) as exc:
        raise ArchiveError(f"cannot read {path}: {redact(str(exc))}") from exc
    keep = time_mask(recv_ns(t), start_ns, end_ns) if "recv_time" in t.column_names else None
    if keep is not None:
        t = t.filter(pa.array(keep))
    if columns is not None:
        for c in columns:
            if c not in t.column_names:
                t = t.append_column(c, pa.nulls(t.num_rows))
        t = t.select(list(columns))
    return t


def dictionary_schema(codec: ChannelCodec) -> pa.Schema:
    """The schema to read a file of ``codec`` in: the archive schema, with the columns that
    hold few distinct strings (connection, stream, symbol...) dictionary-encoded as Parquet
    stores them, so that each distinct value is handled once."""
    cached = _SCHEMAS.get((codec.venue, codec.channel))
    if cached is not None and cached[0] is codec:
        return cached[1]
    schema = archive_schema(codec)
    names = {"conn", "stream"}
    root = getattr(getattr(codec, "payload", None), "root", None)
    if type(root) is Obj:
        names |= {k.node.name for k in root.keys if isinstance(k.node, Str)}
    fields = [
        f.with_type(pa.dictionary(pa.int32(), f.type)) if f.name in names else f for f in schema
    ]
    read = pa.schema(fields, metadata=schema.metadata)
    _SCHEMAS[(codec.venue, codec.channel)] = (codec, read)
    return read


_SCHEMAS: dict[tuple[str, str], tuple[ChannelCodec, pa.Schema]] = {}


class FileBatches:
    """One file read a batch of at most ``batch_rows`` rows at a time, in ``schema`` (the
    archive schema, or :func:`dictionary_schema`), its rows cut to ``[start_ns, end_ns)``.

    The file is opened on the first :meth:`next` and closed at its end (or by :meth:`close`).
    Columns the footer's statistics show to hold one value are not read but made (see
    :func:`_constant_columns`). Not thread-safe: one call at a time.
    """

    def __init__(
        self,
        fs: pafs.FileSystem,
        path: str,
        schema: pa.Schema,
        batch_rows: int,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> None:
        self.fs, self.path, self.schema, self.batch_rows = fs, path, schema, batch_rows
        self.start_ns, self.end_ns = start_ns, end_ns
        self.finished = False  # nothing more will come from the file
        self._batches: Iterator[pa.RecordBatch] | None = None
        self._file: Any = None
        self._constants: dict[str, Callable[[int], pa.Array]] = {}

    def _open(self) -> Iterator[pa.RecordBatch]:
        try:
            self._file = self.fs.open_input_file(self.path)
        except OSError as exc:
            raise ArchiveError(f"cannot open {self.path}: {redact(str(exc))}") from exc
        names = [n for n in self.schema.names if pa.types.is_dictionary(self.schema.field(n).type)]
        try:
            pf = pq.ParquetFile(self._file, read_dictionary=names)
        except (OSError, pa.ArrowInvalid) as exc:
            raise ArchiveError(f"cannot read {self.path}: {redact(str(exc))}") from exc
        if pf.schema_arrow.names == self.schema.names:
            self._constants = _constant_columns(pf.metadata, self.schema)
        columns = [n for n in self.schema.names if n not in self._constants]
        # Readers run on threads of their own: Arrow's pool would only add switching.
        batches: Iterator[pa.RecordBatch] = pf.iter_batches(
            batch_size=self.batch_rows, columns=columns, use_threads=False
        )
        return batches

    def next(self) -> pa.RecordBatch | None:
        """The file's next non-empty batch in the time range, cast; None at its end."""
        if self._batches is None and not self.finished:
            self._batches = self._open()
        while not self.finished:
            assert self._batches is not None
            batch = next(self._batches, None)
            if batch is None:
                self.close()
                return None
            if self._constants:
                n = batch.num_rows
                arrays = [
                    self._constants[f.name](n) if f.name in self._constants else batch[f.name]
                    for f in self.schema
                ]
                try:
                    batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
                except (pa.ArrowInvalid, pa.ArrowTypeError):  # types of another version
                    batch = pa.RecordBatch.from_arrays(arrays, names=self.schema.names)
            if not batch.schema.equals(self.schema):  # files of older schema versions
                batch = batch.cast(self.schema)
            cut = self._select(batch)
            if cut is not None and cut.num_rows:
                return cut
        return None

    def _select(self, batch: pa.RecordBatch) -> pa.RecordBatch | None:
        """The batch's rows in the time range; None past its end."""
        if self.start_ns is None and self.end_ns is None:
            return batch
        recv = recv_ns(batch)
        if self.end_ns is not None and len(recv) and recv[0] >= self.end_ns:
            self.close()  # files are in receive-time order: nothing more wanted
            return None
        keep = time_mask(recv, self.start_ns, self.end_ns)
        return batch if keep is None else batch.filter(pa.array(keep))

    def close(self) -> None:
        self.finished = True
        if self._file is not None:
            self._file.close()
            self._file = None


def _constant_columns(
    md: pq.FileMetaData, schema: pa.Schema
) -> dict[str, Callable[[int], pa.Array]]:
    """Columns that the file's statistics show to hold one value (or only nulls), each with
    how to make it for ``n`` rows: not read at all. Per file and hour, the connection, the
    stream, the symbol, digit counts and ``raw`` usually are; reading a column costs a fixed
    price per file, which small files feel."""
    out: dict[str, Callable[[int], pa.Array]] = {}
    groups = [md.row_group(g) for g in range(md.num_row_groups)]
    if not groups:
        return out
    for i in range(md.num_columns):
        name = groups[0].column(i).path_in_schema
        if name not in schema.names:  # a nested column's leaf
            continue
        typ = schema.field(name).type
        stats = [g.column(i).statistics for g in groups]
        if any(st is None or not st.has_null_count for st in stats):
            continue
        if all(st.null_count == g.num_rows for st, g in zip(stats, groups, strict=True)):
            out[name] = functools.partial(pa.nulls, type=typ)
            continue
        if any(st.null_count or not st.has_min_max or st.min_raw != st.max_raw for st in stats):
            continue
        values = {st.min_raw for st in stats}
        if len(values) != 1:
            continue
        value = values.pop()
        if (typ == pa.int8() and type(value) is int) or (typ == pa.bool_() and type(value) is bool):
            out[name] = functools.partial(pa.repeat, pa.scalar(value, typ))
        elif isinstance(value, bytes) and len(value) < 64:  # never a truncated statistic
            text = value.decode()
            if pa.types.is_dictionary(typ) and typ.value_type == pa.string():
                out[name] = functools.partial(_one_string, pa.array([text], pa.string()))
            elif typ == pa.string():
                out[name] = functools.partial(pa.repeat, pa.scalar(text, typ))
    return out


def _one_string(dictionary: pa.Array, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), dictionary)


__all__ = [
    "ArchiveListing",
    "FileBatches",
    "PartitionFiles",
    "Selection",
    "dictionary_schema",
    "list_partitions",
    "overlaps",
    "read_schema",
    "read_table",
    "recv_ns",
    "select",
    "time_mask",
]
