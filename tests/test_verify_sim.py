"""``ticktape verify`` on archives recorded from the simulator: book continuity as the
exchange numbers it, through a dropped update and through a rollover's overlap."""

from __future__ import annotations

from pathlib import Path

import trio

from recorder import Recorder
from recorder.archive._inspect import verify
from replay.sim import Fault, Simulator
from tests.simrec import record_sim


async def test_a_dropped_bybit_book_update_is_a_sequence_break(tmp_path: Path) -> None:
    topic = "orderbook.50.BTCUSDT"

    async def act(sim: Simulator, rec: Recorder) -> None:
        await trio.sleep(0.8)
        sim.inject(Fault("drop", venue="bybit-linear", stream=topic, count=1))

    r = await record_sim(
        tmp_path, {"bybit-linear": [topic, "publicTrade.BTCUSDT"]}, duration=2.0, action=act
    )
    r.check_exactly_once()
    rep = verify(str(r.root))
    assert rep.ok, list(rep.lines())
    assert len(rep.sequence_breaks) == 1 and topic in rep.sequence_breaks[0], rep.sequence_breaks


async def test_a_server_shutdown_rollover_is_no_sequence_break(tmp_path: Path) -> None:
    """While the old and the new connection overlap, the recorder keeps the first copy of
    each update: neither connection's rows are contiguous on their own, the stream is."""
    streams = ["btcusdt@depth@100ms", "ethusdt@depth@100ms"]  # one route: one shard

    async def act(sim: Simulator, rec: Recorder) -> None:
        await trio.sleep(0.7)
        sim.inject(Fault("server_shutdown", venue="binance-usdm", duration=1.5))

    r = await record_sim(tmp_path, {"binance-usdm": streams}, duration=3.5, rate=400.0, action=act)
    assert r.sessions("rollover") and not r.sessions("gap")
    r.check_exactly_once()
    depth = [m for m in r.data() if m.channel == "depth"]
    assert len({m.conn for m in depth}) >= 2  # both connections delivered book updates
    rep = verify(str(r.root))
    assert rep.ok, list(rep.lines())
    assert rep.sequence_breaks == []
