"""Replay memory stays bounded by a few row groups, whatever the time span."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from recorder import ArchiveWriter
from replay import open_archive
from tests.archive_helpers import HOUR_NS, T0, mixed_messages

HOURS = 12


def peak_bytes(root: str, end_ns: int) -> tuple[int, int]:
    tracemalloc.start()
    n = 0
    for _ in open_archive(root, end_ns=end_ns):
        n += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return n, peak


def test_peak_memory_does_not_grow_with_the_number_of_hours(tmp_path: Path) -> None:
    w = ArchiveWriter(str(tmp_path), writer_id="m", fsync=False)
    rounds = 400 * HOURS  # 5-6 messages per round, spread evenly over the hours
    w.add_many(mixed_messages(rounds, start_ns=T0, step_ns=HOUR_NS // 400))
    w.flush()
    w.compact_closed_hours(T0 + (HOURS + 2) * HOUR_NS, 0)
    n2, peak2 = peak_bytes(str(tmp_path), T0 + 2 * HOUR_NS)
    n12, peak12 = peak_bytes(str(tmp_path), T0 + (HOURS + 1) * HOUR_NS)
    assert n12 > 5 * n2 > 0
    # Six times the data, about the same peak: one hour's open files at a time.
    assert peak12 < 1.5 * peak2, (peak2, peak12)
