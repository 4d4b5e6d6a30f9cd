"""The job's statistics snapshot, and the Prometheus metrics and health answers it gives.

Pure: nothing here reads a clock, a socket or a file. The HTTP endpoint (``_ops_http.py``)
takes a snapshot, the current time and the process RSS, and asks this module for the body.

Names follow the Prometheus conventions: the ``ticktape_`` prefix, ``_total`` counters,
seconds and bytes as base units. Labels stay bounded: per venue and per connection (a job has
tens to hundreds of connections, never one per stream); streams are not labels, so 5,000
streams cannot explode the series count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from recorder.archive._buffer import WriterStatistics
from recorder.capture._book_stats import BookStatistics
from recorder.capture._connection import ShardStatistics
from recorder.core import SECOND_NS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class RecorderStatistics:
    """A snapshot of the whole job, for the live status display and tests."""

    started_ns: int
    shards: tuple[ShardStatistics, ...]
    writer: WriterStatistics
    books: tuple[BookStatistics, ...]
    tap_drops: int


@dataclass(frozen=True, slots=True)
class Health:
    """A readiness answer: ``ready`` and, when not, every reason why."""

    ready: bool
    reasons: tuple[str, ...]

    def body(self) -> dict[str, object]:
        return {"status": "ready" if self.ready else "not ready", "reasons": list(self.reasons)}


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """When the job counts as ready (``/readyz``)."""

    stale_after_s: float = 60.0
    """A connected shard whose last message is older than this is stale."""
    max_pending_rows: int = 2_000_000
    """More rows than this waiting to be written: the writer is not keeping up."""


def readiness(stats: RecorderStatistics, now_ns: int, policy: HealthPolicy) -> Health:
    """Ready when every shard is subscribed, none is stale, and the writer keeps up."""
    reasons: list[str] = []
    if not stats.shards:
        reasons.append("no shard started yet")
    for s in stats.shards:
        if not s.connected:
            reasons.append(f"{s.shard_id} ({s.venue}) is not connected: {s.last_error or '-'}")
        elif s.last_recv_ns is None:
            reasons.append(f"{s.shard_id} ({s.venue}) has received nothing yet")
        elif (age := (now_ns - s.last_recv_ns) / SECOND_NS) > policy.stale_after_s:
            reasons.append(f"{s.shard_id} ({s.venue}) is stale: last message {age:.0f} s ago")
    w = stats.writer
    if w.pending_rows > policy.max_pending_rows:
        reasons.append(f"writer is behind: {w.pending_rows} rows waiting")
    if w.last_error is not None and w.pending_rows > 0:
        reasons.append(f"writer cannot write: {w.last_error}")
    return Health(not reasons, tuple(reasons))


class _Snapshot(Collector):
    """Metric families for one snapshot (a collector that is built per scrape)."""

    def __init__(self, stats: RecorderStatistics, now_ns: int, rss_bytes: int | None) -> None:
        self.stats = stats
        self.now_ns = now_ns
        self.rss_bytes = rss_bytes

    def collect(self) -> Iterator[Metric]:
        st = self.stats
        labels = ["venue", "shard"]

        def counter(name: str, doc: str, attr: str) -> CounterMetricFamily:
            m = CounterMetricFamily(f"ticktape_{name}", doc, labels=labels)
            for s in st.shards:
                m.add_metric([s.venue, s.shard_id], float(getattr(s, attr)))
            return m

        yield counter("messages_received", "WebSocket messages received.", "messages")
        yield counter("received_bytes", "Payload bytes received.", "bytes")
        yield counter("reconnects", "Reconnections after a lost connection.", "reconnects")
        yield counter("rollovers", "Planned (24 h / serverShutdown) rollovers.", "rollovers")
        yield counter("gaps", "Gaps declared (time without a connection).", "gaps")
        yield counter("duplicates_dropped", "Overlap duplicates dropped.", "duplicates_dropped")
        refused = CounterMetricFamily(
            "ticktape_subscribe_refusals", "Streams the venue refused.", labels=labels
        )
        connected = GaugeMetricFamily(
            "ticktape_connected", "1 while the shard's connection is up.", labels=labels
        )
        streams = GaugeMetricFamily(
            "ticktape_streams", "Streams planned on the shard.", labels=labels
        )
        age = GaugeMetricFamily(
            "ticktape_last_message_age_seconds",
            "Seconds since the shard's last message (absent before the first).",
            labels=labels,
        )
        for s in st.shards:
            key = [s.venue, s.shard_id]
            refused.add_metric(key, float(len(s.refused)))
            connected.add_metric(key, 1.0 if s.connected else 0.0)
            streams.add_metric(key, float(s.streams))
            if s.last_recv_ns is not None:
                age.add_metric(key, max(0.0, (self.now_ns - s.last_recv_ns) / SECOND_NS))
        yield from (refused, connected, streams, age)

        books = [
            ("book_resyncs", "Order-book resyncs (a new snapshot after a gap).", "resyncs"),
            ("book_gaps", "Order-book continuity breaks.", "gaps"),
            ("book_snapshots_fetched", "REST depth snapshots fetched.", "snapshots_fetched"),
            ("book_snapshot_failures", "REST depth snapshots that failed.", "snapshot_failures"),
        ]
        for name, doc, attr in books:
            m = CounterMetricFamily(f"ticktape_{name}", doc, labels=["keeper"])
            for i, b in enumerate(st.books):
                m.add_metric([str(i)], float(getattr(b, attr)))
            yield m

        w = st.writer
        for name, doc, value in (
            ("rows_written", "Rows written to the archive.", w.rows_written),
            ("written_bytes", "Parquet bytes written.", w.bytes_written),
            ("files_written", "Parquet files written.", w.files_written),
            ("write_errors", "Failed writes (retried).", w.write_errors),
            ("compactions", "Partition-hours compacted.", w.compactions),
            ("raw_rows", "Rows kept as raw bytes (not re-renderable).", w.raw_rows),
            ("unparsed_rows", "Frames filed under unparsed.", w.unparsed_rows),
        ):
            yield CounterMetricFamily(f"ticktape_writer_{name}", doc, value=float(value))
        yield GaugeMetricFamily(
            "ticktape_writer_backlog_rows", "Rows waiting to be written.", value=w.pending_rows
        )
        yield GaugeMetricFamily(
            "ticktape_writer_open_partitions", "Partitions with rows buffered.", w.open_partitions
        )
        yield CounterMetricFamily(
            "ticktape_tap_drops", "Messages a slow live tap missed.", value=float(st.tap_drops)
        )
        yield GaugeMetricFamily(
            "ticktape_start_time_seconds", "When the job started.", st.started_ns / SECOND_NS
        )
        if self.rss_bytes is not None:
            yield GaugeMetricFamily(
                "ticktape_process_resident_memory_bytes",
                "Resident memory of the receiving process.",
                value=float(self.rss_bytes),
            )


def render_metrics(stats: RecorderStatistics, now_ns: int, rss_bytes: int | None) -> bytes:
    """The Prometheus text exposition of one snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(stats, now_ns, rss_bytes))
    return generate_latest(registry)


def metric_names(stats: RecorderStatistics) -> Iterable[str]:
    """Every sample name a scrape of ``stats`` can contain (for checking alert rules)."""
    for fam in _Snapshot(stats, 0, 0).collect():
        yield from (s.name for s in fam.samples)
        yield fam.name


__all__ = [
    "CONTENT_TYPE",
    "Health",
    "HealthPolicy",
    "RecorderStatistics",
    "metric_names",
    "readiness",
    "render_metrics",
]
