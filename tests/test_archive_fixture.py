"""A committed archive (format version 1) reads back exactly as it did when it was made.

``tests/fixtures/archive_v1/`` was recorded from the local exchange simulator (all seven
venues, see ``tests/fixtures/make_archive_fixture.py``); ``tests/fixtures/archive_v1.ndjson.gz``
holds every message of it as ``replay.open_archive`` gave them then, in global order: the
``replay.write_ndjson`` record (exact payload, venue, stream, channel, symbol, recv_ns, conn,
seq) plus the message's ``event_ns`` and decoded ``fields``. Reading the same files today must
give the same lines, byte for byte, so that internal reorganisations that keep the on-disk
format cannot silently change what an old archive means.

Only the public top-level API of ``recorder`` and ``replay`` is used here, on purpose.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import math
import shutil
import stat
from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from recorder import Message
from replay import open_archive, read_ndjson, scan, write_ndjson

FIXTURES = Path(__file__).parent / "fixtures"
ARCHIVE = FIXTURES / "archive_v1"
EXPECTED = FIXTURES / "archive_v1.ndjson.gz"
VENUES = {
    "binance-spot",
    "binance-usdm",
    "binance-sbe",
    "bybit-spot",
    "bybit-linear",
    "bybit-inverse",
    "bybit-option",
}


def plain(value: Any) -> Any:
    """``value`` as plain JSON data, deterministically and without losing what it is.

    Values JSON has no (exact) type for are tagged: bytes ``{"$bytes": hex}``, Decimal
    ``{"$decimal": str}``, non-finite floats ``{"$float": "nan"|"inf"|"-inf"}``, datetimes,
    dates and times ``{"$datetime": isoformat}`` (etc.). Tuples become lists, mapping keys
    strings (sorted when written). Anything else unknown is an error, never a guess.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"$timedelta_us": value // dt.timedelta(microseconds=1)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return plain(item())
    raise TypeError(f"no JSON form for {type(value).__name__}: {value!r}")


def fixture_lines(messages: Iterable[Message]) -> list[bytes]:
    """One line per message: ``replay.write_ndjson``'s record plus ``event_ns`` and ``fields``
    (keys sorted, so equal messages give equal bytes). ``make_archive_fixture.py`` writes the
    committed expected file with this same function."""
    msgs = list(messages)
    buf = io.BytesIO()
    assert write_ndjson(msgs, buf) == len(msgs)
    records = buf.getvalue().splitlines()
    assert len(records) == len(msgs)
    out = []
    for m, line in zip(msgs, records, strict=True):
        rec = orjson.loads(line)
        rec["event_ns"] = m.event_ns
        rec["fields"] = plain(m.fields)
        out.append(orjson.dumps(rec, option=orjson.OPT_SORT_KEYS))
    return out


def read_expected() -> list[bytes]:
    with gzip.open(EXPECTED, "rb") as f:
        return [line for line in f.read().splitlines() if line.strip()]


def _copy_read_only(tmp_path: Path) -> Path:
    root = tmp_path / "archive_v1"
    shutil.copytree(ARCHIVE, root)
    for p in root.rglob("*"):
        if p.is_file():
            p.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    return root


def _first_difference(got: bytes, want: bytes) -> str:
    g, w = orjson.loads(got), orjson.loads(want)
    keys = sorted(k for k in g.keys() | w.keys() if g.get(k) != w.get(k))
    if not keys:
        return "same values, different bytes"
    return "; ".join(f"{k}: got {g.get(k)!r:.300} want {w.get(k)!r:.300}" for k in keys)


def test_fixture_is_what_it_claims() -> None:
    # Guards against the fixture being regenerated into something that covers less.
    files = [p.name for p in ARCHIVE.rglob("*.parquet")]
    assert any(n.startswith("data-") for n in files), "no compacted hour"
    assert any(n.startswith("part-") for n in files), "no part files"
    assert sum(p.stat().st_size for p in ARCHIVE.rglob("*") if p.is_file()) < 1 << 20
    records = [orjson.loads(line) for line in read_expected()]
    assert {r["venue"] for r in records} == VENUES
    channels = {r["channel"] for r in records}
    assert {"session", "depth", "depth_snapshot", "book_checkpoint", "orderbook"} <= channels
    assert {"trade", "publicTrade"} <= channels


def test_archive_reads_back_exactly_as_recorded(tmp_path: Path) -> None:
    root = _copy_read_only(tmp_path)
    expected = read_expected()
    got = fixture_lines(open_archive(str(root)))
    assert len(got) == len(expected), f"{len(got)} messages read, {len(expected)} expected"
    for i, (g, w) in enumerate(zip(got, expected, strict=True)):
        assert g == w, f"message {i} differs: {_first_difference(g, w)}"

    # The expected lines are also valid input of the public NDJSON reader.
    def attrs(m: Message) -> tuple[object, ...]:
        return (m.venue, m.stream, m.channel, m.symbol, m.recv_ns, m.conn, m.seq, m.payload)

    replayed = list(open_archive(str(root)))
    assert [attrs(m) for m in read_ndjson(expected)] == [attrs(m) for m in replayed]
    keys = [m.sort_key() for m in replayed]
    assert keys == sorted(keys)


def test_polars_row_counts_per_venue_and_channel(tmp_path: Path) -> None:
    root = _copy_read_only(tmp_path)
    records = [orjson.loads(line) for line in read_expected()]
    want = Counter((r["venue"], r["channel"]) for r in records)
    got = {
        (venue, channel): scan(str(root), venue, channel).select(pl.len()).collect().item()
        for venue, channel in want
    }
    assert got == dict(want)
    # ... and no (venue, channel) is missing from the expected file.
    read = Counter((m.venue, m.channel) for m in open_archive(str(root)))
    assert read == want
