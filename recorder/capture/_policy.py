"""Pure timing policies: reconnect backoff, stall detection, planned rollover, overlap dedup.

Nothing here reads a clock, sleeps or does I/O: every decision takes ``now`` (any monotonic
clock in seconds -- the supervisor passes ``trio.current_time()``) and randomness comes from an
injected :class:`random.Random`. The supervisor carries the decisions out.

Protocol facts used (``/work/shared/protocols``): Binance closes every connection at 24 h
(Spot and USD-M); Binance Spot pings every 20 s, USD-M every 3 min; Bybit sends no server pings
but answers our ``op: ping`` (sent every 20 s) with a pong frame; Bybit documents no 24 h limit.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from recorder.core._errors import ConfigError

__all__ = [
    "DEFAULT_SILENCE_S",
    "Backoff",
    "Dedup",
    "DedupStatistics",
    "Liveness",
    "LivenessStatistics",
    "ReconnectStatistics",
    "Reconnects",
    "RolloverSchedule",
    "StallWatchdog",
    "stream_kind",
]


# --- reconnect backoff ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with proportional jitter; unlimited attempts.

    ``delay(attempt)`` for ``attempt = 0, 1, 2, ...`` is ``raw * (1 - jitter * u)`` with
    ``raw = min(cap, base * factor ** attempt)`` and ``u = rng.random()`` in ``[0, 1)``: always
    in ``((1 - jitter) * raw, raw]``, never above ``cap``. Defaults: raw delays 0.5, 1, 2, 4,
    8, 16, 30, 30, ... seconds.

    ``healthy_after``: a connection that stayed up that long resets the attempt count (see
    :class:`Reconnects`).
    """

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.2
    healthy_after: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not (0 < self.base <= self.cap and math.isfinite(self.cap)):
            raise ConfigError(f"backoff needs 0 < base <= cap < inf: {self}")
        if self.factor < 1:
            raise ConfigError(f"backoff factor must be >= 1: {self}")
        if not 0 <= self.jitter < 1:
            raise ConfigError(f"backoff jitter must be in [0, 1): {self}")
        if self.healthy_after < 0:
            raise ConfigError(f"healthy_after must be >= 0: {self}")

    def raw_delay(self, attempt: int) -> float:
        """The delay before jitter."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        if self.factor == 1:
            return self.base
        # attempts past the cap would overflow factor ** attempt; they are all `cap`
        if attempt >= math.log(self.cap / self.base, self.factor) + 1:
            return self.cap
        return min(self.cap, self.base * self.factor**attempt)

    def delay(self, attempt: int) -> float:
        return self.raw_delay(attempt) * (1.0 - self.jitter * self.rng.random())


@dataclass(frozen=True, slots=True)
class ReconnectStatistics:
    attempt: int
    """Consecutive failures since the last healthy connection (the next delay's attempt)."""
    failures: int
    connects: int
    last_delay_s: float


class Reconnects:
    """Backoff state of one shard's connection (pure; ``now`` is passed in).

    Call :meth:`connected` when a connection is up (subscribed), :meth:`failed` when it is
    lost or an attempt fails; :meth:`failed` returns how long to wait before the next attempt.
    Planned rollovers and server-announced shutdowns are not failures: do not call it then.
    """

    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = backoff if backoff is not None else Backoff()
        self._attempt = 0
        self._connected_at: float | None = None
        self._failures = 0
        self._connects = 0
        self._last_delay = 0.0

    def connected(self, now: float) -> None:
        self._connected_at = now
        self._connects += 1

    def failed(self, now: float) -> float:
        if (
            self._connected_at is not None
            and now - self._connected_at >= self.backoff.healthy_after
        ):
            self._attempt = 0
        self._connected_at = None
        delay = self.backoff.delay(self._attempt)
        self._attempt += 1
        self._failures += 1
        self._last_delay = delay
        return delay

    def statistics(self) -> ReconnectStatistics:
        return ReconnectStatistics(
            attempt=self._attempt,
            failures=self._failures,
            connects=self._connects,
            last_delay_s=self._last_delay,
        )


# --- stall detection -----------------------------------------------------------------------

#: Longest normal silence (seconds) of a *connection* carrying one stream of a kind:
#:
#: - ``depth@100ms`` 10 -- Binance ``@depth@100ms``, ``@depthN@100ms`` (every 100 ms)
#: - ``depth`` 15 -- Binance ``@depth``, ``@depthN``, ``...@500ms``, ``@rpiDepth@500ms``
#:   (250 ms - 1 s)
#: - ``orderbook`` 15 -- Bybit ``orderbook.N.S`` (10-200 ms, on change)
#: - ``bookTicker`` 30 -- ``@bookTicker``, SBE ``@bestBidAsk`` (real time, quiet symbols idle),
#:   ``!bookTicker`` (5 s)
#: - ``ticker`` 30 -- ``@ticker``, ``@miniTicker``, ``@ticker_<w>``, ``@avgPrice``, their
#:   ``!...@arr`` forms, Bybit ``tickers`` (1-2 s)
#: - ``markPrice`` 30 -- ``@markPrice[@1s]``, ``!markPrice@arr[@1s]`` (1-3 s)
#: - ``index`` 30 -- ``@compositeIndex``, ``@assetIndex``, ``tradingSession`` (1 s)
#: - ``kline`` 30 -- ``@kline_<i>``, ``@continuousKline_<i>`` (250 ms - 2 s); Bybit
#:   ``kline.<i>.S`` (1-60 s, but Bybit pongs arrive every 20 s anyway)
#: - ``trade`` 90 -- ``@trade``, ``@aggTrade``, Bybit ``publicTrade`` (quiet symbols: minutes)
#: - ``liquidation`` inf -- ``@forceOrder``, ``!forceOrder@arr``, Bybit ``allLiquidation``
#:   (only when something happens)
#: - ``event`` inf -- ``!contractInfo`` (listings, settlements)
#:
#: Aliases for the kind names of ``_adapters.py``: ``depth_fast`` 10, ``book`` 15.
#: Unknown kinds count as :attr:`StallWatchdog.default` (90 s).
DEFAULT_SILENCE_S: Mapping[str, float] = MappingProxyType(
    {
        "depth@100ms": 10.0,
        "depth": 15.0,
        "orderbook": 15.0,
        "bookTicker": 30.0,
        "ticker": 30.0,
        "markPrice": 30.0,
        "index": 30.0,
        "kline": 30.0,
        "trade": 90.0,
        "liquidation": math.inf,
        "event": math.inf,
        # the adapters' names (``VenueAdapter.kind_of``)
        "depth_fast": 10.0,
        "book": 15.0,
    }
)

_BINANCE_KINDS = (
    # (prefix of the part after "<symbol>@" or "!", kind); first match wins
    ("depth", "depth"),
    ("rpiDepth", "depth"),
    ("bookTicker", "bookTicker"),
    ("bestBidAsk", "bookTicker"),  # SBE
    ("miniTicker", "ticker"),
    ("ticker", "ticker"),
    ("avgPrice", "ticker"),
    ("markPrice", "markPrice"),
    ("compositeIndex", "index"),
    ("assetIndex", "index"),
    ("kline_", "kline"),
    ("continuousKline_", "kline"),
    ("trade", "trade"),
    ("aggTrade", "trade"),
    ("forceOrder", "liquidation"),
    ("contractInfo", "event"),
)
_BYBIT_KINDS = {
    "orderbook": "orderbook",
    "publicTrade": "trade",
    "tickers": "ticker",
    "kline": "kline",
    "allLiquidation": "liquidation",
}


def stream_kind(name: str) -> str:
    """The kind (a key of :data:`DEFAULT_SILENCE_S`) of a Binance stream name or Bybit topic;
    ``"unknown"`` if not recognised."""
    if name == "tradingSession":
        return "index"
    if "@" in name or name.startswith("!"):
        rest = name[1:] if name.startswith("!") else name.split("@", 1)[1]
        for prefix, kind in _BINANCE_KINDS:
            if rest.startswith(prefix):
                if kind == "depth" and rest.endswith("@100ms"):
                    return "depth@100ms"
                return kind
        return "unknown"
    return _BYBIT_KINDS.get(name.split(".", 1)[0], "unknown")


@dataclass(frozen=True, slots=True)
class StallWatchdog:
    """How long a connection may stay completely silent before it counts as stalled.

    "Silent" means *no frame at all*: data, pings, pongs and control replies all count as life.
    A connection's threshold is the smallest of

    * the silence of its liveliest stream kind (``silence``; see :data:`DEFAULT_SILENCE_S`),
    * ``heartbeat_factor`` heartbeat intervals, if the venue guarantees a frame that often
      (Binance server pings, Bybit pongs to our pings): 3 missed heartbeats,

    capped at ``ceiling`` (a connection with only event-driven streams and no heartbeat is
    still recycled now and then: we cannot tell silence from a dead socket there).

    Examples with the defaults: a Binance USD-M connection with a 100 ms depth stream -> 10 s;
    only klines -> 30 s; only aggTrades -> 90 s; a Binance Spot one with only trades -> 60 s
    (server pings every 20 s); any Bybit connection -> at most 60 s.
    """

    silence: Mapping[str, float] = field(default_factory=lambda: DEFAULT_SILENCE_S)
    default: float = 90.0
    heartbeat_factor: float = 3.0
    ceiling: float = 600.0

    def stall_after(self, stream_kinds: Iterable[str], heartbeat_s: float | None = None) -> float:
        limit = math.inf
        for kind in stream_kinds:
            limit = min(limit, self.silence.get(kind, self.default))
        if heartbeat_s is not None:
            limit = min(limit, self.heartbeat_factor * heartbeat_s)
        return min(limit, self.ceiling)

    def stall_after_streams(
        self, stream_names: Iterable[str], heartbeat_s: float | None = None
    ) -> float:
        """:meth:`stall_after` for stream names (kinds from :func:`stream_kind`)."""
        return self.stall_after({stream_kind(n) for n in stream_names}, heartbeat_s)


@dataclass(frozen=True, slots=True)
class LivenessStatistics:
    frames: int
    last_seen: float
    deadline: float
    max_silence_s: float


class Liveness:
    """Silence tracking for one connection (pure): call :meth:`seen` for every frame."""

    __slots__ = ("_frames", "_last", "_max_silence", "stall_after")

    def __init__(self, stall_after: float, now: float) -> None:
        if not stall_after > 0:
            raise ConfigError(f"stall_after must be > 0, got {stall_after}")
        self.stall_after = stall_after
        self._last = now
        self._frames = 0
        self._max_silence = 0.0

    def seen(self, now: float) -> None:
        self._max_silence = max(self._max_silence, now - self._last)
        self._last = now
        self._frames += 1

    @property
    def deadline(self) -> float:
        """The connection is stalled if nothing arrives before this time."""
        return self._last + self.stall_after

    def stalled(self, now: float) -> bool:
        return now >= self.deadline

    @property
    def frames(self) -> int:
        return self._frames

    @property
    def max_silence_s(self) -> float:
        """Longest gap between frames seen so far (the current gap not included)."""
        return self._max_silence

    def statistics(self) -> LivenessStatistics:
        return LivenessStatistics(
            frames=self._frames,
            last_seen=self._last,
            deadline=self.deadline,
            max_silence_s=self._max_silence,
        )


# --- planned rollover ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RolloverSchedule:
    """Make-before-break rollover ahead of the forced disconnect at ``max_age_s``.

    Each connection rolls over inside the window
    ``[connected_at + max_age_s - earliest_s, connected_at + max_age_s - latest_s]``
    (defaults: between 22 h and 23 h 50 min of age), at a time whose position in the window
    is fixed by the shard: rollovers of shard ``i`` always happen at times congruent to its
    *phase* modulo the window length ``span = earliest_s - latest_s``. Phases are spread
    evenly (``span / shard_count`` apart, but never less than ``min_spacing_s``), so two shards
    never roll over within ``min_spacing_s`` of each other -- whenever they happened to
    connect (restarts, reconnects after errors) and in every later 24 h cycle. With more than
    ``span / min_spacing_s`` shards (110 with the defaults) phases wrap and may coincide.

    At the rollover time the supervisor opens the new connection, subscribes, runs both for
    ``overlap_s`` after the new one is subscribed (dropping duplicates with :class:`Dedup`),
    then closes the old one. ``overlap_s <= latest_s`` so this finishes before ``max_age_s``.
    """

    max_age_s: float = 24 * 3600.0
    earliest_s: float = 2 * 3600.0
    latest_s: float = 600.0
    min_spacing_s: float = 60.0
    overlap_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.latest_s < self.earliest_s < self.max_age_s:
            raise ConfigError(f"need 0 < latest_s < earliest_s < max_age_s: {self}")
        if not 0 < self.min_spacing_s <= self.span:
            raise ConfigError(f"need 0 < min_spacing_s <= earliest_s - latest_s: {self}")
        if not 0 <= self.overlap_s <= self.latest_s:
            raise ConfigError(f"need 0 <= overlap_s <= latest_s: {self}")

    @property
    def span(self) -> float:
        return self.earliest_s - self.latest_s

    def phase(self, shard_index: int, shard_count: int | None = None) -> float:
        """Position of ``shard_index``'s rollovers within the window, in ``[0, span)``."""
        if shard_index < 0:
            raise ValueError(f"shard_index must be >= 0, got {shard_index}")
        spacing = self.min_spacing_s
        if shard_count is not None:
            if shard_count < 1:
                raise ValueError(f"shard_count must be >= 1, got {shard_count}")
            spacing = max(spacing, self.span / shard_count)
        return (shard_index * spacing) % self.span

    def rollover_at(
        self, shard_index: int, connected_at: float, shard_count: int | None = None
    ) -> float:
        """When to start replacing the connection of ``shard_index`` opened at ``connected_at``.

        Use the same ``shard_count`` for all shards (or none: then phases are
        ``min_spacing_s`` apart in index order).
        """
        start = connected_at + self.max_age_s - self.earliest_s
        offset = (self.phase(shard_index, shard_count) - start) % self.span
        if offset >= self.span:  # float rounding of tiny negative values
            offset = 0.0
        return start + offset

    def close_old_at(self, new_subscribed_at: float) -> float:
        """When to close the old connection, given when the new one finished subscribing."""
        return new_subscribed_at + self.overlap_s


# --- dedup during overlap ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DedupStatistics:
    kept: int
    dropped: int
    evicted: int
    """Identities forgotten because a stream's memory was full."""
    streams: int
    tracked: int
    """Identities currently remembered (all streams)."""


class Dedup:
    """Drop the second copy of a message that two connections both delivered (pure).

    During a rollover overlap the old and the new connection carry the same streams. Each
    message is identified by ``(stream, identity)``, where identity is the exchange's sequence
    id if the caller has one (trade id, final update id ...) or else a BLAKE2b-128 hash of the
    exact payload bytes. Occurrences are counted per source (connection): the *n*-th copy of
    an identity from one source is a duplicate iff another source already delivered an *n*-th
    copy. So legitimately repeated identical payloads on one connection (e.g. an unchanged
    partial book) are all kept, and only cross-connection copies are dropped; whichever copy
    arrives first is the one kept.

    Memory is bounded: each stream remembers at most ``max_per_stream`` identities (oldest
    first out). Size it for the busiest stream's messages during one overlap; call
    :meth:`clear` when the overlap ends.
    """

    def __init__(self, max_per_stream: int = 10_000) -> None:
        if max_per_stream < 1:
            raise ConfigError(f"max_per_stream must be >= 1, got {max_per_stream}")
        self.max_per_stream = max_per_stream
        self._seen: dict[str, OrderedDict[int | bytes, dict[Hashable, int]]] = {}
        self._kept = 0
        self._dropped = 0
        self._evicted = 0

    @staticmethod
    def identity(payload: bytes, seq: int | None = None) -> int | bytes:
        return seq if seq is not None else hashlib.blake2b(payload, digest_size=16).digest()

    def admit(self, source: Hashable, stream: str, payload: bytes, seq: int | None = None) -> bool:
        """True: keep the message (first copy); False: drop it (another source had it)."""
        seen = self._seen.get(stream)
        if seen is None:
            seen = self._seen[stream] = OrderedDict()
        key = self.identity(payload, seq)
        counts = seen.get(key)
        if counts is None:
            counts = seen[key] = {}
            if len(seen) > self.max_per_stream:
                seen.popitem(last=False)
                self._evicted += 1
        n = counts.get(source, 0) + 1
        counts[source] = n
        if any(c >= n for src, c in counts.items() if src != source):
            self._dropped += 1
            return False
        self._kept += 1
        return True

    def forget_source(self, source: Hashable) -> None:
        """Forget what ``source`` delivered (its connection is closed). O(tracked)."""
        for seen in self._seen.values():
            for key in [k for k, counts in seen.items() if source in counts]:
                counts = seen[key]
                del counts[source]
                if not counts:
                    del seen[key]

    def clear(self, stream: str | None = None) -> None:
        """Forget one stream (or all): the overlap is over."""
        if stream is None:
            self._seen.clear()
        else:
            self._seen.pop(stream, None)

    def statistics(self) -> DedupStatistics:
        return DedupStatistics(
            kept=self._kept,
            dropped=self._dropped,
            evicted=self._evicted,
            streams=len(self._seen),
            tracked=sum(len(s) for s in self._seen.values()),
        )
