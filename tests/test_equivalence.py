"""What a live consumer of the recorder saw equals, message for message, what replay yields."""

from __future__ import annotations

import math
from pathlib import Path

import trio

from recorder import Message, Recorder, RecorderConfig, VenueJob
from replay import open_archive
from replay.sim import Fault, SimConfig, Simulator
from tests.simrec import FAST

STREAMS = ["btcusdt@trade", "btcusdt@depth@100ms", "ethusdt@bookTicker", "!miniTicker@arr"]
FAULTS = (  # (seconds after the recorder started, fault)
    (0.4, Fault("truncate", venue="binance-spot", count=2)),
    (0.2, Fault("extra_fields", venue="binance-spot", count=3)),
    (0.1, Fault("duplicate", venue="binance-spot", count=2)),
    (0.2, Fault("close", venue="binance-spot", code=1011, reason="fault")),
    (0.6, Fault("drop", venue="binance-spot", count=1)),
)


async def test_live_consumer_and_replay_see_the_same_messages(tmp_path: Path) -> None:
    send, recv = trio.open_memory_channel[Message](math.inf)
    live: list[Message] = []

    async def consume() -> None:
        async with recv:
            async for m in recv:
                live.append(m)

    sim = Simulator(SimConfig(venues=("binance-spot",), rate=300.0, seed=3))
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(sim.run)
        nursery.start_soon(consume)
        cfg = RecorderConfig(
            root=str(tmp_path),
            jobs=(
                VenueJob(
                    "binance-spot",
                    tuple(STREAMS),
                    ws_url=urls.ws("binance-spot"),
                    rest_url=urls.rest("binance-spot"),
                ),
            ),
            flush_interval=0.5,
            fsync=False,
            timing=FAST,
        )
        rec = Recorder(cfg, taps=[send])
        async with trio.open_nursery() as rn:
            await rn.start(rec.run)
            for delay, fault in FAULTS:
                await trio.sleep(delay)
                sim.inject(fault)
            await trio.sleep(0.8)
            rn.cancel_scope.cancel()
        await trio.sleep(0.1)  # the consumer drains what is left
        nursery.cancel_scope.cancel()
    replayed = list(open_archive(str(tmp_path)))
    assert len(live) > 150
    assert sorted(live, key=Message.sort_key) == replayed
    channels = {m.channel for m in replayed}
    want = {"trade", "depth", "bookTicker", "miniTicker_arr", "session", "unparsed"}
    assert want <= channels, want - channels
    assert any(m.fields.get("event") == "gap" for m in replayed if m.channel == "session")
