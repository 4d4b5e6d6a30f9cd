"""Which stream goes on which connection: a pure planner (no I/O, no clock, no randomness).

The supervisor asks, the planner answers with plain data, the supervisor carries it out:

* :func:`plan_shards` -- a fresh plan: streams -> connections ("shards"), per route.
* :func:`rebalance` -- a :class:`PlanDiff` from an old plan to a new stream list (listings and
  delistings) that keeps every surviving stream where it is.
* :func:`subscribe_batches` -- one shard's streams cut into subscribe requests.
* :func:`split_for_host` / :func:`split_for_workers` -- a stable share of the streams for
  ``--shard I/N`` and ``--workers N``.

Limits (``/work/shared/protocols``; see :class:`VenueLimits` and the presets):

* Binance Spot and USD-M: 1024 streams per connection; no documented cap on params per
  SUBSCRIBE -- we send at most 200 (a ~5 KB frame; at 3 subscribes/s a full connection is
  subscribed in about 2 s).
* Binance USD-M routes: ``public`` (book data) and ``market`` (everything else) are different
  URLs, so their streams never share a connection; the planner plans each route on its own.
* Bybit (all public categories): the topic strings on one connection add up to at most 21,000
  characters (``len(topic)``); spot: at most 10 args per subscribe request; option: at most 2000
  args per connection.

Planning rules (deterministic: the same input gives the same plan, whatever its order):

1. Routes are planned separately, in sorted order; shard ids are consecutive integers.
2. A route gets the fewest connections its limits allow (at least ``min_shards``).
3. Streams are placed greedily, heaviest first (ties by name), each on the least-loaded
   connection (by weight, then stream count, then shard id) that still has room for it. If a
   stream fits nowhere, the route is planned again with one more connection.
4. ``max_weight_per_connection`` is a soft budget: a single stream heavier than it gets a
   connection of its own (it cannot do better) instead of being an error.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from recorder.core._errors import ConfigError
from recorder.venues import VenueLimits

__all__ = [
    "PlanDiff",
    "ShardAssignment",
    "ShardPlan",
    "StreamSpec",
    "plan_shards",
    "plan_violations",
    "rebalance",
    "split_for_host",
    "split_for_workers",
]


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One stream to record.

    ``route`` separates streams that can never share a connection (Binance USD-M ``"public"``
    / ``"market"``; ``""`` elsewhere). ``weight`` is the expected message rate (any unit, used
    only to spread heavy streams evenly; e.g. msgs/s: ``@depth@100ms`` ~10, a quiet trade ~0.1).
    """

    name: str
    route: str = ""
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("stream name must not be empty")
        if not (self.weight >= 0 and math.isfinite(self.weight)):
            raise ConfigError(f"stream weight must be finite and >= 0: {self}")


@dataclass(frozen=True, slots=True)
class ShardAssignment:
    """The streams of one connection, sorted by name."""

    shard_id: int
    route: str
    streams: tuple[StreamSpec, ...]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.streams]

    @property
    def weight(self) -> float:
        return math.fsum(s.weight for s in self.streams)

    @property
    def chars(self) -> int:
        return sum(len(s.name) for s in self.streams)


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """Shards sorted by id. ``next_shard_id`` is never used by any shard of this plan or of
    the plans it was rebalanced from, so ids are not reused for different connections."""

    shards: tuple[ShardAssignment, ...]
    limits: VenueLimits
    next_shard_id: int = 0

    def __iter__(self) -> Iterator[ShardAssignment]:
        return iter(self.shards)

    def __len__(self) -> int:
        return len(self.shards)

    def by_id(self, shard_id: int) -> ShardAssignment:
        for shard in self.shards:
            if shard.shard_id == shard_id:
                return shard
        raise KeyError(shard_id)

    def shard_of(self, name: str) -> int | None:
        """The id of the shard carrying stream ``name``, or None."""
        for shard in self.shards:
            if any(s.name == name for s in shard.streams):
                return shard.shard_id
        return None

    @property
    def streams(self) -> list[StreamSpec]:
        return [s for shard in self.shards for s in shard.streams]


@dataclass(frozen=True, slots=True)
class PlanDiff:
    """What the supervisor must do to go from the old plan to :attr:`plan`.

    ``subscribe`` / ``unsubscribe`` are per *surviving* shard (names sorted); ``new_shards``
    are connections to open (their streams are not repeated in ``subscribe``); ``closed_shards``
    are connections to close (their streams are not repeated in ``unsubscribe``).
    """

    subscribe: Mapping[int, tuple[str, ...]]
    unsubscribe: Mapping[int, tuple[str, ...]]
    new_shards: tuple[ShardAssignment, ...]
    closed_shards: tuple[int, ...]
    plan: ShardPlan = field(repr=False)

    @property
    def empty(self) -> bool:
        return not (self.subscribe or self.unsubscribe or self.new_shards or self.closed_shards)


# --- planning ------------------------------------------------------------------------------


class _Bin:
    __slots__ = ("chars", "count", "index", "streams", "weight")

    def __init__(self, index: int, streams: Iterable[StreamSpec] = ()) -> None:
        self.index = index
        self.streams: list[StreamSpec] = list(streams)
        self.count = len(self.streams)
        self.chars = sum(len(s.name) for s in self.streams)
        self.weight = math.fsum(s.weight for s in self.streams)

    def fits(self, s: StreamSpec, limits: VenueLimits) -> bool:
        cap = limits.max_count
        if cap is not None and self.count + 1 > cap:
            return False
        maxc = limits.max_chars_per_connection
        if maxc is not None and self.chars + len(s.name) > maxc:
            return False
        maxw = limits.max_weight_per_connection
        # an empty connection takes any single stream (soft weight budget)
        return maxw is None or self.count == 0 or self.weight + s.weight <= maxw

    def add(self, s: StreamSpec) -> None:
        self.streams.append(s)
        self.count += 1
        self.chars += len(s.name)
        self.weight += s.weight

    def key(self) -> tuple[float, int, int]:
        return (self.weight, self.count, self.index)


def _heaviest_first(streams: Iterable[StreamSpec]) -> list[StreamSpec]:
    return sorted(streams, key=lambda s: (-s.weight, s.name))


def _check_unique(streams: Iterable[StreamSpec]) -> dict[str, StreamSpec]:
    by_name: dict[str, StreamSpec] = {}
    for s in streams:
        if s.name in by_name:
            raise ConfigError(f"stream {s.name!r} listed twice")
        by_name[s.name] = s
    return by_name


def _check_fits_alone(s: StreamSpec, limits: VenueLimits) -> None:
    maxc = limits.max_chars_per_connection
    if maxc is not None and len(s.name) > maxc:
        raise ConfigError(f"stream name longer than {maxc} characters: {s.name[:40]!r}...")
    maxr = limits.max_chars_per_request
    if maxr is not None and len(s.name) > maxr:
        raise ConfigError(f"stream name longer than {maxr} characters: {s.name[:40]!r}...")


def _lower_bound(streams: Sequence[StreamSpec], limits: VenueLimits) -> int:
    n = 1
    if limits.max_count is not None:
        n = max(n, math.ceil(len(streams) / limits.max_count))
    if limits.max_chars_per_connection is not None:
        chars = sum(len(s.name) for s in streams)
        n = max(n, math.ceil(chars / limits.max_chars_per_connection))
    maxw = limits.max_weight_per_connection
    if maxw is not None:
        heavy = sum(1 for s in streams if s.weight > maxw)
        rest = math.fsum(s.weight for s in streams if s.weight <= maxw)
        n = max(n, heavy + math.ceil(rest / maxw))
    return n


def _greedy(ordered: Sequence[StreamSpec], bins: list[_Bin], limits: VenueLimits) -> bool:
    """Place ``ordered`` onto ``bins`` (least-loaded with room); False if one fits nowhere."""
    for s in ordered:
        best: _Bin | None = None
        for b in bins:
            if b.fits(s, limits) and (best is None or b.key() < best.key()):
                best = b
        if best is None:
            return False
        best.add(s)
    return True


def _pack_route(
    streams: Sequence[StreamSpec], limits: VenueLimits, min_shards: int
) -> list[list[StreamSpec]]:
    """Fresh greedy packing of one route's streams; returns the non-empty bins in order."""
    if not streams:
        return []
    ordered = _heaviest_first(streams)
    n = max(min_shards, _lower_bound(ordered, limits))
    while True:  # terminates: with one bin per stream everything fits (checked beforehand)
        bins = [_Bin(i) for i in range(n)]
        if _greedy(ordered, bins, limits):
            return [b.streams for b in bins if b.streams]
        n += 1


def _assignment(shard_id: int, route: str, streams: Iterable[StreamSpec]) -> ShardAssignment:
    return ShardAssignment(shard_id, route, tuple(sorted(streams, key=lambda s: s.name)))


def plan_shards(
    streams: Iterable[StreamSpec],
    limits: VenueLimits,
    *,
    min_shards: int = 1,
    first_shard_id: int = 0,
) -> ShardPlan:
    """A fresh plan for ``streams`` (see the module docstring for the rules).

    ``min_shards`` is per route: spread a route over at least that many connections even if
    fewer would do (routes with fewer streams than that get one stream per connection).
    """
    if min_shards < 1:
        raise ConfigError(f"min_shards must be >= 1, got {min_shards}")
    by_name = _check_unique(streams)
    for s in by_name.values():
        _check_fits_alone(s, limits)
    by_route: dict[str, list[StreamSpec]] = {}
    for s in by_name.values():
        by_route.setdefault(s.route, []).append(s)
    shards: list[ShardAssignment] = []
    next_id = first_shard_id
    for route in sorted(by_route):
        for packed in _pack_route(by_route[route], limits, min_shards):
            shards.append(_assignment(next_id, route, packed))
            next_id += 1
    return ShardPlan(tuple(shards), limits, next_id)


def rebalance(old_plan: ShardPlan, new_streams: Iterable[StreamSpec]) -> PlanDiff:
    """Move from ``old_plan`` to ``new_streams`` with as few changes as possible.

    * A stream in both stays on its shard (even if its weight changed: weights only matter
      when placing; a stream whose route changed counts as delisted and listed again).
    * Delisted streams are unsubscribed; a shard left with no streams is closed.
    * Listed streams go, heaviest first, to the least-loaded shard of their route with room
      (emptied shards included, so their connection is reused); those that fit nowhere are
      planned onto new shards with :func:`plan_shards`'s rules.

    Limits come from ``old_plan.limits``; existing shards are not re-checked against them.
    """
    limits = old_plan.limits
    wanted = _check_unique(new_streams)
    for s in wanted.values():
        _check_fits_alone(s, limits)

    bins: dict[str, list[_Bin]] = {}  # a bin's index is its shard id
    originals: dict[int, set[str]] = {}
    unsubscribe: dict[int, tuple[str, ...]] = {}
    kept: set[str] = set()
    for shard in old_plan.shards:
        stay = [
            wanted[s.name]
            for s in shard.streams
            if s.name in wanted and wanted[s.name].route == shard.route
        ]
        bins.setdefault(shard.route, []).append(_Bin(shard.shard_id, stay))
        originals[shard.shard_id] = {s.name for s in shard.streams}
        kept.update(s.name for s in stay)
        gone = sorted(originals[shard.shard_id] - {s.name for s in stay})
        if gone:
            unsubscribe[shard.shard_id] = tuple(gone)

    listed = _heaviest_first(s for s in wanted.values() if s.name not in kept)
    overflow: dict[str, list[StreamSpec]] = {}
    for s in listed:
        route_bins = bins.get(s.route, [])
        if not _greedy([s], route_bins, limits):
            overflow.setdefault(s.route, []).append(s)

    shards: list[ShardAssignment] = []
    subscribe: dict[int, tuple[str, ...]] = {}
    closed: list[int] = []
    for route, route_bins in bins.items():
        for b in route_bins:
            sid = b.index
            if not b.streams:
                closed.append(sid)
                unsubscribe.pop(sid, None)
                continue
            shards.append(_assignment(sid, route, b.streams))
            added = sorted({s.name for s in b.streams} - originals[sid])
            if added:
                subscribe[sid] = tuple(added)

    next_id = max([old_plan.next_shard_id, *(s.shard_id + 1 for s in old_plan.shards)])
    new_shards: list[ShardAssignment] = []
    for route in sorted(overflow):
        for packed in _pack_route(overflow[route], limits, 1):
            new_shards.append(_assignment(next_id, route, packed))
            next_id += 1

    plan = ShardPlan(
        tuple(sorted([*shards, *new_shards], key=lambda a: a.shard_id)), limits, next_id
    )
    return PlanDiff(
        subscribe=dict(sorted(subscribe.items())),
        unsubscribe=dict(sorted(unsubscribe.items())),
        new_shards=tuple(new_shards),
        closed_shards=tuple(sorted(closed)),
        plan=plan,
    )


def plan_violations(plan: ShardPlan) -> list[str]:
    """Every way ``plan`` breaks its limits (empty if none): a check for tests and startup.

    A single over-weight stream alone on its connection is not a violation (soft budget).
    """
    limits = plan.limits
    problems: list[str] = []
    seen: set[str] = set()
    for shard in plan.shards:
        sid = shard.shard_id
        if not shard.streams:
            problems.append(f"shard {sid}: no streams")
        for s in shard.streams:
            if s.name in seen:
                problems.append(f"shard {sid}: {s.name!r} is on more than one shard")
            seen.add(s.name)
            if s.route != shard.route:
                problems.append(f"shard {sid}: {s.name!r} has route {s.route!r}")
        cap = limits.max_count
        if cap is not None and len(shard.streams) > cap:
            problems.append(f"shard {sid}: {len(shard.streams)} streams > {cap}")
        maxc = limits.max_chars_per_connection
        if maxc is not None and shard.chars > maxc:
            problems.append(f"shard {sid}: {shard.chars} characters > {maxc}")
        maxw = limits.max_weight_per_connection
        if maxw is not None and len(shard.streams) > 1 and shard.weight > maxw:
            problems.append(f"shard {sid}: weight {shard.weight} > {maxw}")
    return problems


# --- requests ------------------------------------------------------------------------------


# --- splitting across hosts and worker processes --------------------------------------------

_T = TypeVar("_T", str, StreamSpec)

# Different keys for the two splits: with one hash, ``--shard 0/2 --workers 2`` would hand
# worker 1 nothing (every name of host share 0 has an even hash).
_HOST_KEY = b"ticktape-host"
_WORKER_KEY = b"ticktape-worker"


def _bucket(name: str, count: int, person: bytes) -> int:
    digest = hashlib.blake2b(name.encode(), digest_size=8, person=person).digest()
    return int.from_bytes(digest, "big") % count


def _split(streams: Iterable[_T], index: int, count: int, person: bytes) -> list[_T]:
    if count < 1:
        raise ConfigError(f"share count must be >= 1, got {count}")
    if not 0 <= index < count:
        raise ConfigError(f"share index must be in 0..{count - 1}, got {index}")
    return [
        s for s in streams if _bucket(s if isinstance(s, str) else s.name, count, person) == index
    ]


def split_for_host(streams: Iterable[_T], index: int, count: int) -> list[_T]:
    """The streams (order kept) of share ``index`` (0-based) of ``count`` for ``--shard I/N``.

    A stream's share depends only on its name (keyed BLAKE2b, not Python's randomised
    ``hash``), so every host computes the same split independently, and listing or delisting
    a stream never moves any other stream to another host.
    """
    return _split(streams, index, count, _HOST_KEY)


def split_for_workers(streams: Iterable[_T], index: int, count: int) -> list[_T]:
    """Like :func:`split_for_host` for ``--workers N`` (worker ``index`` of ``count``), with an
    independent hash so that it can be applied to a host's share."""
    return _split(streams, index, count, _WORKER_KEY)
