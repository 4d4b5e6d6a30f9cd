"""The recorder under test, in a process of its own (so its RSS and CPU are its own).

``python -m benchmarks._recproc '<json spec>'`` prints one JSON line of results. Spec keys:
``url``, ``rest_url``, ``streams``, ``root``, ``writer_id``, ``max_streams_per_connection``,
``flush_interval``, ``fsync``, ``ca`` (trust this CA for wss://), and either ``expected``
(stop once that many data messages were received) or ``duration`` (record that long), plus
``rss_every`` (seconds between RSS samples), ``rss_cap_mb`` (stop early above this RSS),
``profile`` (a path prefix for a cProfile of the Trio thread) and
``subscribed_only`` (stop once every shard is live).
"""

from __future__ import annotations

import cProfile
import dataclasses
import os
import ssl
import sys
import time
from typing import Any

import orjson
import pyarrow.parquet as pq
import trio

from recorder import Recorder, RecorderConfig, VenueJob
from recorder.archive._reader import list_partitions


def rss_kb(field: str = "VmRSS", pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (the recorder's writer process, ...)."""
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", encoding="ascii", errors="replace") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def tree_rss_kb() -> int:
    """RSS of this process and all its descendants."""
    return rss_kb() + sum(rss_kb(pid=c) for c in descendants(os.getpid()))


def first_data_recv_ns(root: str) -> int | None:
    _, parts = list_partitions(root)
    first: int | None = None
    for p in parts:
        if p.key.channel in ("session", "control", "depth_snapshot"):
            continue
        for path in p.paths:
            col = pq.read_table(path, columns=["recv_time"]).column(0)
            v = col.cast("int64").to_numpy().min() if len(col) else None
            if v is not None and (first is None or int(v) < first):
                first = int(v)
    return first


def make_config(spec: dict[str, Any]) -> RecorderConfig:
    kw: dict[str, Any] = {}
    if "writer_process" in spec:
        kw["writer_process"] = bool(spec["writer_process"])
    if spec.get("ca"):
        names = {f.name for f in dataclasses.fields(RecorderConfig)}
        if "ssl_context" in names:
            ctx = ssl.create_default_context(cafile=spec["ca"])
            kw["ssl_context"] = ctx
        else:  # older recorder: the default context honours SSL_CERT_FILE
            os.environ["SSL_CERT_FILE"] = spec["ca"]
    return RecorderConfig(
        root=spec["root"],
        jobs=(
            VenueJob(
                venue="binance-spot",
                streams=tuple(spec["streams"]),
                ws_url=spec["url"],
                rest_url=spec["rest_url"],
                max_streams_per_connection=spec.get("max_streams_per_connection"),
            ),
        ),
        writer_id=spec.get("writer_id", "w0"),
        flush_interval=float(spec.get("flush_interval", 5.0)),
        fsync=bool(spec.get("fsync", True)),
        **kw,
    )


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    rec = Recorder(make_config(spec))
    out: dict[str, Any] = {"rss_samples": []}
    out["writer_process"] = type(rec.writer).__name__ != "ArchiveWriter"
    peak = [0]
    expected = spec.get("expected")
    cap_mb = spec.get("rss_cap_mb")
    stop = trio.Event()
    t_start = time.time_ns()
    async with trio.open_nursery() as nursery:

        async def sample_rss() -> None:
            # The tree's RSS every 0.5 s for the peak; a table row every ``rss_every`` s.
            every = float(spec.get("rss_every", 1.0))
            due = 0.0
            while True:
                mb = tree_rss_kb() // 1024
                peak[0] = max(peak[0], mb)
                now = (time.time_ns() - t_start) / 1e9
                if now >= due:
                    due += every
                    st = rec.statistics()
                    out["rss_samples"].append(
                        (
                            round(now, 2),
                            mb,
                            sum(s.messages for s in st.shards),
                            st.writer.pending_rows,
                            st.writer.rows_written,
                            rss_kb() // 1024,
                        )
                    )
                if cap_mb is not None and mb > cap_mb:
                    out["capped_at_s"] = round(now, 2)
                    stop.set()
                await trio.sleep(0.5 if "rss_every" in spec else 2.0)

        nursery.start_soon(sample_rss)
        await nursery.start(rec.run)
        out["started_s"] = (time.time_ns() - t_start) / 1e9
        if spec.get("subscribed_only"):
            while not all(s.connected for s in rec.statistics().shards):
                await trio.sleep(0.005)
            out["subscribed_s"] = (time.time_ns() - t_start) / 1e9
        elif expected is not None:
            while sum(s.messages for s in rec.statistics().shards) < expected:
                await trio.sleep(0.01)
        else:
            with trio.move_on_after(float(spec["duration"])):
                await stop.wait()
        t_cancel = time.time_ns()
        nursery.cancel_scope.cancel()
    t_done = time.time_ns()
    st = rec.statistics()
    out.update(
        messages=sum(s.messages for s in st.shards),
        shards=len(st.shards),
        reconnects=sum(s.reconnects for s in st.shards),
        last_recv_ns=max((s.last_recv_ns or 0) for s in st.shards),
        cancel_ns=t_cancel,
        done_ns=t_done,
        final_flush_s=(t_done - t_cancel) / 1e9,
        rows_written=st.writer.rows_written,
        raw_rows=st.writer.raw_rows,
        unparsed_rows=st.writer.unparsed_rows,
        write_errors=st.writer.write_errors,
        bytes_written=st.writer.bytes_written,
        peak_rss_mb=max(peak[0], rss_kb("VmHWM") // 1024),
        parent_hwm_mb=rss_kb("VmHWM") / 1024,
        books=[
            dataclasses.asdict(b)
            if dataclasses.is_dataclass(b) and not isinstance(b, type)
            else repr(b)
            for b in getattr(st, "books", ())
        ],
    )
    return out


def main() -> None:
    spec = orjson.loads(sys.argv[1])
    prof_prefix = spec.get("profile")
    prof = cProfile.Profile() if prof_prefix else None
    if prof is not None:
        prof.enable()
    out = trio.run(run, spec)
    if prof is not None:
        prof.disable()
        prof.dump_stats(prof_prefix + ".trio.pstats")
    if spec.get("expected") is not None:
        out["first_recv_ns"] = first_data_recv_ns(spec["root"])
    print(orjson.dumps(out).decode(), flush=True)


if __name__ == "__main__":
    main()
