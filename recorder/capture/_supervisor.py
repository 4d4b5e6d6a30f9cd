"""The capture job's supervisor: one nursery holding the writer and every shard.

The supervisor decides (shard plans come from the pure planner in ``_shard.py``), then does
(one :class:`~recorder.capture._connection.ShardRunner` per planned connection, started at the
pace the venue's connection limit allows). Every recorded message goes through one :class:`FanOut`
sink: into the archive writer's buffers, to live consumers (``taps``) and to the order-book
keepers. The writer's blocking work (encoding, Parquet, fsync, compaction) runs in a worker
thread every ``flush_interval`` seconds; on cancellation (SIGINT/SIGTERM) the supervisor
flushes everything before returning.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

import trio

from recorder.archive._buffer import as_unparsed
from recorder.archive._writer import ArchiveWriter
from recorder.archive._writerproc import WriterProcess
from recorder.capture._bookkeeper import BookKeeper
from recorder.capture._config import RecorderConfig
from recorder.capture._connection import ShardRunner
from recorder.capture._metrics import RecorderStatistics
from recorder.capture._ops_http import serve_ops
from recorder.capture._policy import RolloverSchedule, StallWatchdog
from recorder.capture._shard import ShardAssignment, ShardPlan, StreamSpec, plan_shards, rebalance
from recorder.capture._universe import (
    expand_streams,
    fetch_instruments,
    select_symbols,
)
from recorder.core._errors import ConfigError, RemoteProtocolError
from recorder.core._message import Message
from recorder.net._limiter import RateLimit, TrioRateLimiter
from recorder.net._rest import RestClient, RestError, rest_client_for
from recorder.venues import VenueAdapter, VenueJob

log = logging.getLogger("ticktape.recorder")


class FanOut:
    """The sink every shard writes into: archive buffers, live taps, book keepers."""

    def __init__(self, writer: ArchiveWriter | WriterProcess) -> None:
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
            from recorder.venues._adapters import make_adapter

            adapter_factory = make_adapter
        self.adapters = {job.venue: adapter_factory(job) for job in config.jobs}
        for job in config.jobs:
            adapter = self.adapters[job.venue]
            for s in job.streams:
                adapter.validate_stream(s)
            # A selection's channels are checked now, on a stand-in symbol, not at first use.
            for s in expand_streams(job.venue, ["BTCUSDT"], job.channels):
                adapter.validate_stream(s)
        self.writer: ArchiveWriter | WriterProcess = (
            WriterProcess(config.root, writer_id=config.writer_id, fsync=config.fsync)
            if config.writer_process
            else ArchiveWriter(config.root, writer_id=config.writer_id, fsync=config.fsync)
        )
        self.sink = FanOut(self.writer)
        self.sink.taps.extend(taps)
        # Connection ids are unique across hosts, workers and restarts: writer id + start time.
        self.run_token = f"{self.writer.writer_id}.{time.time_ns() // 1_000_000_000:x}"
        self.runners: list[ShardRunner] = []
        self.keepers: list[BookKeeper] = []
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._rest: dict[str, RestClient] = {}
        self._plans: dict[str, ShardPlan] = {}
        self._connect_limiters: dict[str, TrioRateLimiter] = {}
        self.started_ns = time.time_ns()
        self.metrics_port: int | None = None
        """The port ``/metrics`` listens on once running (``metrics_port=0`` picks one)."""
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
                self._nursery = nursery
                if cfg.metrics_port is not None:
                    self.metrics_port = await nursery.start(
                        serve_ops,
                        cfg.metrics_host,
                        cfg.metrics_port,
                        self.statistics,
                        cfg.health,
                    )
                nursery.start_soon(self._flush_loop, grace_ns)
                for job in cfg.jobs:
                    await self._start_job(nursery, job)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                for close in self._closers:
                    await close()
                await self._flush(grace_ns)
                await trio.to_thread.run_sync(self.writer.shutdown)
                for tap in self.sink.taps:
                    await tap.aclose()

    def _rest_for(self, job: VenueJob) -> RestClient:
        """One weight-budgeted REST client per venue (closed when the job ends)."""
        if job.venue not in self._rest:
            adapter = self.adapters[job.venue]
            api = "binance-spot" if job.venue == "binance-sbe" else job.venue
            rest = rest_client_for(api, job.rest_url or adapter.default_rest_url)
            self._rest[job.venue] = rest
            self._closers.append(rest.aclose)
        return self._rest[job.venue]

    async def _job_streams(self, job: VenueJob) -> list[str]:
        """The job's streams: the configured ones plus its selection, resolved now."""
        streams = list(job.streams)
        if job.select is not None:
            adapter = self.adapters[job.venue]
            instruments = await fetch_instruments(job.venue, self._rest_for(job))
            symbols = select_symbols(instruments, job.select)
            for name in expand_streams(job.venue, symbols, job.channels):
                try:
                    adapter.validate_stream(name)
                except ConfigError as exc:  # an odd listing must not stop the job
                    log.warning("%s: skipping %s: %s", job.venue, name, exc)
                    continue
                streams.append(name)
        return list(dict.fromkeys(streams))

    async def _resolve_until_done(self, job: VenueJob) -> list[str]:
        delay = 1.0
        while True:
            try:
                return await self._job_streams(job)
            except (RemoteProtocolError, RestError) as exc:
                log.error("%s: cannot resolve the symbol selection (retrying): %s", job.venue, exc)
                await trio.sleep(delay)
                delay = min(60.0, delay * 2)

    async def _start_books(self, nursery: trio.Nursery, job: VenueJob, streams: list[str]) -> None:
        """One book keeper per venue with order-book streams (before its shards start, so the
        first Bybit snapshot is seen): REST snapshots on Binance, resubscribes on Bybit."""
        adapter = self.adapters[job.venue]
        channels = {adapter.validate_stream(s).channel for s in streams}
        suffix = f"@{self.run_token}"
        if job.venue in ("binance-spot", "binance-usdm") and "depth" in channels:
            keeper = BookKeeper(job.venue, self.sink, rest=self._rest_for(job), conn_suffix=suffix)
        elif job.venue.startswith("bybit") and "orderbook" in channels:
            keeper = BookKeeper(
                job.venue, self.sink, resubscribe=self.resubscribe, conn_suffix=suffix
            )
        else:
            return
        self.keepers.append(keeper)
        self.sink.observers.append(keeper.observe)
        await nursery.start(keeper.run)

    def _specs(self, job: VenueJob, streams: list[str]) -> list[StreamSpec]:
        adapter = self.adapters[job.venue]
        return [
            StreamSpec(s, route=adapter.route_of(s), weight=adapter.weight_of(s)) for s in streams
        ]

    async def _start_job(self, nursery: trio.Nursery, job: VenueJob) -> None:
        streams = await self._resolve_until_done(job)
        await self._start_books(nursery, job, streams)
        adapter = self.adapters[job.venue]
        limits = adapter.limits
        plan_limits = adapter.plan_limits
        if job.max_streams_per_connection is not None:
            plan_limits = replace(
                plan_limits, max_streams_per_connection=job.max_streams_per_connection
            )
        plan = plan_shards(self._specs(job, streams), plan_limits)
        # Connection attempts are limited per IP: workers on one host share the budget.
        self._connect_limiters[job.venue] = TrioRateLimiter(
            RateLimit(
                limit=limits.connections_per_window,
                window_s=limits.connection_window_s,
                headroom=max(1, limits.connections_per_window // 5),
            ).shared_by(self.config.worker_count)
        )
        log.info("%s: %d streams on %d connections", job.venue, len(streams), len(plan))
        # Every shard's first connection at once (the connection limiter still paces them);
        # the job counts as started when each has subscribed or failed once.
        async with trio.open_nursery() as starting:
            for i, shard in enumerate(plan):
                runner = self._make_runner(job, shard, i, len(plan))
                starting.start_soon(nursery.start, runner.run)
        self._plans[job.venue] = plan
        if job.select is not None:
            nursery.start_soon(self._refresh_universe, nursery, job)

    def _make_runner(
        self, job: VenueJob, shard: ShardAssignment, index: int, count: int
    ) -> ShardRunner:
        adapter = self.adapters[job.venue]
        limits = adapter.limits
        timing = self.config.timing
        if timing.rollover is None and limits.max_connection_age_s is not None:
            timing = replace(
                timing, rollover=RolloverSchedule(max_age_s=limits.max_connection_age_s)
            )
        kinds = [adapter.kind_of(s.name) for s in shard.streams]
        stall = StallWatchdog().stall_after(kinds, heartbeat_s=limits.heartbeat_s)
        runner = ShardRunner(
            shard_id=f"{job.venue}.{shard.shard_id}",
            adapter=adapter,
            ws_base=job.ws_url or adapter.default_ws_url,
            route=shard.route,
            streams=shard.names,
            sink=self.sink,
            timing=replace(
                timing,
                stall_after=min(timing.stall_after, stall),
                backoff=replace(timing.backoff, rng=random.Random(self._rng.random())),
            ),
            connect_limiter=self._connect_limiters[job.venue],
            run_token=self.run_token,
            shard_index=index,
            shard_count=count,
            ssl_context=self.config.ssl_context,
        )
        self.runners.append(runner)
        return runner

    async def _refresh_universe(self, nursery: trio.Nursery, job: VenueJob) -> None:
        """Re-resolve the selection periodically; subscribe new listings and drop delisted
        ones on the shards that carry them, without a restart (the planner decides)."""
        while True:
            await trio.sleep(job.refresh_interval)
            await self.refresh(job.venue)

    async def refresh(self, venue: str) -> None:
        """Resolve ``venue``'s selection now and apply the change (a failure keeps the
        current universe and is logged)."""
        job = next(j for j in self.config.jobs if j.venue == venue)
        try:
            streams = await self._job_streams(job)
        except (RemoteProtocolError, RestError) as exc:
            log.warning("%s: universe refresh failed (keeping the current one): %s", venue, exc)
            return
        await self.apply_universe(self._nursery, job, streams)

    async def apply_universe(
        self, nursery: trio.Nursery, job: VenueJob, streams: list[str]
    ) -> None:
        """Carry out the planner's diff between the current plan and ``streams``."""
        diff = rebalance(self._plans[job.venue], self._specs(job, streams))
        if diff.empty:
            return
        by_id = {r.shard_id: r for r in self.runners}

        def runner(shard_id: int) -> ShardRunner:
            return by_id[f"{job.venue}.{shard_id}"]

        for shard_id, names in diff.unsubscribe.items():
            runner(shard_id).remove_streams(names)
        for shard_id, names in diff.subscribe.items():
            runner(shard_id).add_streams(names)
        for shard_id in diff.closed_shards:
            r = runner(shard_id)
            r.stop()
            self.runners.remove(r)
        count = len(diff.plan)
        for shard in diff.new_shards:
            await nursery.start(self._make_runner(job, shard, shard.shard_id, count).run)
        self._plans[job.venue] = diff.plan
        log.info(
            "%s: universe now %d streams (+%d -%d)",
            job.venue,
            len(streams),
            sum(len(v) for v in diff.subscribe.values())
            + sum(len(s.streams) for s in diff.new_shards),
            sum(len(v) for v in diff.unsubscribe.values()),
        )

    async def _flush_loop(self, grace_ns: int) -> None:
        """Stage every ``encode_interval``, flush every ``flush_interval``.

        A flush runs beside the staging: the writer may take seconds to write thousands of
        part files, and the buffers must keep moving out of this process meanwhile. A flush
        that is due while the previous one still runs is skipped (the next writes it all).
        """
        cfg = self.config
        next_flush = trio.current_time() + cfg.flush_interval
        flushing = False

        async def flush() -> None:
            nonlocal flushing
            try:
                await self._flush(grace_ns)
            finally:
                flushing = False

        async with trio.open_nursery() as nursery:
            while True:
                now = trio.current_time()
                await trio.sleep(min(cfg.encode_interval, max(0.0, next_flush - now)))
                if trio.current_time() >= next_flush:
                    next_flush += cfg.flush_interval
                    if not flushing:
                        flushing = True
                        nursery.start_soon(flush)
                        continue
                pending = self.writer.take_pending()
                if pending:
                    await trio.to_thread.run_sync(self.writer.stage, pending)

    async def _flush(self, grace_ns: int) -> None:
        pending = self.writer.take_pending()
        started = trio.current_time()
        await trio.to_thread.run_sync(self.writer.flush, pending)
        took = trio.current_time() - started
        if took > self.config.flush_interval:
            log.warning(
                "the archive writer is falling behind: a flush took %.1f s (flush_interval "
                "%.1f s); %d rows not on disk yet",
                took,
                self.config.flush_interval,
                self.writer.statistics().pending_rows,
            )
        await trio.to_thread.run_sync(self.writer.compact_closed_hours, time.time_ns(), grace_ns)
