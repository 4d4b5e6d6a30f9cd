"""What to read: venues, channels, symbols, streams and a time range."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from recorder.archive import (
    PartitionKey,
)


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

    def wants(self, key: PartitionKey) -> bool:
        if self.venues is not None and key.venue not in self.venues:
            return False
        if self.channels is not None and key.channel not in self.channels:
            return False
        if self.symbols is not None and key.symbol not in self.symbols:
            return False
        if self.start_ns is not None and key.hour_end_ns <= self.start_ns:
            return False
        return not (self.end_ns is not None and key.hour_start_ns >= self.end_ns)
