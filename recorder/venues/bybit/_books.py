"""Bybit order-book continuity (sans-IO): snapshot, then deltas whose ``u`` must follow.

Reference: ``bybit-v5.md`` §5.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recorder.core._errors import RemoteProtocolError

# --------------------------------------------------------------------------------------------
# Book continuity (sans-IO)


@dataclass(frozen=True, slots=True)
class Synced:
    """The first snapshot (or the first after a gap): the book is usable from here."""

    topic: str
    update_id: int


@dataclass(frozen=True, slots=True)
class Reset:
    """A snapshot while in sync: ``u = 1`` (service restart) or unsolicited re-snapshot.
    The local book must be replaced; the recorder logs it."""

    topic: str
    update_id: int
    reason: str  # "restart" (u = 1) or "snapshot"


@dataclass(frozen=True, slots=True)
class Gap:
    """Deltas are missing: resubscribe this topic. ``expected`` is None before any snapshot."""

    topic: str
    expected: int | None
    got: int


@dataclass(frozen=True, slots=True)
class Stale:
    """A delta whose ``u`` is not newer than the last one (duplicate or reordered); ignored."""

    topic: str
    last: int
    got: int


BookEvent = Synced | Reset | Gap | Stale


class BookSync:
    """Tracks ``u``/``seq`` of one ``orderbook`` topic and reports continuity events.

    Feed every message of the topic in order (:meth:`feed` takes the orderbook codec's fields,
    :meth:`on_message` the raw values). Rules (bybit-v5.md 6): a snapshot (re)starts the
    book; a delta must follow a snapshot, and with ``strict_increment`` (default) must have
    ``u == previous u + 1`` -- the docs do not promise +1 steps, hence the switch. Level 1 is
    snapshot-only and repeats the same ``u``, so its snapshots are routine, not resets.
    After a :class:`Gap` further deltas are dropped silently until the next snapshot.
    """

    def __init__(self, topic: str, *, strict_increment: bool = True) -> None:
        self.topic = topic
        self.strict_increment = strict_increment
        parts = topic.split(".")
        self.level1 = len(parts) == 3 and parts[1] == "1"
        self.synced = False
        self.last_u: int | None = None
        self.last_seq: int | None = None
        self._gap_reported = False

    def feed(self, fields: Mapping[str, Any]) -> list[BookEvent]:
        """Events for one decoded orderbook message (columns msg_type, update_id, cross_seq)."""
        return self.on_message(fields["msg_type"], fields["update_id"], fields.get("cross_seq"))

    def on_message(self, msg_type: str, u: int, seq: int | None = None) -> list[BookEvent]:
        if msg_type == "snapshot":
            return self._snapshot(u, seq)
        if msg_type == "delta":
            return self._delta(u, seq)
        raise RemoteProtocolError(f"{self.topic}: unknown orderbook type {msg_type!r}")

    def _snapshot(self, u: int, seq: int | None) -> list[BookEvent]:
        was = self.synced
        self.synced, self._gap_reported = True, False
        self.last_u, self.last_seq = u, seq
        if not was:
            return [Synced(self.topic, u)]
        if u == 1:
            return [Reset(self.topic, u, "restart")]
        if self.level1:
            return []
        return [Reset(self.topic, u, "snapshot")]

    def _delta(self, u: int, seq: int | None) -> list[BookEvent]:
        if not self.synced or self.last_u is None:
            if self._gap_reported:
                return []
            self._gap_reported = True
            return [Gap(self.topic, None, u)]
        if u <= self.last_u:
            return [Stale(self.topic, self.last_u, u)]
        if self.strict_increment and u != self.last_u + 1:
            expected = self.last_u + 1
            self.synced, self._gap_reported = False, True
            return [Gap(self.topic, expected, u)]
        self.last_u, self.last_seq = u, seq
        return []
