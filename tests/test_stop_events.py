"""What a clean stop leaves in the archive's session events: every connection that was open
says it ended (``disconnected``, reason ``stopped``), and a shard that was down when the
recorder stopped has its gap closed at the stop, so no reader takes its streams for quiet."""

from __future__ import annotations

from pathlib import Path

import orjson
import trio

from recorder import Message, Recorder
from replay.sim import Fault, Simulator
from tests.simrec import record_sim, streams_of

SPOT = ["btcusdt@trade", "ethusdt@trade", "btcusdt@aggTrade", "btcusdt@bookTicker"]


async def test_a_clean_stop_records_every_connection_disconnected(tmp_path: Path) -> None:
    r = await record_sim(
        tmp_path,
        {"binance-spot": SPOT, "bybit-linear": ["publicTrade.BTCUSDT", "orderbook.50.BTCUSDT"]},
        duration=1.5,
        max_streams_per_connection=2,
    )
    connected = {str(e["conn"]) for e in _with_conn(r.messages) if e["event"] == "connected"}
    assert len(connected) >= 3
    ended = {str(e["conn"]): e for e in _with_conn(r.messages) if e["event"] == "disconnected"}
    assert set(ended) == connected
    assert all(e["reason"] == "stopped" and e["planned"] is True for e in ended.values())
    assert not r.sessions("gap")
    # Each connection's last event, after all its data.
    for conn in connected:
        rows = [m for m in r.messages if m.conn == conn]
        assert max(rows, key=lambda m: m.seq).channel == "session"


async def test_a_shard_down_at_stop_gets_its_gap_closed(tmp_path: Path) -> None:
    streams = ["btcusdt@trade", "ethusdt@trade"]

    async def act(sim: Simulator, rec: Recorder) -> None:
        await trio.sleep(0.6)
        # Every reconnection attempt from now on is refused: still down at the stop.
        sim.inject(Fault("refuse_handshake", venue="binance-spot", count=10_000))
        sim.inject(Fault("close", venue="binance-spot", code=1011, reason="test"))

    r = await record_sim(tmp_path, {"binance-spot": streams}, duration=2.0, action=act)
    gaps = r.sessions("gap")
    assert len(gaps) == 1, gaps
    gap = gaps[0]
    assert "still down when stopped" in str(gap["reason"])
    assert sorted(streams_of(gap)) == sorted(streams)
    start, end = int(gap["gap_start_ns"]), int(gap["gap_end_ns"])  # type: ignore[call-overload]
    data_ns = [m.recv_ns for m in r.data()]
    assert start >= max(data_ns) - 1 and end > start
    assert end >= r.stop_ns  # closed at the stop, not at the last failed attempt
    assert r.recorder.runners[0].statistics().gaps == 1


def _with_conn(messages: list[Message]) -> list[dict[str, object]]:
    """Session events with the connection that recorded each."""
    return [{**orjson.loads(m.payload), "conn": m.conn} for m in messages if m.channel == "session"]
