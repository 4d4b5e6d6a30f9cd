"""Merging the sources of one hour by (recv_ns, conn, seq), a batch at a time; the first
chunks of an hour rendered in parallel.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import numpy as np
import pyarrow as pa

from recorder.archive import (
    payloads,
)
from replay.reader._source import _CHUNK, _RENDER_ROWS, Decoded, _Metas, _Rows, _Source


def _merged(metas: _Metas, parts: list[_Rows]) -> Iterator[_Rows]:
    """Rows taken from several files, in (recv_ns, conn, seq) order, in chunks."""
    recv = np.concatenate([p.recv for p in parts])
    seq = np.concatenate([p.seq for p in parts])
    meta = np.concatenate([p.meta for p in parts])
    payload = pa.concat_arrays([p.payload for p in parts]) if len(parts) > 1 else parts[0].payload
    # Stored fields (few rows): each row's index into ``known``, -1 for none.
    known: list[Decoded | None] = []
    which = None
    if any(p.decoded is not None for p in parts):
        which = np.full(len(recv), -1, np.intp)
        start = 0
        for p in parts:
            if p.decoded is not None:
                which[start : start + len(p.recv)] = np.arange(len(known), len(known) + len(p.recv))
                known += p.decoded
            start += len(p.recv)
    order = None
    if len(parts) > 1:  # one file's rows are in order already
        rank = metas.rank[meta]
        if rank.min() == rank.max():
            order = np.lexsort((seq, recv))
        elif seq.min() >= 0 and seq.max() < 2**47 and rank.max() < 2**15:
            order = np.lexsort(((rank << 47) | seq, recv))  # one key: half the passes
        else:
            order = np.lexsort((seq, rank, recv))
        recv, seq, meta = recv[order], seq[order], meta[order]
        if which is not None:
            which = which[order]
    for i in range(0, len(recv), _CHUNK):
        j = i + _CHUNK
        decoded = None
        if which is not None and which[i:j].max() >= 0:
            decoded = [known[k] if k >= 0 else None for k in which[i:j].tolist()]
        yield _Rows(
            recv[i:j],
            seq[i:j],
            meta[i:j],
            payload.slice(i, _CHUNK) if order is None else payload.take(order[i:j]),
            decoded,
            metas.objects,
        )


def _first_chunks(sources: list[_Source], pool: ThreadPoolExecutor) -> None:
    """Read every file's first chunk and render those of each channel together.

    Each Arrow call costs microseconds whatever its size, and an hour often holds many small
    files (a channel per symbol): rendering them one by one would cost more in calls than in
    work. Later chunks are read ahead file by file."""
    batches = list(pool.map(_Source.decode, sources))
    by_codec: dict[int, list[int]] = defaultdict(list)
    for i, (s, b) in enumerate(zip(sources, batches, strict=True)):
        if b is None:
            s.ready(None)
        else:
            by_codec[id(s.codec)].append(i)
    # Groups of about _RENDER_ROWS rows: the arrays of each pass then stay in the cache.
    groups: list[list[int]] = []
    for members in by_codec.values():
        rows = _RENDER_ROWS
        for i in members:
            batch = batches[i]
            assert batch is not None
            if rows + batch.num_rows > _RENDER_ROWS:
                groups.append([])
                rows = 0
            groups[-1].append(i)
            rows += batch.num_rows

    def render(members: list[int]) -> pa.Array:
        first = sources[members[0]]
        group = [b for b in (batches[i] for i in members) if b is not None]
        table = pa.Table.from_batches(group, schema=first.schema).combine_chunks()
        return payloads(first.codec, table, [b.num_rows for b in group])

    for members, payload in zip(groups, pool.map(render, groups), strict=True):
        start = 0
        for i in members:
            batch = batches[i]
            assert batch is not None
            sources[i].ready(sources[i].chunk(batch, payload.slice(start, batch.num_rows)))
            start += batch.num_rows


def _merge(sources: list[_Source], pool: ThreadPoolExecutor) -> Iterator[_Rows]:
    """Merge of the files of one hour, in batches.

    Every round takes, from every file, the buffered rows received before the frontier (the
    earliest last buffered receive time among files not exhausted): no unread row can sort
    before them. The rows at the frontier wait for the next round, so that rows with equal
    receive times are always ordered together; the files whose buffers are left with only
    such rows (or none) read their next chunk. Memory: about a batch per file.
    """
    metas = _Metas()
    try:
        _first_chunks(sources, pool)
        for s in sources:
            s.load(metas)
        while True:
            sources = [s for s in sources if len(s) or not s.done]
            if not sources:
                return
            pending = [s for s in sources if not s.done]
            frontier = min(s.last for s in pending) if pending else None
            parts = []
            for s in sources:
                k = len(s) if frontier is None else int(np.searchsorted(s.recv, frontier))
                if k:
                    parts.append(s.take(k))
            if parts:
                yield from _merged(metas, parts)
            for s in pending:
                if not len(s) or s.last <= cast(int, frontier):
                    s.load(metas)
    finally:
        for s in sources:
            s.close()
