"""``/metrics``, ``/healthz`` and ``/readyz`` while the recorder records the simulator."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import orjson
import pytest
import trio

from recorder import Recorder, RecorderConfig, RecorderStatistics, VenueJob
from recorder.archive._buffer import WriterStatistics
from recorder.capture._config import load_config
from recorder.capture._connection import ShardStatistics
from recorder.capture._metrics import HealthPolicy, metric_names, readiness, render_metrics
from recorder.core import ConfigError
from replay.sim import Fault, SimConfig, Simulator
from tests.simrec import FAST

SECOND = 1_000_000_000


def _shard(**kw: object) -> ShardStatistics:
    base: dict[str, object] = {
        "shard_id": "binance-spot/0",
        "venue": "binance-spot",
        "streams": 2,
        "connected": True,
        "conn": "c1",
        "messages": 10,
        "bytes": 1000,
        "reconnects": 0,
        "rollovers": 0,
        "gaps": 0,
        "refused": (),
        "duplicates_dropped": 0,
        "last_recv_ns": 100 * SECOND,
        "last_error": None,
    }
    base.update(kw)
    return ShardStatistics(**base)  # type: ignore[arg-type]


def _stats(
    *shards: ShardStatistics, pending: int = 0, error: str | None = None
) -> RecorderStatistics:
    writer = WriterStatistics(
        rows_written=5,
        raw_rows=0,
        unparsed_rows=0,
        files_written=1,
        bytes_written=100,
        compactions=0,
        write_errors=1 if error else 0,
        pending_rows=pending,
        open_partitions=1,
        last_error=error,
    )
    return RecorderStatistics(started_ns=0, shards=shards, writer=writer, books=(), tap_drops=0)


POLICY = HealthPolicy(stale_after_s=5.0, max_pending_rows=1000)
NOW = 102 * SECOND


def test_readiness_table() -> None:
    cases: list[tuple[RecorderStatistics, str | None]] = [
        (_stats(_shard()), None),
        (_stats(), "no shard started yet"),
        (_stats(_shard(connected=False, last_error="closed 1008")), "not connected: closed 1008"),
        (_stats(_shard(last_recv_ns=None)), "received nothing yet"),
        (_stats(_shard(last_recv_ns=90 * SECOND)), "stale: last message 12 s ago"),
        (_stats(_shard(), pending=5000), "writer is behind: 5000 rows waiting"),
        (_stats(_shard(), pending=10, error="No space left"), "cannot write: No space left"),
        # An error the writer has since recovered from (nothing waiting) is no reason.
        (_stats(_shard(), pending=0, error="No space left"), None),
    ]
    for stats, reason in cases:
        health = readiness(stats, NOW, POLICY)
        if reason is None:
            assert health.ready and health.reasons == (), health
        else:
            assert not health.ready
            assert any(reason in r for r in health.reasons), (reason, health.reasons)


def _samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_exposition_names_and_labels() -> None:
    text = render_metrics(_stats(_shard(messages=42, reconnects=3)), NOW, 12345).decode()
    got = _samples(text)
    key = '{shard="binance-spot/0",venue="binance-spot"}'
    assert got["ticktape_messages_received_total" + key] == 42
    assert got["ticktape_reconnects_total" + key] == 3
    assert got["ticktape_last_message_age_seconds" + key] == 2.0
    assert got["ticktape_process_resident_memory_bytes"] == 12345
    assert got["ticktape_writer_rows_written_total"] == 5
    # Conventions: every counter ends in _total, every name has the prefix.
    for line in text.splitlines():
        if line.startswith("# TYPE"):
            _, _, name, kind = line.split()
            assert name.startswith("ticktape_")
            if kind == "counter":
                assert name.endswith("_total"), name
    names = set(metric_names(_stats(_shard())))
    assert "ticktape_writer_backlog_rows" in names


async def _until(cond: Callable[[], Awaitable[bool]], what: str, limit: float = 30.0) -> None:
    try:
        with trio.fail_after(limit):
            while not await cond():
                await trio.sleep(0.05)
    except trio.TooSlowError:
        raise AssertionError(f"not seen within {limit} s: {what}") from None


async def test_scraped_during_a_recording(tmp_path: Path) -> None:
    sim = Simulator(SimConfig(venues=("binance-spot",), rate=200.0, seed=3))
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(sim.run)
        cfg = RecorderConfig(
            root=str(tmp_path / "archive"),
            jobs=(
                VenueJob(
                    "binance-spot",
                    ("btcusdt@trade", "ethusdt@trade"),
                    ws_url=urls.ws("binance-spot"),
                    rest_url=urls.rest("binance-spot"),
                ),
            ),
            flush_interval=0.5,
            fsync=False,
            timing=FAST,
            metrics_port=0,
            health=HealthPolicy(stale_after_s=1.0),
        )
        rec = Recorder(cfg)
        async with trio.open_nursery() as rn:
            await rn.start(rec.run)
            assert rec.metrics_port is not None
            base = f"http://127.0.0.1:{rec.metrics_port}"
            async with httpx.AsyncClient(base_url=base) as http:

                async def scrape() -> dict[str, float]:
                    r = await http.get("/metrics")
                    assert r.status_code == 200
                    assert r.headers["content-type"].startswith("text/plain")
                    return _samples(r.text)

                def total(samples: dict[str, float], name: str) -> float:
                    pat = re.compile(re.escape(name) + r"\{.*\}$")
                    return sum(v for k, v in samples.items() if pat.match(k))

                async def ready() -> bool:
                    return (await http.get("/readyz")).status_code == 200

                assert (await http.get("/healthz")).json() == {"status": "alive"}
                await _until(ready, "ready once subscribed and receiving")

                # Counters agree with what the recorder counted at the same moment.
                before = rec.statistics()
                samples = await scrape()
                after = rec.statistics()
                got = total(samples, "ticktape_messages_received_total")
                assert sum(s.messages for s in before.shards) <= got
                assert got <= sum(s.messages for s in after.shards)
                assert total(samples, "ticktape_reconnects_total") == 0

                # An injected disconnect shows as one reconnect and one gap.
                conn = sim.connections("binance-spot")[0].conn
                sim.inject(Fault("close", code=1001, reason="test"), conn=conn)

                async def reconnected() -> bool:
                    got = await scrape()
                    return (
                        total(got, "ticktape_reconnects_total") == 1
                        and total(got, "ticktape_gaps_total") >= 1
                    )

                await _until(reconnected, "the reconnect counted")
                samples = await scrape()
                stats = rec.statistics()
                assert total(samples, "ticktape_gaps_total") == sum(s.gaps for s in stats.shards)
                await _until(ready, "ready again after the reconnect")

                # A stall makes the probe say 503, with the reason, then 200 again.
                conn = sim.connections("binance-spot")[-1].conn
                sim.inject(Fault("stall", duration=3.0), conn=conn)

                async def not_ready() -> bool:
                    r = await http.get("/readyz")
                    return r.status_code == 503 and "stale" in orjson.dumps(r.json()).decode()

                await _until(not_ready, "503 during the stall")
                await _until(ready, "200 after the stall")
                assert (await http.get("/nope")).status_code == 404
            rn.cancel_scope.cancel()
        nursery.cancel_scope.cancel()


VENUE_TABLE = (
    '[[venues]]\nvenue = "binance-spot"\nstreams = ['
    + ", ".join(f'"{s}usdt@trade"' for s in ("btc", "eth", "bnb", "xrp", "sol", "ada", "doge"))
    + "]\n"
)


def test_metrics_port_from_toml_and_options(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text('root = "a"\nmetrics_port = 9100\n' + VENUE_TABLE)
    assert load_config(str(job)).metrics_port == 9100
    assert load_config(str(job)).metrics_host == "127.0.0.1"
    # The option wins; each worker process gets its own port.
    assert load_config(str(job), metrics_port=9200).metrics_port == 9200
    assert load_config(str(job), worker=(2, 4)).metrics_port == 9102
    job.write_text('root = "a"\nmetrics_port = "x"\n' + VENUE_TABLE)
    with pytest.raises(ConfigError, match="metrics_port"):
        load_config(str(job))
