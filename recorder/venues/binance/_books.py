"""Binance local order-book procedure (Spot §8, USDⓈ-M §7) as a sans-IO state machine.

:class:`DepthSync` is told each diff event and snapshot and answers what to do: buffer,
fetch a snapshot, discard, apply, or declare a gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias

from recorder.core._errors import LocalProtocolError, RemoteProtocolError
from recorder.venues.binance._envelope import USDM
from recorder.venues.binance._streams import _check_venue

# --------------------------------------------------------------------------------------------
# Depth continuity (Spot §8, USDⓈ-M §7)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NeedSnapshot:
    """Buffer this event and fetch a REST snapshot (first event after a (re)start)."""


@dataclass(frozen=True, slots=True)
class Buffer:
    """Buffer this event; a snapshot is already needed."""


@dataclass(frozen=True, slots=True)
class UseSnapshot:
    """Load the snapshot as the book, then feed the buffered events again, in order."""


@dataclass(frozen=True, slots=True)
class SnapshotTooOld:
    """The snapshot predates the first buffered event: fetch another, keep buffering."""

    last_update_id: int
    first_update_id: int


@dataclass(frozen=True, slots=True)
class Discard:
    """The event is already contained in the book: drop it."""


@dataclass(frozen=True, slots=True)
class Apply:
    """Apply the event to the book."""


@dataclass(frozen=True, slots=True)
class Gap:
    """Updates were lost: throw the book away, buffer this event and fetch a new snapshot.

    ``expected``/``got``: Spot compares ``U`` with book id + 1, USDⓈ-M ``pu`` with the previous
    ``u`` (or, for the first event after a snapshot, ``U`` with ``lastUpdateId``).
    """

    expected: int
    got: int


DepthAction: TypeAlias = (
    NeedSnapshot | Buffer | UseSnapshot | SnapshotTooOld | Discard | Apply | Gap
)

_WAIT_EVENT: Final = "wait_event"  # nothing buffered, no snapshot
_BUFFERING: Final = "buffering"  # events buffered, waiting for a snapshot
_FIRST: Final = "first"  # snapshot loaded, no event applied yet
_LIVE: Final = "live"  # at least one event applied


class DepthSync:
    """Per-symbol diff-depth continuity, exactly as the venue's local-book procedure says.

    Feed every diff event with :meth:`event` (``U``, ``u`` and, on USDⓈ-M, ``pu``) and every
    snapshot's ``lastUpdateId`` with :meth:`snapshot`; each returns the action to take. After
    :class:`UseSnapshot`, feed the buffered events again; they come back as
    :class:`Discard`, :class:`Apply` or :class:`Gap` (after which the rest are buffered anew).
    """

    def __init__(self, venue: str) -> None:
        _check_venue(venue)
        self.venue = venue
        self.state = _WAIT_EVENT
        self.first_update_id: int | None = None
        self.book_id: int | None = None
        """Update id the book is at (snapshot lastUpdateId, then each applied event's u)."""

    def reset(self) -> None:
        self.state = _WAIT_EVENT
        self.first_update_id = None
        self.book_id = None

    def applied(self, update_id: int) -> None:
        """The book was continued outside this procedure (a recorder checkpoint followed by
        its next event): it is live, its last applied update is ``update_id``."""
        self.state = _LIVE
        self.book_id = update_id

    def _restart(self, first: int) -> None:
        self.state = _BUFFERING
        self.first_update_id = first
        self.book_id = None

    def event(self, first: int, final: int, prev_final: int | None = None) -> DepthAction:
        usdm = self.venue == USDM
        if usdm and prev_final is None:
            raise LocalProtocolError("binance-usdm depth events need pu")
        if final < first:
            raise RemoteProtocolError(f"depth event with u {final} < U {first}")
        if self.state == _WAIT_EVENT:
            self._restart(first)
            return NeedSnapshot()
        if self.state == _BUFFERING:
            return Buffer()
        book = self.book_id
        assert book is not None
        if self.state == _FIRST:
            if usdm:
                # §7.4-5: drop u < lastUpdateId; the first applied event has U <= id <= u.
                if final < book:
                    return Discard()
                if first > book:
                    self._restart(first)
                    return Gap(book, first)
            else:
                # §8.5/8.7: drop u <= lastUpdateId; U == lastUpdateId + 1 continues the book.
                if final <= book:
                    return Discard()
                if first > book + 1:
                    self._restart(first)
                    return Gap(book + 1, first)
            self.state = _LIVE
            self.book_id = final
            return Apply()
        if usdm:
            assert prev_final is not None
            if prev_final != book:
                self._restart(first)
                return Gap(book, prev_final)
        else:
            if final < book:
                return Discard()
            if first > book + 1:
                self._restart(first)
                return Gap(book + 1, first)
        self.book_id = final
        return Apply()

    def snapshot(self, last_update_id: int) -> DepthAction:
        first = self.first_update_id
        if self.state == _BUFFERING and first is not None and last_update_id < first:
            # Spot §8.4; on USDⓈ-M no buffered event could satisfy U <= lastUpdateId either.
            return SnapshotTooOld(last_update_id, first)
        self.state = _FIRST
        self.book_id = last_update_id
        return UseSnapshot()
