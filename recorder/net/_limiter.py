"""Rate limits on what *we* send: client messages per connection and connection attempts.

Two layers, as everywhere in ticktape ("decide, then do I/O"):

* :class:`RollingWindow` and :class:`Pacer` are pure: they take ``now`` as an argument, never
  read a clock and never sleep. They answer "when may the next event happen?" exactly.
* :class:`TrioRateLimiter` is the only part that touches Trio: ``await acquire()`` sleeps (on
  ``trio.current_time()``, so ``MockClock`` tests are exact) until the pacer allows an event,
  then records it.

Exactness: a :class:`RollingWindow` of ``limit`` events per ``window_s`` guarantees that no
half-open interval ``[t, t + window_s)`` ever contains more than ``limit`` recorded events, for
every ``t`` -- not merely per calendar second. Equivalently, for the sorted event times ``e``,
``e[i] - e[i - limit] >= window_s``.

What the exchanges count (``/work/shared/protocols``):

* Binance Spot: **5** client messages per second per connection -- PING frames, PONG frames
  and JSON control messages (SUBSCRIBE ...) all count; violation closes the connection
  (observed 1008 "Too many requests") and repeat offenders get their IP banned.
* Binance USD-M futures: **10** per second per connection, same counting.
* Binance: **300 connection attempts per 5 minutes per IP** (documented for Spot; futures
  undocumented, so we assume the same).
* Bybit: **500 new connections per 5 minutes** per WebSocket domain; no documented limit on
  client messages (we still pace subscribes, see :data:`BYBIT_MESSAGES`).

Urgent messages (pongs)
-----------------------
A pong that is delayed behind a burst of subscribes can cost the connection (Binance closes it
if no pong arrives in time), while a subscribe can always wait. So each :class:`RateLimit` has an
``urgent_reserve``: ordinary acquires may only use ``capacity - urgent_reserve`` slots of any
window; urgent acquires (``acquire(urgent=True)``) may use all ``capacity`` slots and do not
queue behind ordinary waiters. Both kinds count against the same window, so the exchange's limit
holds for their sum. With the Binance presets (``urgent_reserve=1``) subscribes alone can never
make a pong wait; a pong only waits if more than ``urgent_reserve`` urgent messages fall in one
window (Binance pings every 20 s, so that does not happen).

Sharing a limit between processes
---------------------------------
The connection-attempt limits are per IP: with ``--workers N`` on one host every worker should
use :meth:`RateLimit.shared_by` so that the workers' budgets add up to the host's.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import trio

from recorder.core._errors import ConfigError, LocalProtocolError

__all__ = [
    "BINANCE_CONNECTS",
    "BINANCE_SPOT_MESSAGES",
    "BINANCE_USDM_MESSAGES",
    "BYBIT_CONNECTS",
    "BYBIT_MESSAGES",
    "LimiterStatistics",
    "Pacer",
    "RateLimit",
    "RollingWindow",
    "TrioRateLimiter",
]


class RollingWindow:
    """At most ``limit`` events in any half-open interval of length ``window_s`` (pure).

    Only the last ``limit`` event times are kept, so memory is ``O(limit)``.
    """

    __slots__ = ("_events", "limit", "window_s")

    def __init__(self, limit: int, window_s: float) -> None:
        if limit < 1:
            raise ConfigError(f"rate limit must be >= 1 event per window, got {limit}")
        if not (window_s > 0 and math.isfinite(window_s)):
            raise ConfigError(f"rate window must be a positive number of seconds, got {window_s}")
        self.limit = limit
        self.window_s = float(window_s)
        self._events: deque[float] = deque(maxlen=limit)

    def next_allowed(self, now: float, capacity: int | None = None) -> float:
        """The earliest time ``>= now`` at which an event may be recorded.

        ``capacity`` (default and maximum ``limit``) asks for a stricter budget: the event must
        leave at most ``capacity`` events in every window ending with it. That is how ordinary
        messages leave room for urgent ones.
        """
        cap = self.limit if capacity is None else capacity
        if not 1 <= cap <= self.limit:
            raise ValueError(f"capacity must be in 1..{self.limit}, got {cap}")
        if len(self._events) < cap:
            return now
        # The cap-th most recent event must have left the window: e + window_s <= t.
        return max(now, self._events[-cap] + self.window_s)

    def record(self, now: float, capacity: int | None = None, *, force: bool = False) -> bool:
        """Record an event at ``now``; it must be allowed (see :meth:`next_allowed`).

        Raises :class:`LocalProtocolError` if recording would break the limit (a caller bug:
        the message would get the connection closed) and :class:`ValueError` if time went
        backwards. ``force=True`` records an event that already happened (a pong sent by the
        WebSocket layer) even over the limit; the return value says whether it was within it.
        """
        if self._events and now < self._events[-1]:
            raise ValueError(f"event time {now} is before the previous one {self._events[-1]}")
        within = self.next_allowed(now, capacity) <= now
        if not (within or force):
            raise LocalProtocolError(
                f"rate limit {self.limit}/{self.window_s}s exceeded at t={now}"
            )
        self._events.append(now)
        return within

    def count(self, now: float) -> int:
        """Events in the window ``(now - window_s, now]``, up to ``limit`` (only the last
        ``limit`` events are kept)."""
        return sum(1 for e in self._events if e > now - self.window_s)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One exchange limit and how much of it we allow ourselves.

    ``capacity = limit - headroom`` events per ``window_s``; of those, ``urgent_reserve`` are
    kept for urgent messages (see the module docstring).
    """

    limit: int
    window_s: float
    headroom: int = 0
    urgent_reserve: int = 0

    def __post_init__(self) -> None:
        if self.headroom < 0 or self.urgent_reserve < 0:
            raise ConfigError(f"headroom and urgent_reserve must be >= 0: {self}")
        if self.capacity < 1:
            raise ConfigError(f"no capacity left after headroom: {self}")
        if self.ordinary_capacity < 1:
            raise ConfigError(f"urgent_reserve leaves no room for ordinary messages: {self}")

    @property
    def capacity(self) -> int:
        """Events per window we allow ourselves in total (urgent ones included)."""
        return self.limit - self.headroom

    @property
    def ordinary_capacity(self) -> int:
        """Events per window ordinary (non-urgent) acquires may use."""
        return self.capacity - self.urgent_reserve

    def shared_by(self, n: int) -> RateLimit:
        """This limit's share for one of ``n`` processes sharing it (e.g. ``--workers n``).

        The shares' capacities add up to at most this capacity. The urgent reserve is kept
        as is when that still leaves an ordinary slot, else dropped to 0.
        """
        if n < 1:
            raise ConfigError(f"cannot share a limit among {n} processes")
        if n == 1:
            return self
        share = self.capacity // n
        if share < 1:
            raise ConfigError(f"{self} is too small to share among {n} processes")
        reserve = self.urgent_reserve if share - self.urgent_reserve >= 1 else 0
        return RateLimit(limit=share, window_s=self.window_s, urgent_reserve=reserve)


# Client messages per connection (PINGs, PONGs and control messages all count).
#: Binance Spot: 5/s; we use 4/s, of which 1 is kept for pongs (subscribes <= 3/s).
BINANCE_SPOT_MESSAGES = RateLimit(limit=5, window_s=1.0, headroom=1, urgent_reserve=1)
#: Binance USD-M: 10/s; we use 8/s, of which 1 is kept for pongs (subscribes <= 7/s).
BINANCE_USDM_MESSAGES = RateLimit(limit=10, window_s=1.0, headroom=2, urgent_reserve=1)
#: Bybit documents no message limit; this is a courtesy pace (our op pings are urgent).
BYBIT_MESSAGES = RateLimit(limit=10, window_s=1.0, headroom=0, urgent_reserve=1)

# Connection attempts per IP. Two windows each: the long one stays well inside the documented
# budget (2/3 of it), the short one spreads a cold start (many shards) over seconds.
#: Binance: 300 attempts / 5 min -> we allow 200 / 5 min and 5 per second.
BINANCE_CONNECTS: tuple[RateLimit, ...] = (
    RateLimit(limit=300, window_s=300.0, headroom=100),
    RateLimit(limit=5, window_s=1.0),
)
#: Bybit: 500 connections / 5 min per domain -> we allow 300 / 5 min and 5 per second.
BYBIT_CONNECTS: tuple[RateLimit, ...] = (
    RateLimit(limit=500, window_s=300.0, headroom=200),
    RateLimit(limit=5, window_s=1.0),
)


class Pacer:
    """Several :class:`RateLimit` windows that must all allow an event (pure)."""

    __slots__ = ("_windows",)

    def __init__(self, limits: Iterable[RateLimit]) -> None:
        self._windows = [(lim, RollingWindow(lim.capacity, lim.window_s)) for lim in limits]
        if not self._windows:
            raise ConfigError("a pacer needs at least one rate limit")

    @property
    def limits(self) -> list[RateLimit]:
        return [lim for lim, _ in self._windows]

    def next_allowed(self, now: float, *, urgent: bool = False) -> float:
        """Earliest time ``>= now`` at which an (urgent) event may be recorded."""
        return max(w.next_allowed(now, self._cap(lim, urgent)) for lim, w in self._windows)

    def record(self, now: float, *, urgent: bool = False, force: bool = False) -> bool:
        """Record an event at ``now``; raises :class:`LocalProtocolError` if not allowed.

        With ``force=True`` the event is recorded anyway (it already happened); returns
        whether it was within every limit.
        """
        within = self.next_allowed(now, urgent=urgent) <= now
        if not (within or force):
            raise LocalProtocolError(f"rate limit exceeded at t={now}: {self.limits}")
        for lim, w in self._windows:
            w.record(now, self._cap(lim, urgent), force=True)
        return within

    @staticmethod
    def _cap(lim: RateLimit, urgent: bool) -> int:
        return lim.capacity if urgent else lim.ordinary_capacity


@dataclass(frozen=True, slots=True)
class LimiterStatistics:
    acquired: int
    """Successful acquires (urgent ones included)."""
    urgent_acquired: int
    waited_s: float
    """Total time spent waiting in successful acquires."""
    max_wait_s: float
    waiting: int
    """Tasks currently inside ``acquire()``."""
    overruns: int
    """Messages recorded with :meth:`TrioRateLimiter.record_urgent_now` while the window was
    already full (each one risked the connection; should stay 0)."""


class TrioRateLimiter:
    """``await acquire()`` before each counted message (or connection attempt).

    Ordinary acquires are served first-come first-served; urgent ones skip the queue (but not
    the limit). There are no timeouts: wrap the call in a Trio cancel scope. A cancelled
    ``acquire()`` records nothing and leaves the statistics unchanged except ``waiting``.
    ``acquire()`` is always a Trio checkpoint.
    """

    def __init__(self, limits: RateLimit | Sequence[RateLimit]) -> None:
        self._pacer = Pacer([limits] if isinstance(limits, RateLimit) else limits)
        self._queue = trio.Lock()  # trio.Lock is fair: ordinary waiters are FIFO
        self._acquired = 0
        self._urgent = 0
        self._waited = 0.0
        self._max_wait = 0.0
        self._waiting = 0
        self._overruns = 0

    async def acquire(self, *, urgent: bool = False) -> None:
        start = trio.current_time()
        self._waiting += 1
        try:
            if urgent:
                await trio.lowlevel.checkpoint_if_cancelled()
                await self._wait_and_record(urgent=True)
                await trio.lowlevel.cancel_shielded_checkpoint()
            else:
                async with self._queue:  # acquiring the lock is the checkpoint
                    await self._wait_and_record(urgent=False)
        finally:
            self._waiting -= 1
        waited = trio.current_time() - start
        self._acquired += 1
        self._urgent += urgent
        self._waited += waited
        self._max_wait = max(self._max_wait, waited)

    async def _wait_and_record(self, *, urgent: bool) -> None:
        # Re-check after every sleep: an urgent acquire may have taken the slot meanwhile.
        while True:
            now = trio.current_time()
            at = self._pacer.next_allowed(now, urgent=urgent)
            if at <= now:
                self._pacer.record(now, urgent=urgent)  # no checkpoint between check and record
                return
            await trio.sleep_until(at)

    def record_urgent_now(self) -> None:
        """Count an urgent message that is sent right now without waiting (synchronous).

        For messages the WebSocket layer sends by itself, such as the pong answering a server
        ping: they cannot wait, but they use the capacity kept by ``urgent_reserve`` and delay
        later ordinary messages like any urgent acquire. If the window was already full the
        message is still counted (it was sent) and ``overruns`` goes up.
        """
        if not self._pacer.record(trio.current_time(), urgent=True, force=True):
            self._overruns += 1
        self._acquired += 1
        self._urgent += 1

    def next_allowed(self, *, urgent: bool = False) -> float:
        """When an acquire started now would be granted if nobody else were waiting."""
        return self._pacer.next_allowed(trio.current_time(), urgent=urgent)

    def statistics(self) -> LimiterStatistics:
        return LimiterStatistics(
            acquired=self._acquired,
            urgent_acquired=self._urgent,
            waited_s=self._waited,
            max_wait_s=self._max_wait,
            waiting=self._waiting,
            overruns=self._overruns,
        )
