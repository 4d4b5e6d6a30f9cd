"""What the book keeper writes into and asks for (sink, snapshot client), and its counters."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from recorder.core._message import Message
from recorder.net._rest import RestResponse

log = logging.getLogger("ticktape.books")


DEPTH_SNAPSHOT_CHANNEL: Final = "depth_snapshot"
BOOK_CHECKPOINT_CHANNEL: Final = "book_checkpoint"
_BINANCE_DIFF: Final = "depth"
_BYBIT_BOOK: Final = "orderbook"


class Sink(Protocol):
    def put(self, msg: Message) -> None: ...


class SnapshotClient(Protocol):
    """What the keeper needs from a REST client (:class:`recorder.net._rest.RestClient`)."""

    async def get(
        self, path: str, params: Mapping[str, str] | None = None, *, weight: int = 1
    ) -> RestResponse: ...


Resubscribe = Callable[[str, Sequence[str]], object]
"""``Recorder.resubscribe(venue, streams)``: resubscribe topics on their live connection."""


@dataclass(frozen=True, slots=True)
class BookStatistics:
    books: int
    """Books seen (one per stream / topic)."""
    books_synced: int
    """Books currently in sync."""
    snapshots_fetched: int
    """REST snapshots received (and recorded) with HTTP 200."""
    snapshot_failures: int
    """REST snapshot attempts that failed (HTTP error, transport error, bad body)."""
    snapshots_too_old: int
    """Snapshots older than the first buffered event (fetched again)."""
    gaps: int
    """Continuity breaks detected."""
    resyncs: int
    """Books brought back in sync after a gap, or reset by the exchange's own snapshot."""
    resubscribes: int
    """Resubscribe requests made (Bybit)."""
    checkpoints: int
    errors: int
    """Book messages that could not be parsed (skipped; a gap follows if it mattered)."""
    buffer_overflows: int
    """Times old events were dropped from a stream's buffer waiting for a snapshot (older
    than ``buffer_window``, or more than ``max_buffer``)."""
