"""ticktape serve: an archive served over the exchange's own protocol to an unmodified
third-party WebSocket client, byte-exact and paced by the recorded times, read off the event
loop."""

from __future__ import annotations

from pathlib import Path

import trio
from websockets.sync.client import connect as ws_connect

from recorder import ArchiveWriter
from replay import open_archive
from replay.serve import ArchiveSource
from replay.sim import SimConfig, Simulator
from tests.archive_helpers import T0, SlowFiles, binance_trade, max_tick_gap, slow_root
from tests.simrec import record_sim

STREAMS = ["btcusdt@trade", "btcusdt@depth@100ms", "ethusdt@bookTicker"]


def _receive(url: str, n: int) -> list[bytes]:
    """A plain `websockets` client, as a user's existing Binance client would connect."""
    out: list[bytes] = []
    with ws_connect(url, max_size=None) as ws:
        while len(out) < n:
            msg = ws.recv(timeout=10)
            out.append(msg.encode() if isinstance(msg, str) else msg)
    return out


async def test_third_party_client_receives_recorded_frames_byte_exact(tmp_path: Path) -> None:
    rec = await record_sim(tmp_path, {"binance-spot": STREAMS}, duration=2.0)
    root = str(rec.root)
    archived = [m.payload for m in open_archive(root, channels=["trade", "depth", "bookTicker"])]
    assert len(archived) > 100
    source = ArchiveSource(root, "binance-spot", speed=4.0)
    server = Simulator(SimConfig(venues=("binance-spot",), sources={"binance-spot": source}))
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(server.run)
        url = urls.ws("binance-spot") + "/stream?streams=" + "/".join(STREAMS)
        t0 = trio.current_time()
        got = await trio.to_thread.run_sync(_receive, url, 60)
        elapsed = trio.current_time() - t0
        nursery.cancel_scope.cancel()
    # A contiguous run of the recorded combined frames, byte for byte.
    start = archived.index(got[0])
    assert got == archived[start : start + len(got)]
    # Paced: 60 frames of a ~2 s, 100+ frame recording at 4x take a noticeable time.
    assert elapsed > 0.05


async def test_raw_stream_clients_get_the_unwrapped_payload(tmp_path: Path) -> None:
    rec = await record_sim(tmp_path, {"binance-spot": ["btcusdt@trade"]}, duration=1.5)
    root = str(rec.root)
    inner = [
        m.payload[len(b'{"stream":"btcusdt@trade","data":') : -1]
        for m in open_archive(root, channels=["trade"])
    ]
    source = ArchiveSource(root, "binance-spot", speed=20.0)
    server = Simulator(SimConfig(venues=("binance-spot",), sources={"binance-spot": source}))
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(server.run)
        got = await trio.to_thread.run_sync(
            _receive, urls.ws("binance-spot") + "/ws/btcusdt@trade", 5
        )
        nursery.cancel_scope.cancel()
    start = inner.index(got[0])
    assert got == inner[start : start + 5]


async def test_serving_from_slow_storage_leaves_the_event_loop_free(tmp_path: Path) -> None:
    w = ArchiveWriter(str(tmp_path), writer_id="t", fsync=False)
    w.add_many(
        binance_trade(i, T0 + i * 10_000_000, sym)
        for i in range(200)
        for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT")
    )
    w.flush()
    storage = SlowFiles(delay=0.1)
    source = ArchiveSource(slow_root(str(tmp_path), storage), "binance-spot", speed=1e6)
    server = Simulator(SimConfig(venues=("binance-spot",), sources={"binance-spot": source}))
    worst: list[float] = []
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(max_tick_gap, 0.01, done, worst)
        t0 = trio.current_time()
        await nursery.start(server.run)  # once the source has read its first messages
        with trio.fail_after(60):
            await source.finished.wait()  # every recorded message went through ``advance``
        elapsed = trio.current_time() - t0
        done.set()
        while not worst:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert elapsed > 0.5  # the storage was slow...
    assert worst[0] < 0.25  # ...but the server's loop never waited for it
    assert storage.open_files == 0
