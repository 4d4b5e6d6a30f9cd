"""The benchmark harness runs end to end with tiny sizes (``make bench`` runs it for real):
ingest over TLS with two connections, storage and replay."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks.run import main


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for RSS")
def test_the_harness_writes_a_report(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    rc = main(
        [
            "--quick",
            "--only",
            "ingest",
            "--only",
            "storage",
            "--messages",
            "2000",
            "--transport",
            "wss",
            "--connections",
            "2",
            "--storage-messages",
            "2000",
            "--out",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
        ]
    )
    assert rc == 0
    text = out.read_text()
    for heading in ("## Summary", "## 1. Ingest", "## 2. Storage", "## 3. Replay"):
        assert heading in text
    assert "Exact payload reproduction" in text and "**yes**" in text
    assert "| python |" in text and "| pyarrow |" in text
