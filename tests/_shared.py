"""Access to ``../shared`` (protocol reference and corpus) for tests only.

A user's clone has no ``../shared``: tests that need it skip with a clear reason, except under
CI (``CI=true``), where a missing ``shared/`` is a failure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


def shared_dir() -> Path:
    """The shared/ directory beside the checkout, or skip (fail under CI) if absent."""
    if not SHARED.is_dir():
        msg = (
            f"{SHARED} not found: the exchange corpus and protocol reference live beside the clone"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: shared/ must be present)")
        pytest.skip(msg)
    return SHARED


@dataclass(frozen=True)
class CorpusLine:
    venue: str
    kind: str
    lineno: int
    source: str
    stream: str | None
    payload: bytes
    binary: bool
    exact: bool
    recv_ts: float | None

    @property
    def id(self) -> str:
        return f"{self.venue}/{self.kind}:{self.lineno}"


def corpus(venue: str | None = None, kind: str | None = None) -> Iterator[CorpusLine]:
    """Every corpus line (optionally of one venue directory and one file stem)."""
    root = shared_dir() / "corpus"
    for path in sorted(root.glob("*/*.jsonl")):
        if venue is not None and path.parent.name != venue:
            continue
        if kind is not None and path.stem != kind:
            continue
        with path.open(encoding="utf-8") as fh:
            for i, line in enumerate(fh, 1):
                rec = json.loads(line)
                if "payload_hex" in rec:
                    payload, binary = bytes.fromhex(rec["payload_hex"]), True
                else:
                    payload, binary = rec["payload"].encode("utf-8"), False
                yield CorpusLine(
                    venue=path.parent.name,
                    kind=path.stem,
                    lineno=i,
                    source=rec["source"],
                    stream=rec.get("stream"),
                    payload=payload,
                    binary=binary,
                    exact="note" not in rec,
                    recv_ts=rec.get("recv_ts"),
                )
