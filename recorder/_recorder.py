"""The capture job's supervisor: one nursery holding the writer and every shard.

The supervisor decides (shard plans come from the pure planner in ``_shard.py``), then does
(one :class:`~recorder._connection.ShardRunner` per planned connection, started at the pace the
venue's connection limit allows). Every recorded message goes through one :class:`FanOut`
sink: into the archive writer's buffers, to live consumers (``taps``) and to the order-book
keepers. The writer's blocking work (encoding, Parquet, fsync, compaction) runs in a worker
thread every ``flush_interval`` seconds; on cancellation (SIGINT/SIGTERM) the supervisor
flushes everything before returning.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

import trio

from recorder._archive import ArchiveWriter, WriterStatistics, as_unparsed
from recorder._books import BookKeeper, BookStatistics
from recorder._connection import ShardRunner, ShardStatistics, Timing
from recorder._errors import ConfigError, RemoteProtocolError
from recorder._limiter import RateLimit, TrioRateLimiter
from recorder._message import Message
from recorder._policy import RolloverSchedule, StallWatchdog
from recorder._rest import rest_client_for
from recorder._shard import StreamSpec, plan_shards
from recorder._venue import VenueAdapter

log = logging.getLogger("ticktape.recorder")


@dataclass(frozen=True)
class VenueJob:
    """One venue's part of a job: which streams, and where to find the exchange."""

    venue: str
    streams: tuple[str, ...]
    ws_url: str | None = None
    rest_url: str | None = None
    max_streams_per_connection: int | None = None
    api_key_env: str | None = None
    api_key_file: str | None = None


@dataclass(frozen=True)
class RecorderConfig:
    """Everything a capture job needs; validated before anything connects."""

    root: str
    jobs: tuple[VenueJob, ...]
    writer_id: str = "w0"
    flush_interval: float = 5.0
    compaction_grace: float = 30.0
    timing: Timing = field(default_factory=lambda: Timing(stall_after=600.0))
    fsync: bool = True
    seed: int | None = None
    ssl_context: ssl.SSLContext | None = None
    """TLS settings for wss:// (default: the system's trust store)."""
    worker_count: int = 1
    """Processes on this host sharing the per-IP connection limits (``--workers``)."""

    def __post_init__(self) -> None:
        if not 0 < self.flush_interval <= 60:
            raise ConfigError(
                f"flush_interval must be in (0, 60] seconds, got {self.flush_interval}"
            )
        if not self.jobs:
            raise ConfigError("nothing to record: no venue with streams was configured")


@dataclass(frozen=True, slots=True)
class RecorderStatistics:
    """A snapshot of the whole job, for the live status display and tests."""

    started_ns: int
    shards: tuple[ShardStatistics, ...]
    writer: WriterStatistics
    books: tuple[BookStatistics, ...]
    tap_drops: int


class FanOut:
    """The sink every shard writes into: archive buffers, live taps, book keepers."""

    def __init__(self, writer: ArchiveWriter) -> None:
        self.writer = writer
        self.taps: list[trio.MemorySendChannel[Message]] = []
        self.observers: list[Callable[[Message], None]] = []
        self.tap_drops = 0

    def put(self, msg: Message) -> None:
        if self.taps and msg._fields is None:
            # Live consumers must see what replay will yield: decode now, and file a frame
            # its codec rejects under ``unparsed`` exactly as the archive writer would.
            try:
                _ = msg.fields
            except RemoteProtocolError as exc:
                msg = as_unparsed(msg, str(exc), msg.channel)
        self.writer.add(msg)
        for tap in self.taps:
            try:
                tap.send_nowait(msg)
            except trio.WouldBlock:
                self.tap_drops += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.taps.remove(tap)
        for obs in self.observers:
            obs(msg)


AdapterFactory = Callable[[VenueJob], VenueAdapter]


class Recorder:
    """A capture job. ``await nursery.start(recorder.run)`` returns once every shard has
    made its first attempt; cancel the surrounding scope to stop (everything is flushed)."""

    def __init__(
        self,
        config: RecorderConfig,
        *,
        adapter_factory: AdapterFactory | None = None,
        taps: Sequence[trio.MemorySendChannel[Message]] = (),
    ) -> None:
        self.config = config
        if adapter_factory is None:
            from recorder._adapters import make_adapter

            adapter_factory = make_adapter
        self.adapters = {job.venue: adapter_factory(job) for job in config.jobs}
        for job in config.jobs:
            adapter = self.adapters[job.venue]
            for s in job.streams:
                adapter.validate_stream(s)
        self.writer = ArchiveWriter(config.root, writer_id=config.writer_id, fsync=config.fsync)
        self.sink = FanOut(self.writer)
        self.sink.taps.extend(taps)
        # Connection ids are unique across hosts, workers and restarts: writer id + start time.
        self.run_token = f"{self.writer.writer_id}.{time.time_ns() // 1_000_000_000:x}"
        self.runners: list[ShardRunner] = []
        self.keepers: list[BookKeeper] = []
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.started_ns = time.time_ns()
        self._rng = random.Random(config.seed)

    def resubscribe(self, venue: str, streams: Sequence[str]) -> bool:
        """Resubscribe ``streams`` of ``venue`` on whichever shards carry them."""
        done = False
        for r in self.runners:
            if r.venue == venue and any(s in r.streams for s in streams):
                done = r.resubscribe([s for s in streams if s in r.streams]) or done
        return done

    def statistics(self) -> RecorderStatistics:
        return RecorderStatistics(
            started_ns=self.started_ns,
            shards=tuple(r.statistics() for r in self.runners),
            writer=self.writer.statistics(),
            books=tuple(k.statistics() for k in self.keepers),
            tap_drops=self.sink.tap_drops,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        cfg = self.config
        grace_ns = int(cfg.compaction_grace * 1e9)
        recovered = await trio.to_thread.run_sync(self.writer.recover, time.time_ns(), grace_ns)
        if recovered:
            log.info("recovered and compacted %d partitions left by an earlier run", recovered)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._flush_loop, grace_ns)
                for job in cfg.jobs:
                    await self._start_job(nursery, job)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                for close in self._closers:
                    await close()
                await self._flush(grace_ns)
                for tap in self.sink.taps:
                    await tap.aclose()

    async def _start_books(self, nursery: trio.Nursery, job: VenueJob) -> None:
        """One book keeper per venue with order-book streams (before its shards start, so the
        first Bybit snapshot is seen): REST snapshots on Binance, resubscribes on Bybit."""
        adapter = self.adapters[job.venue]
        channels = {adapter.validate_stream(s).channel for s in job.streams}
        suffix = f"@{self.run_token}"
        if job.venue in ("binance-spot", "binance-usdm") and "depth" in channels:
            rest = rest_client_for(job.venue, job.rest_url or adapter.default_rest_url)
            self._closers.append(rest.aclose)
            keeper = BookKeeper(job.venue, self.sink, rest=rest, conn_suffix=suffix)
        elif job.venue.startswith("bybit") and "orderbook" in channels:
            keeper = BookKeeper(
                job.venue, self.sink, resubscribe=self.resubscribe, conn_suffix=suffix
            )
        else:
            return
        self.keepers.append(keeper)
        self.sink.observers.append(keeper.observe)
        await nursery.start(keeper.run)

    async def _start_job(self, nursery: trio.Nursery, job: VenueJob) -> None:
        await self._start_books(nursery, job)
        adapter = self.adapters[job.venue]
        limits = adapter.limits
        plan_limits = adapter.plan_limits
        if job.max_streams_per_connection is not None:
            plan_limits = replace(
                plan_limits, max_streams_per_connection=job.max_streams_per_connection
            )
        specs = [
            StreamSpec(s, route=adapter.route_of(s), weight=adapter.weight_of(s))
            for s in dict.fromkeys(job.streams)
        ]
        plan = plan_shards(specs, plan_limits)
        # Connection attempts are limited per IP: workers on one host share the budget.
        connect_limiter = TrioRateLimiter(
            RateLimit(
                limit=limits.connections_per_window,
                window_s=limits.connection_window_s,
                headroom=max(1, limits.connections_per_window // 5),
            ).shared_by(self.config.worker_count)
        )
        timing = self.config.timing
        if timing.rollover is None and limits.max_connection_age_s is not None:
            timing = replace(
                timing, rollover=RolloverSchedule(max_age_s=limits.max_connection_age_s)
            )
        watchdog = StallWatchdog()
        ws_base = job.ws_url or adapter.default_ws_url
        log.info("%s: %d streams on %d connections", job.venue, len(specs), len(plan))
        for i, shard in enumerate(plan):
            kinds = [adapter.kind_of(s.name) for s in shard.streams]
            stall = watchdog.stall_after(kinds, heartbeat_s=limits.heartbeat_s)
            runner = ShardRunner(
                shard_id=f"{job.venue}.{shard.shard_id}",
                adapter=adapter,
                ws_base=ws_base,
                route=shard.route,
                streams=shard.names,
                sink=self.sink,
                timing=replace(
                    timing,
                    stall_after=min(timing.stall_after, stall),
                    backoff=replace(timing.backoff, rng=random.Random(self._rng.random())),
                ),
                connect_limiter=connect_limiter,
                run_token=self.run_token,
                shard_index=i,
                shard_count=len(plan),
                ssl_context=self.config.ssl_context,
            )
            self.runners.append(runner)
            await nursery.start(runner.run)

    async def _flush_loop(self, grace_ns: int) -> None:
        while True:
            await trio.sleep(self.config.flush_interval)
            await self._flush(grace_ns)

    async def _flush(self, grace_ns: int) -> None:
        pending = self.writer.take_pending()
        await trio.to_thread.run_sync(self.writer.flush, pending)
        await trio.to_thread.run_sync(self.writer.compact_closed_hours, time.time_ns(), grace_ns)
