from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.capture._shard import (
    ShardPlan,
    StreamSpec,
    plan_shards,
    plan_violations,
    rebalance,
    split_for_host,
    split_for_workers,
)
from recorder.core._errors import ConfigError
from recorder.venues import VenueLimits, subscribe_batches
from recorder.venues._adapters import BINANCE_SPOT_LIMITS as BINANCE_SPOT
from recorder.venues._adapters import BYBIT_OPTION_LIMITS as BYBIT_OPTION
from recorder.venues._adapters import BYBIT_SPOT_LIMITS as BYBIT_SPOT


def specs(n: int, *, prefix: str = "s", route: str = "", weight: float = 1.0) -> list[StreamSpec]:
    return [StreamSpec(f"{prefix}{i:05d}", route, weight) for i in range(n)]


def names(plan: ShardPlan) -> list[list[str]]:
    return [shard.names for shard in plan]


# --- plan_shards ---------------------------------------------------------------------------


def test_small_plan_is_one_shard() -> None:
    plan = plan_shards(specs(3), BINANCE_SPOT)
    assert names(plan) == [["s00000", "s00001", "s00002"]]
    assert plan.shards[0].shard_id == 0
    assert plan.next_shard_id == 1
    assert plan_violations(plan) == []


def test_stream_cap_gives_fewest_connections_evenly() -> None:
    plan = plan_shards(specs(2049), BINANCE_SPOT)
    assert [len(s.streams) for s in plan] == [683, 683, 683]
    assert plan_violations(plan) == []
    assert sorted(s.name for s in plan.streams) == [s.name for s in specs(2049)]


def test_configurable_lower_stream_cap() -> None:
    limits = VenueLimits(max_streams_per_connection=200)
    plan = plan_shards(specs(1000), limits)
    assert [len(s.streams) for s in plan] == [200] * 5


def test_routes_never_share_a_connection() -> None:
    streams = [
        StreamSpec("btcusdt@depth@100ms", "public", 10),
        StreamSpec("btcusdt@aggTrade", "market", 5),
        StreamSpec("btcusdt@bookTicker", "public", 20),
        StreamSpec("btcusdt@markPrice@1s", "market", 1),
    ]
    plan = plan_shards(streams, BINANCE_SPOT)
    assert [(s.shard_id, s.route, s.names) for s in plan] == [
        (0, "market", ["btcusdt@aggTrade", "btcusdt@markPrice@1s"]),
        (1, "public", ["btcusdt@bookTicker", "btcusdt@depth@100ms"]),
    ]


def test_heavy_streams_are_spread_largest_first() -> None:
    limits = VenueLimits(max_streams_per_connection=4)
    streams = [
        StreamSpec("a", weight=10),
        StreamSpec("b", weight=9),
        StreamSpec("c", weight=8),
        StreamSpec("d", weight=1),
        StreamSpec("e", weight=1),
        StreamSpec("f", weight=1),
        StreamSpec("g", weight=1),
    ]
    plan = plan_shards(streams, limits)
    # 2 connections needed; a->0, b->1, c->1 (9 < 10), d..g -> 0 (10) then 1 (17) ...
    # loads after c: [10, 17]; d->0 (11), e->0 (12), f->0 (13, full at 4), g->1
    assert names(plan) == [["a", "d", "e", "f"], ["b", "c", "g"]]
    assert [s.weight for s in plan] == [13, 18]


def test_weight_budget_opens_more_connections() -> None:
    limits = VenueLimits(max_weight_per_connection=20)
    streams = [StreamSpec(f"d{i}", weight=10) for i in range(5)] + specs(10, weight=0.5)
    plan = plan_shards(streams, limits)
    assert len(plan) == 3
    assert plan_violations(plan) == []
    # LPT: the five heavy ones go 10/10/10 then 20/20, the ten light ones onto the third
    assert [s.weight for s in plan] == [20.0, 20.0, 15.0]


def test_overweight_stream_gets_its_own_connection() -> None:
    limits = VenueLimits(max_weight_per_connection=5)
    plan = plan_shards([StreamSpec("huge", weight=50), *specs(3)], limits)
    assert names(plan) == [["huge"], ["s00000", "s00001", "s00002"]]
    assert plan_violations(plan) == []


def test_bybit_char_budget() -> None:
    # 21,000 characters per connection: 1000 topics of 25 characters = 25,000 -> 2 connections
    streams = [StreamSpec(f"orderbook.50.SYM{i:09d}") for i in range(1000)]
    assert {len(s.name) for s in streams} == {25}
    plan = plan_shards(streams, BYBIT_SPOT)
    assert [len(s.streams) for s in plan] == [500, 500]
    assert all(s.chars <= 21_000 for s in plan)
    # just fits: 840 x 25 = 21,000
    assert len(plan_shards(streams[:840], BYBIT_SPOT)) == 1
    assert len(plan_shards(streams[:841], BYBIT_SPOT)) == 2


def test_bybit_option_args_cap() -> None:
    plan = plan_shards(specs(4001, prefix="o"), BYBIT_OPTION)
    assert [len(s.streams) for s in plan] == [1334, 1334, 1333]


def test_greedy_fragmentation_retries_with_one_more_connection() -> None:
    limits = VenueLimits(max_streams_per_connection=None, max_chars_per_connection=10)
    streams = [StreamSpec("a" * 6), StreamSpec("b" * 6), StreamSpec("c" * 6), StreamSpec("d")]
    plan = plan_shards(streams, limits)
    # lower bound ceil(19 / 10) = 2, but no two 6-character names fit in 10 characters
    assert names(plan) == [["aaaaaa", "d"], ["bbbbbb"], ["cccccc"]]
    assert plan_violations(plan) == []


def test_min_shards_and_first_shard_id() -> None:
    plan = plan_shards(specs(4), BINANCE_SPOT, min_shards=3, first_shard_id=7)
    assert [s.shard_id for s in plan] == [7, 8, 9]
    assert [len(s.streams) for s in plan] == [2, 1, 1]
    assert plan.next_shard_id == 10
    few = plan_shards(specs(2), BINANCE_SPOT, min_shards=5)
    assert [len(s.streams) for s in few] == [1, 1]


def test_plan_is_deterministic_under_input_order() -> None:
    rng = random.Random(7)
    streams = [StreamSpec(f"x{i}", weight=rng.choice([0.1, 1, 1, 10])) for i in range(3000)]
    limits = VenueLimits(max_streams_per_connection=700)
    first = plan_shards(streams, limits)
    shuffled = streams[:]
    rng.shuffle(shuffled)
    assert plan_shards(shuffled, limits) == first
    loads = [s.weight for s in first]
    assert max(loads) - min(loads) <= 10  # at most one heavy stream apart


def test_invalid_inputs() -> None:
    with pytest.raises(ConfigError):
        plan_shards([StreamSpec("a"), StreamSpec("a", "public")], BINANCE_SPOT)
    with pytest.raises(ConfigError):
        plan_shards([StreamSpec("x" * 11)], VenueLimits(max_chars_per_connection=10))
    with pytest.raises(ConfigError):
        plan_shards(specs(1), BINANCE_SPOT, min_shards=0)
    with pytest.raises(ConfigError):
        StreamSpec("")
    with pytest.raises(ConfigError):
        StreamSpec("a", weight=-1)
    with pytest.raises(ConfigError):
        VenueLimits(max_streams_per_connection=0)
    with pytest.raises(ConfigError):
        VenueLimits(max_per_request=0)
    with pytest.raises(ConfigError):
        VenueLimits(max_weight_per_connection=0)


def test_plan_helpers() -> None:
    plan = plan_shards(specs(5), VenueLimits(max_streams_per_connection=2))
    # round robin over 3 connections
    assert plan.shard_of("s00004") == 1
    assert plan.shard_of("nope") is None
    assert plan.by_id(1).names == ["s00001", "s00004"]
    with pytest.raises(KeyError):
        plan.by_id(9)
    assert len(plan) == 3


@settings(max_examples=100, deadline=None)
@given(
    weights=st.lists(st.sampled_from([0.0, 0.1, 1.0, 5.0, 30.0]), min_size=0, max_size=120),
    cap=st.integers(1, 40),
    maxc=st.one_of(st.none(), st.integers(10, 200)),
    maxw=st.one_of(st.none(), st.floats(1.0, 100.0)),
    routes=st.integers(1, 3),
)
def test_property_plans_respect_limits(
    weights: list[float], cap: int, maxc: int | None, maxw: float | None, routes: int
) -> None:
    limits = VenueLimits(
        max_streams_per_connection=cap,
        max_chars_per_connection=maxc,
        max_weight_per_connection=maxw,
    )
    streams = [StreamSpec(f"st{i}", f"r{i % routes}", w) for i, w in enumerate(weights)]
    plan = plan_shards(streams, limits)
    assert plan_violations(plan) == []
    assert sorted(s.name for s in plan.streams) == sorted(s.name for s in streams)


# --- rebalance -----------------------------------------------------------------------------


def test_rebalance_without_change_is_empty() -> None:
    plan = plan_shards(specs(10), VenueLimits(max_streams_per_connection=4))
    diff = rebalance(plan, specs(10))
    assert diff.empty
    assert diff.plan == plan


def test_rebalance_keeps_streams_and_fills_least_loaded() -> None:
    limits = VenueLimits(max_streams_per_connection=4)
    plan = plan_shards(specs(7), limits)
    assert names(plan) == [
        ["s00000", "s00002", "s00004", "s00006"],
        ["s00001", "s00003", "s00005"],
    ]
    new = [s for s in specs(7) if s.name != "s00002"] + [StreamSpec("new1"), StreamSpec("new2")]
    diff = rebalance(plan, new)
    # s00002 leaves shard 0; new1 goes to the least-loaded shard (0 and 1 both have 3 -> id 0),
    # new2 to shard 1 (3 < 4)
    assert diff.unsubscribe == {0: ("s00002",)}
    assert diff.subscribe == {0: ("new1",), 1: ("new2",)}
    assert diff.new_shards == ()
    assert diff.closed_shards == ()
    for shard in plan:
        for name in shard.names:
            if name != "s00002":
                assert diff.plan.shard_of(name) == shard.shard_id
    assert plan_violations(diff.plan) == []


def test_rebalance_heavy_listing_goes_to_lightest_shard() -> None:
    limits = VenueLimits(max_streams_per_connection=5)
    plan = plan_shards([StreamSpec("a", weight=10), *specs(4)], limits, min_shards=2)
    assert [s.weight for s in plan] == [10, 4]
    diff = rebalance(plan, [*plan.streams, StreamSpec("b", weight=10)])
    assert diff.subscribe == {1: ("b",)}


def test_rebalance_overflow_opens_new_shards_evenly() -> None:
    limits = VenueLimits(max_streams_per_connection=4)
    plan = plan_shards(specs(4), limits)
    diff = rebalance(plan, specs(4) + specs(6, prefix="n"))
    assert diff.subscribe == {}
    assert [(s.shard_id, len(s.streams)) for s in diff.new_shards] == [(1, 3), (2, 3)]
    assert diff.plan.next_shard_id == 3
    assert plan_violations(diff.plan) == []


def test_rebalance_closes_empty_shards_and_never_reuses_ids() -> None:
    limits = VenueLimits(max_streams_per_connection=2)
    plan = plan_shards(specs(4), limits)  # shard 0: s0, s2; shard 1: s1, s3
    diff = rebalance(plan, [StreamSpec("s00000"), StreamSpec("s00002")])
    assert diff.closed_shards == (1,)
    assert diff.unsubscribe == {}  # closing the connection is enough
    assert [s.shard_id for s in diff.plan] == [0]
    diff2 = rebalance(diff.plan, [*diff.plan.streams, StreamSpec("z1"), StreamSpec("z2")])
    assert [s.shard_id for s in diff2.new_shards] == [2]


def test_rebalance_reuses_an_emptied_shard_for_listings() -> None:
    limits = VenueLimits(max_streams_per_connection=2)
    plan = plan_shards(specs(4), limits)
    diff = rebalance(plan, [StreamSpec("s00000"), StreamSpec("s00002"), StreamSpec("z")])
    assert diff.closed_shards == ()
    assert diff.unsubscribe == {1: ("s00001", "s00003")}
    assert diff.subscribe == {1: ("z",)}


def test_rebalance_route_change_and_new_route() -> None:
    plan = plan_shards([StreamSpec("a", "public"), StreamSpec("b", "public")], BINANCE_SPOT)
    diff = rebalance(plan, [StreamSpec("a", "public"), StreamSpec("b", "market")])
    assert diff.unsubscribe == {0: ("b",)}
    assert [(s.shard_id, s.route, s.names) for s in diff.new_shards] == [(1, "market", ["b"])]


@settings(max_examples=100, deadline=None)
@given(
    before=st.sets(st.integers(0, 60), max_size=50),
    after=st.sets(st.integers(0, 60), max_size=50),
    cap=st.integers(1, 10),
)
def test_property_rebalance_moves_nothing(before: set[int], after: set[int], cap: int) -> None:
    limits = VenueLimits(max_streams_per_connection=cap, max_chars_per_connection=40)
    old = plan_shards([StreamSpec(f"s{i}", f"r{i % 2}") for i in before], limits)
    diff = rebalance(old, [StreamSpec(f"s{i}", f"r{i % 2}") for i in after])
    new = diff.plan
    assert plan_violations(new) == []
    assert sorted(s.name for s in new.streams) == sorted(f"s{i}" for i in after)
    for i in before & after:
        assert new.shard_of(f"s{i}") == old.shard_of(f"s{i}")
    # the diff, applied to the old plan, gives the new plan
    current = {s.shard_id: set(s.names) for s in old}
    for sid in diff.closed_shards:
        del current[sid]
    for sid, gone in diff.unsubscribe.items():
        current[sid] -= set(gone)
    for sid, added in diff.subscribe.items():
        current[sid] |= set(added)
    for shard in diff.new_shards:
        assert shard.shard_id not in current
        current[shard.shard_id] = set(shard.names)
    assert current == {s.shard_id: set(s.names) for s in new}


# --- subscribe_batches ---------------------------------------------------------------------


def test_subscribe_batches_by_count() -> None:
    topics = [f"t{i}" for i in range(25)]
    batches = subscribe_batches(topics, 10)
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [t for b in batches for t in b] == topics
    assert subscribe_batches([], 10) == []


def test_subscribe_batches_by_chars() -> None:
    batches = subscribe_batches(["aaaa", "bbb", "cc", "dddd", "e"], 10, max_chars_per_request=7)
    assert batches == [["aaaa", "bbb"], ["cc", "dddd", "e"]]
    with pytest.raises(ConfigError):
        subscribe_batches(["x" * 8], 10, max_chars_per_request=7)
    with pytest.raises(ConfigError):
        subscribe_batches(["x"], 0)


def test_bybit_spot_batches_of_ten() -> None:
    plan = plan_shards(specs(23, prefix="publicTrade.S"), BYBIT_SPOT)
    (shard,) = plan.shards
    batches = subscribe_batches(shard.names, BYBIT_SPOT.max_per_request)
    assert [len(b) for b in batches] == [10, 10, 3]


# --- split_for_host / split_for_workers ----------------------------------------------------


def _all_names(n: int) -> list[str]:
    return [f"sym{i}usdt@trade" for i in range(n)]


def test_split_is_a_partition_and_balanced() -> None:
    streams = _all_names(8000)
    shares = [split_for_host(streams, i, 4) for i in range(4)]
    assert sorted(s for share in shares for s in share) == sorted(streams)
    assert all(1800 < len(share) < 2200 for share in shares)
    assert split_for_host(streams, 0, 1) == streams


def test_split_is_stable_when_streams_are_added() -> None:
    old = _all_names(500)
    new = [*old[:250], "brandnew@trade", *old[250:]]
    for i in range(3):
        before = split_for_host(old, i, 3)
        after = split_for_host(new, i, 3)
        assert [s for s in after if s != "brandnew@trade"] == before


PINNED = [
    "btcusdt@trade",
    "ethusdt@depth@100ms",
    "publicTrade.BTCUSDT",
    "orderbook.50.ETHUSDT",
    "bnbusdt@aggTrade",
    "solusdt@kline_1m",
]


def _share_of(name: str, count: int, *, workers: bool = False) -> int:
    split = split_for_workers if workers else split_for_host
    (index,) = [i for i in range(count) if split([name], i, count)]
    return index


def test_split_is_pinned() -> None:
    # A change here re-shards every deployment (and moves files between hosts): on purpose only.
    assert [_share_of(n, 4) for n in PINNED] == [3, 1, 1, 3, 2, 1]
    assert [_share_of(n, 4, workers=True) for n in PINNED] == [1, 2, 0, 3, 3, 2]


def test_split_accepts_stream_specs() -> None:
    streams = [StreamSpec(n) for n in _all_names(100)]
    share = split_for_host(streams, 1, 2)
    assert [s.name for s in share] == split_for_host(_all_names(100), 1, 2)


def test_worker_split_is_independent_of_host_split() -> None:
    host_share = split_for_host(_all_names(4000), 0, 2)
    workers = [split_for_workers(host_share, i, 2) for i in range(2)]
    # with one shared hash, worker 1 would get nothing here
    assert all(800 < len(w) < 1200 for w in workers)
    assert sorted(workers[0] + workers[1]) == sorted(host_share)


def test_split_rejects_bad_index() -> None:
    with pytest.raises(ConfigError):
        split_for_host(["a"], 2, 2)
    with pytest.raises(ConfigError):
        split_for_workers(["a"], 0, 0)
    with pytest.raises(ConfigError):
        split_for_host(["a"], -1, 2)
