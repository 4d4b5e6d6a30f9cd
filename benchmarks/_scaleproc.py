"""Subscribing many Binance streams against the simulator, which enforces the venue's limits.

``python -m benchmarks._scaleproc '{"streams": 5000, "root": "..."}'`` prints one JSON line.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson
import trio

from benchmarks._corpus import symbols
from recorder import Recorder, RecorderConfig, VenueJob
from replay.sim import SimConfig, Simulator, VenueConfig

CHANNELS = ("trade", "aggTrade", "bookTicker")


async def subscribe_all(
    url: str, rest: str, streams: list[str], root: str
) -> tuple[float, Recorder]:
    rec = Recorder(
        RecorderConfig(
            root=root,
            jobs=(
                VenueJob(venue="binance-spot", streams=tuple(streams), ws_url=url, rest_url=rest),
            ),
            flush_interval=5.0,
            fsync=False,
        )
    )
    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        await nursery.start(rec.run)
        while not all(s.connected for s in rec.statistics().shards):
            await trio.sleep(0.002)
        took = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    return took, rec


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    n = int(spec["streams"])
    specs = symbols(-(-n // 3))
    # No diff-depth streams: the book keeper's REST snapshots would load this process, which
    # also runs the simulator, and blur the subscribe timing.
    streams = [f"{s.symbol.lower()}@{ch}" for s in specs for ch in CHANNELS][:n]
    sim = Simulator(
        SimConfig(
            venues=("binance-spot",),
            rate=50.0,
            seed=3,
            venue_config={"binance-spot": VenueConfig(symbols=tuple(specs))},
        )
    )
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(sim.run)
        url = urls.ws("binance-spot")
        rest = urls.rest("binance-spot")
        warm, _ = await subscribe_all(url, rest, streams[:200], spec["root"] + "-warm")
        one, _ = await subscribe_all(url, rest, streams[200:400], spec["root"] + "-one")
        took, rec = await subscribe_all(url, rest, streams, spec["root"])
        st = sim.statistics()
        nursery.cancel_scope.cancel()
    shards = rec.statistics().shards
    return {
        "warmup_s": warm,
        "one_subscribe_s": one,
        "subscribed_s": took,
        "shard_sizes": [s.streams for s in shards],
        "refused": sum(len(s.refused) for s in shards),
        "reconnects": sum(s.reconnects for s in shards),
        "rate_limit_closes": st.rate_limit_closes,
        "connections_total": st.connections_total,
    }


def main() -> None:
    spec = orjson.loads(sys.argv[1])
    print(orjson.dumps(trio.run(run, spec)).decode(), flush=True)


if __name__ == "__main__":
    main()
