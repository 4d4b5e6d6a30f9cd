"""``make bench``: ticktape's benchmarks on loopback, written to ``BENCHMARKS.md``.

Every measured party runs in a process of its own: the exchange (``benchmarks._server``, which
writes pre-built WebSocket frames), the recorder (``benchmarks._recproc``) and the bare
trio-websocket client (``benchmarks._client``). Ratios are taken within one run (the recorder
and its baseline back to back against the same server settings); each figure is the median and
min-max over ``--runs`` runs.

Sections: ingest (1 and 8 connections, ws:// and wss://), storage (bytes per message after
compaction vs gzip'd lines), replay (``replay.open_archive`` vs gzip + orjson; a Polars scan of
one channel-hour), memory (RSS while recording many streams at a fixed rate) and scale
(subscribing 5,000 streams against the rate-limit-enforcing simulator; ingest vs workers).
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson

from benchmarks import _corpus
from recorder import HOUR_NS

PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent


# -- plumbing --------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class ServerProc:
    """The benchmark exchange in its own process."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [PY, "-m", "benchmarks._server", orjson.dumps(spec).decode()],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"benchmark server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.rest_port = int(line.split()[2])

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def __enter__(self) -> ServerProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_json(module: str, spec: dict[str, Any], timeout: float = 3600) -> dict[str, Any]:
    """Run ``python -m module '<spec>'`` and parse its last stdout line."""
    p = subprocess.run(
        [PY, "-m", module, orjson.dumps(spec).decode()],
        capture_output=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    if p.returncode != 0:
        raise RuntimeError(f"{module} failed ({p.returncode}):\n{_err_text(p.stderr)}")
    out: dict[str, Any] = orjson.loads(p.stdout.decode().strip().splitlines()[-1])
    return out


def _err_text(err: bytes) -> str:
    text = err.decode(errors="replace")
    return text if len(text) <= 6000 else text[:3000] + "\n[...]\n" + text[-3000:]


def start_json(module: str, spec: dict[str, Any]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PY, "-m", module, orjson.dumps(spec).decode()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )


def finish_json(p: subprocess.Popen[bytes], module: str) -> dict[str, Any]:
    out, err = p.communicate()
    if p.returncode != 0:
        raise RuntimeError(f"{module} failed ({p.returncode}):\n{_err_text(err)}")
    res: dict[str, Any] = orjson.loads(out.decode().strip().splitlines()[-1])
    return res


@dataclass
class Stat:
    values: list[float] = field(default_factory=list)

    def add(self, v: float) -> None:
        self.values.append(v)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def fmt(self, f: Callable[[float], str]) -> str:
        if not self.values:
            return "n/a"
        if len(self.values) == 1:
            return f(self.values[0])
        return f"{f(self.median)} ({f(min(self.values))} to {f(max(self.values))})"


def k(v: float) -> str:
    return f"{v / 1000:,.1f}k"


def x2(v: float) -> str:
    return f"{v:.2f}"


# -- the machine -------------------------------------------------------------------------------


def machine() -> list[tuple[str, str]]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    osname = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osname = f"{line.split('=', 1)[1].strip(chr(34))}, kernel {platform.release()}"
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return [
        ("CPU", cpu),
        ("cores (os.cpu_count)", str(os.cpu_count())),
        ("RAM", mem),
        ("OS", osname),
        ("load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in load)),
    ]


def versions() -> list[tuple[str, str]]:
    out = [("python", platform.python_version())]
    for pkg in ("trio", "trio-websocket", "wsproto", "pyarrow", "polars", "orjson"):
        try:
            out.append((pkg, version(pkg)))
        except Exception:
            out.append((pkg, "not installed"))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, cwd=ROOT, check=True
        ).stdout.decode()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            cwd=ROOT,
            check=True,
        ).stdout.strip()
        suffix = " (+ uncommitted changes)" if dirty else ""
        out.append(("ticktape git commit", commit.strip() + suffix))
    except (OSError, subprocess.CalledProcessError):
        out.append(("ticktape git commit", "unknown"))
    return out


# -- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    runs: int = 3
    ingest_messages: int = 400_000  # per ingest run, over all connections
    ingest_symbols: int = 80  # 240 streams
    storage_messages: int = 1_000_000
    storage_rate: float = 30_000.0
    scan_hour_rows: int = 720_000
    mem_streams: int = 2000
    mem_rate: float = 30_000.0
    mem_duration: float = 300.0
    mem_cap_mb: int = 2048  # stop the memory run early above this RSS (protects the machine)
    scale_streams: int = 5000
    workers: tuple[int, ...] = (1, 2, 4)
    tune: bool = True
    profile: bool = True
    transports: tuple[bool, ...] = (False, True)  # TLS off / on
    connections: tuple[int, ...] = (1, 8)


QUICK = Config(
    runs=1,
    ingest_messages=6_000,
    ingest_symbols=16,
    storage_messages=6_000,
    storage_rate=20_000.0,
    scan_hour_rows=5_000,
    mem_streams=300,
    mem_rate=3_000.0,
    mem_duration=3.0,
    scale_streams=600,
    workers=(1, 2),
    tune=False,
    profile=False,
)

#: trio-websocket settings tried for the ceiling (message_queue_size, receive_buffer_size).
TUNE_GRID = [(q, b) for q in (1, 64, 4096) for b in (4096, 65536, 262144)]
DEFAULT_CLIENT = (4096, 65536)


class Bench:
    def __init__(self, cfg: Config, work: Path) -> None:
        self.cfg = cfg
        self.work = work
        self.md: list[str] = []
        self.notes: list[str] = []
        self.summary: list[tuple[str, str, str, str]] = []
        self.client = DEFAULT_CLIENT
        self.tls: tuple[str, str, str] | None = None
        self.machine = machine()

    # -- helpers -------------------------------------------------------------------------------

    def tls_files(self) -> tuple[str, str, str]:
        if self.tls is None:
            import trustme

            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1")
            d = self.work / "tls"
            d.mkdir(exist_ok=True)
            ca.cert_pem.write_to_path(str(d / "ca.pem"))
            cert.private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
            self.tls = (str(d / "ca.pem"), str(d / "server.pem"), str(d / "server.pem"))
        return self.tls

    def server_spec(self, corpus: Path, conns: int, streams: int, tls: bool, **kw: Any) -> Any:
        spec: dict[str, Any] = {
            "corpus": str(corpus),
            "connections": conns,
            "streams": streams,
            "mode": "blast",
        }
        if tls:
            _, cert, key = self.tls_files()
            spec["tls"] = [cert, key]
        spec.update(kw)
        return spec

    def url(self, port: int, tls: bool) -> str:
        return f"{'wss' if tls else 'ws'}://127.0.0.1:{port}"

    def fresh(self, name: str) -> Path:
        d = self.work / name
        shutil.rmtree(d, ignore_errors=True)
        return d

    # -- ingest ----------------------------------------------------------------------------------

    def ingest_corpus(self) -> tuple[Path, list[str]]:
        n = self.cfg.ingest_messages
        path = self.work / f"ingest-corpus-{self.cfg.ingest_symbols}-{n}.txt"
        specs = _corpus.symbols(self.cfg.ingest_symbols)
        if not path.exists():
            log(f"generating {n:,} ingest messages")
            _corpus.write(path, _corpus.generate(self.cfg.ingest_symbols, n, seed=11))
        return path, _corpus.streams_for(specs)

    def baseline(
        self, corpus: Path, streams: list[str], conns: int, tls: bool, client: tuple[int, int]
    ) -> float:
        n = self.cfg.ingest_messages
        shards = [streams[i::conns] for i in range(conns)]
        with ServerProc(self.server_spec(corpus, conns, len(streams), tls)) as srv:
            res = run_json(
                "benchmarks._client",
                {
                    "url": self.url(srv.port, tls) + "/stream",
                    "shards": shards,
                    "expected": n,
                    "message_queue_size": client[0],
                    "receive_buffer_size": client[1],
                    "ca": self.tls_files()[0] if tls else None,
                },
            )
        return float(res["n"]) / ((float(res["last"]) - float(res["first"])) / 1e9)

    def recorder(
        self,
        corpus: Path,
        streams: list[str],
        conns: int,
        tls: bool,
        *,
        profile: str | None = None,
    ) -> tuple[float, dict[str, Any]]:
        n = self.cfg.ingest_messages
        per_shard = -(-len(streams) // conns)
        root = self.fresh("ingest-archive")
        with ServerProc(self.server_spec(corpus, conns, len(streams), tls)) as srv:
            res = run_json(
                "benchmarks._recproc",
                {
                    "url": self.url(srv.port, tls),
                    "rest_url": srv.rest_url,
                    "streams": streams,
                    "root": str(root),
                    "max_streams_per_connection": per_shard,
                    "expected": n,
                    "flush_interval": 5.0,
                    "fsync": True,
                    "ca": self.tls_files()[0] if tls else None,
                    "profile": profile,
                },
            )
        if res["shards"] != conns:
            raise RuntimeError(f"recorder planned {res['shards']} connections, not {conns}")
        data_rows = res["rows_written"]
        if data_rows < n:
            raise RuntimeError(f"recorder wrote {data_rows} rows < {n} received")
        span = (res["last_recv_ns"] - res["first_recv_ns"]) / 1e9 + res["final_flush_s"]
        res["span_s"] = span
        return res["messages"] / span, res

    def tune_client(self) -> None:
        corpus, streams = self.ingest_corpus()
        rows = []
        best: tuple[float, tuple[int, int]] = (0.0, DEFAULT_CLIENT)
        for q, b in TUNE_GRID:
            rates = [self.baseline(corpus, streams, conns, False, (q, b)) for conns in (1, 8)]
            rows.append(f"| {q} | {b} | {k(rates[0])} | {k(rates[1])} |")
            score = min(rates)
            if score > best[0]:
                best = (score, (q, b))
            log(f"tune q={q} buf={b}: {rates}")
        self.client = best[1]
        self.md += [
            "### Tuning the ceiling client (trio-websocket, ws://, one run each, msgs/s)",
            "",
            "| message_queue_size | receive_buffer_size | 1 connection | 8 connections |",
            "|---:|---:|---:|---:|",
            *rows,
            "",
            f"Best (highest worse-of-the-two): message_queue_size={best[1][0]}, "
            f"receive_buffer_size={best[1][1]}; used for every ceiling below.",
            "",
        ]

    def ingest(self) -> None:
        corpus, streams = self.ingest_corpus()
        cfg = self.cfg
        self.md += [
            "## 1. Ingest: recorder end to end vs the bare transport ceiling",
            "",
            f"{cfg.ingest_messages:,} messages per run (a mix of Binance spot `trade`, "
            f"`depth@100ms` and `bookTicker` frames in combined-stream wrappers over "
            f"{len(streams)} streams, average {self.avg_size(corpus):.0f} bytes), sent as "
            "pre-built frames by a separate server process as fast as the socket takes them. "
            "Recorder: `Recorder(RecorderConfig(..., flush_interval=5, fsync=True))` in its own "
            "process, measured from the receive time of the first message to the last one plus "
            "the final flush to disk (all rows on disk). Ceiling: trio-websocket "
            "`open_websocket_url` + `get_message()` only, first to last message. "
            f"{cfg.runs} runs; each run measures both back to back.",
            "",
        ]
        if cfg.tune:
            self.tune_client()
        self.md += [
            "| transport | connections | ceiling msgs/s | recorder msgs/s | ratio (target ≥ 0.90) "
            "| recorder receive-only msgs/s | final flush s |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for tls in self.cfg.transports:
            for conns in self.cfg.connections:
                base, recr, ratio, recv_only, flush = Stat(), Stat(), Stat(), Stat(), Stat()
                for i in range(cfg.runs):
                    b = self.baseline(corpus, streams, conns, tls, self.client)
                    r, res = self.recorder(corpus, streams, conns, tls)
                    base.add(b)
                    recr.add(r)
                    ratio.add(r / b)
                    recv = (res["last_recv_ns"] - res["first_recv_ns"]) / 1e9
                    recv_only.add(res["messages"] / recv)
                    flush.add(res["final_flush_s"])
                    log(f"ingest tls={tls} conns={conns} run {i}: base {b:.0f} rec {r:.0f}")
                name = "wss:// (TLS)" if tls else "ws://"
                self.md.append(
                    f"| {name} | {conns} | {base.fmt(k)} | {recr.fmt(k)} | {ratio.fmt(x2)} | "
                    f"{recv_only.fmt(k)} | {flush.fmt(lambda v: f'{v:.2f}')} |"
                )
                self.summary.append(
                    (
                        f"ingest {name} {conns} conn",
                        "≥ 0.90 of ceiling",
                        f"{ratio.median:.2f}",
                        "met" if ratio.median >= 0.9 else "MISSED",
                    )
                )
        self.md += [
            "",
            "*Receive-only* is the recorder's rate up to its last received message, without "
            "the final flush (rows still buffered when the last frame arrived are encoded and "
            "written after it: up to `flush_interval` worth of messages).",
            "",
        ]
        try:
            self.md += self.writer_alone(corpus)
        except Exception as exc:  # it uses the writer's internals, which may move
            log(f"writer-alone measurement failed: {exc!r}")
            self.md += [f"*The archive writer alone*: failed ({exc!r}).", ""]
        if cfg.profile:
            log("profiling one more recorder run (ws://, 1 connection)")
            self.recorder(corpus, streams, 1, False, profile=str(self.work / "profile"))
            self.md += self.profile_section()

    def writer_alone(self, corpus: Path) -> list[str]:
        """The archive writer without the network, in this process: what one flush costs."""
        from recorder import VenueJob
        from recorder.archive._writer import ArchiveWriter
        from recorder.core._frame import Frame
        from recorder.core._message import Message
        from recorder.venues._adapters import make_adapter

        frames = _corpus.read(corpus)[:200_000]
        adapter = make_adapter(VenueJob("binance-spot", ("btcusdt@trade",)))
        t0 = time.time_ns()
        msgs = []
        for i, f in enumerate(frames):
            r = adapter.classify(Frame(t0 + i * 10_000, f, True))
            msgs.append(
                Message(
                    venue="binance-spot",
                    stream=r.stream,
                    channel=r.channel,
                    symbol=r.symbol,
                    recv_ns=t0 + i * 10_000,
                    conn="c#1",
                    seq=i + 1,
                    payload=f,
                )
            )
        rates: dict[str, Stat] = {"add": Stat(), "encode": Stat(), "files": Stat(), "all": Stat()}
        per_file = Stat()
        n_parts = 0
        for _ in range(self.cfg.runs):
            root = self.fresh("writer-archive")
            w = ArchiveWriter(str(root), writer_id="w0", fsync=True)
            a = time.perf_counter()
            for m in msgs:
                w.add(m)
            b = time.perf_counter()
            pending = w.take_pending()
            n_parts = len(pending)
            w.stage(pending)
            c = time.perf_counter()
            w.flush({})
            d = time.perf_counter()
            n = len(msgs)
            rates["add"].add(n / (b - a))
            rates["encode"].add(n / (c - b))
            rates["files"].add(n / (d - c))
            rates["all"].add(n / (d - a))
            per_file.add((d - c) / max(1, n_parts) * 1000)
        if self.cfg.profile:
            # What the writer (a child process of the recorder) does per flush, profiled here.
            import cProfile

            w = ArchiveWriter(str(self.fresh("writer-archive")), writer_id="w0", fsync=True)
            for m in msgs:
                w.add(m)
            prof = cProfile.Profile()
            prof.enable()
            w.flush()
            prof.disable()
            prof.dump_stats(str(self.work / "profile.flush.pstats"))
        return [
            "### The archive writer alone (no network, in this process)",
            "",
            f"The first {len(msgs):,} messages of the corpus, one flush: {n_parts} partitions "
            "(one per channel and symbol). `ArchiveWriter.add` per message; `stage` "
            "(decode, typed columns, render and compare, per channel: the batch encoder of "
            "`recorder/archive/_columnar.py`, the per-row path for rows it declines); "
            "`flush` (one part file per partition: Parquet snappy, fsync, rename, 4 threads).",
            "",
            "| step | msgs/s | µs/msg |",
            "|---|---:|---:|",
            *[
                f"| {name} | {st.fmt(k)} | {1e6 / st.median:.1f} |"
                for name, st in (
                    ("`add` (Trio thread)", rates["add"]),
                    ("`stage` (writer)", rates["encode"]),
                    ("`flush` (writer)", rates["files"]),
                    ("all", rates["all"]),
                )
            ],
            "",
            f"A flush costs {per_file.fmt(lambda v: f'{v:.2f}')} ms per part file, about "
            "whatever its size, so a flush of P partitions costs at least P times that.",
            "",
        ]

    def avg_size(self, corpus: Path) -> float:
        frames = _corpus.read(corpus)
        return sum(map(len, frames)) / max(1, len(frames))

    def profile_section(self) -> list[str]:
        import pstats

        out = [
            "### Where the recorder spends its time (cProfile, an extra ws:// 1-connection run)",
            "",
        ]
        titles = (
            ("trio", "Trio thread of the recorder process (receive path)"),
            (
                "flush",
                "The writer's flush (`ArchiveWriter.flush` of the 200,000 messages above, "
                "profiled in the benchmark process; in the recorder it runs in the writer "
                "process)",
            ),
        )
        for name, title in titles:
            path = self.work / f"profile.{name}.pstats"
            if not path.exists():
                continue
            st = pstats.Stats(str(path))
            stats: dict[tuple[str, int, str], Any] = st.stats  # type: ignore[attr-defined]
            rows = sorted(((v[2], v[3], v[1], fn) for fn, v in stats.items()), reverse=True)[:14]
            total = st.total_tt  # type: ignore[attr-defined]
            poll = "<method 'poll' of 'select.epoll' objects>"
            busy = total - sum(v[2] for fn, v in stats.items() if fn[2] == poll)
            out += [
                f"{title}: {total:.2f} s in total, {busy:.2f} s not waiting in `epoll` "
                "(profiled, so slower than the runs above). Main paths, cumulative:",
                "",
                "| path | cumulative s | share of the non-waiting time (approx.) | calls |",
                "|---|---:|---:|---:|",
            ]
            for label, (file, func) in KEY_PATHS[name]:
                for fn, v in stats.items():
                    if fn[0].endswith(file) and fn[2] == func:
                        out.append(
                            f"| {label} | {v[3]:.2f} | {100 * v[3] / busy:.0f} % | {v[1]:,} |"
                        )
                        break
            out += [
                "",
                "Top functions by own time:",
                "",
                "| function | self s | self % | cumulative s | calls |",
                "|---|---:|---:|---:|---:|",
            ]
            for tt, ct, calls, fn in rows:
                where = f"{Path(fn[0]).name}:{fn[1]} {fn[2]}"
                out.append(
                    f"| `{where}` | {tt:.2f} | {100 * tt / total:.0f} % | {ct:.2f} | {calls:,} |"
                )
            out.append("")
        return out

    # -- storage and replay ----------------------------------------------------------------------

    def storage_and_replay(self) -> None:
        cfg = self.cfg
        n = cfg.storage_messages
        n_sym = 20 if n >= 100_000 else 5
        corpus = self.work / "storage-corpus.txt"
        frames = _corpus.generate(n_sym, n, seed=23)
        _corpus.write(corpus, frames)
        streams = _corpus.streams_for(_corpus.symbols(n_sym))
        root = self.fresh("storage-archive")
        log(f"storage: recording {n:,} unique messages at {cfg.storage_rate:,.0f} msgs/s")
        with ServerProc(
            self.server_spec(
                corpus,
                1,
                len(streams),
                False,
                mode="paced",
                rate=cfg.storage_rate,
                duration=n / cfg.storage_rate + 60,
                per_conn=n,
            )
        ) as srv:
            res = run_json(
                "benchmarks._recproc",
                {
                    "url": self.url(srv.port, False),
                    "rest_url": srv.rest_url,
                    "streams": streams,
                    "root": str(root),
                    "expected": n,
                    "flush_interval": 5.0,
                    "fsync": True,
                },
            )
        from recorder.archive._writer import ArchiveWriter
        from replay import open_archive

        t0 = time.perf_counter()
        ArchiveWriter(str(root), writer_id="w0", fsync=True).recover(2**62, 0)
        compact_s = time.perf_counter() - t0
        files = [p for p in root.rglob("*.parquet") if ".ticktape-tmp" not in p.parts]
        parts_left = [p for p in files if p.name.startswith("part-")]
        pq_bytes = sum(p.stat().st_size for p in files)
        msgs = list(open_archive(str(root)))
        sent_channels = ("trade", "depth", "bookTicker")
        data = [m.payload for m in msgs if m.channel in sent_channels]
        exact = Counter(data) == Counter(frames)
        lines = b"".join(b"%d %s\n" % (m.recv_ns, m.payload) for m in msgs)
        gz6 = gzip.compress(lines, compresslevel=6)
        gz9 = gzip.compress(lines, compresslevel=9)
        gz_path = self.work / "storage-lines.txt.gz"
        gz_path.write_bytes(gz6)
        nm = len(msgs)
        ratio6 = pq_bytes / len(gz6)
        raw_bytes = sum(len(p) for p in data)
        self.md += [
            "## 2. Storage: bytes per message after compaction vs gzip'd lines",
            "",
            f"{n:,} unique messages ({n_sym * 3} streams, average {raw_bytes / len(data):.0f} "
            f"payload bytes) recorded at {cfg.storage_rate:,.0f} msgs/s through the recorder "
            f"(1 connection, ws://), then every hour compacted with `ArchiveWriter.compact` "
            f"({compact_s:.1f} s; {len(files)} files, {len(parts_left)} part files left). "
            f"Baseline: lines `<recv_ns> <raw payload>\\n` of the same {nm:,} messages "
            f"(everything `open_archive` returns, incl. {nm - len(data)} rows that the recorder "
            "added: session events, control replies and the book keeper's REST depth snapshots), "
            "gzip'd.",
            "",
            "| format | bytes | bytes/message | vs gzip -6 |",
            "|---|---:|---:|---:|",
            f"| raw lines | {len(lines):,} | {len(lines) / nm:.1f} | {len(lines) / len(gz6):.2f} |",
            f"| gzip -6 lines | {len(gz6):,} | {len(gz6) / nm:.1f} | 1.00 |",
            f"| gzip -9 lines | {len(gz9):,} | {len(gz9) / nm:.1f} | {len(gz9) / len(gz6):.2f} |",
            f"| ticktape Parquet (compacted) | {pq_bytes:,} | {pq_bytes / nm:.1f} | "
            f"**{ratio6:.2f}** |",
            "",
            f"Exact payload reproduction (multiset of data payloads read back with "
            f"`replay.open_archive` == the frames sent): **{'yes' if exact else 'NO'}**. "
            f"Rows keeping raw bytes: {res['raw_rows']:,} of {res['rows_written']:,}.",
            "",
        ]
        self.summary.append(
            (
                "storage vs gzip'd lines",
                "≤ 0.5x, exact",
                f"{ratio6:.2f}x, exact={'yes' if exact else 'NO'}",
                "met" if ratio6 <= 0.5 and exact else "MISSED",
            )
        )
        col_lines, col_bytes = column_sizes(files, pq_bytes)
        self.md[-3:-3] = [
            f"| ticktape Parquet, column chunks only (footers excluded) | {col_bytes:,} | "
            f"{col_bytes / nm:.1f} | {col_bytes / len(gz6):.2f} |"
        ]
        self.md += col_lines
        del msgs, data, lines
        self.replay(root, gz_path)

    def replay(self, root: Path, gz_path: Path) -> None:
        import polars as pl

        from replay import open_archive

        cfg = self.cfg
        rep, gzr, ratio = Stat(), Stat(), Stat()
        for i in range(cfg.runs):
            t0 = time.perf_counter()
            n1 = 0
            for m in open_archive(str(root)):
                _ = m.payload
                n1 += 1
            t1 = time.perf_counter()
            n2 = 0
            loads = orjson.loads
            with gzip.open(gz_path, "rb") as f:
                for line in f:
                    _, _, payload = line.rstrip(b"\n").partition(b" ")
                    loads(payload)
                    n2 += 1
            t2 = time.perf_counter()
            a, b = n1 / (t1 - t0), n2 / (t2 - t1)
            rep.add(a)
            gzr.add(b)
            ratio.add(a / b)
            log(f"replay run {i}: ticktape {a:.0f}/s gzip+orjson {b:.0f}/s")
        # Polars: one full channel-hour. The recording above spans well under an hour, so
        # its "hours" are a few seconds of files; a real hour of diff depth for 20 symbols
        # at 100 ms is 720,000 rows. That hour is written through the archive writer (recv
        # times spread over the hour) and compacted, as the recorder would leave it.
        hour_root = self.fresh("hour-archive")
        n_hour = cfg.scan_hour_rows
        scan_rows, files = self.write_depth_hour(hour_root, n_hour)
        glob = str(hour_root / "venue=binance-spot" / "channel=depth" / "symbol=*")
        glob += "/date=*/hour=*/*.parquet"
        schema = pl.scan_parquet(glob, hive_partitioning=False).collect_schema()
        cols = [c for c in schema.names() if c not in ("raw", "conn", "envelope")]
        cols = [c for c in cols if not isinstance(schema[c], pl.List)]
        pol = Stat()
        rows = 0
        for _ in range(max(cfg.runs, 5)):
            t0 = time.perf_counter()
            df = pl.scan_parquet(glob, hive_partitioning=False).select(cols).collect()
            dt = time.perf_counter() - t0
            rows = df.height
            pol.add(rows / dt)
        assert rows == scan_rows, (rows, scan_rows)
        n_files = files
        self.md += [
            "## 3. Replay",
            "",
            "The archive of section 2. `replay.open_archive(root)` iterated to the end "
            "(`Message` objects, `payload` touched) vs reading the gzip'd lines and "
            f"`orjson.loads` of every payload. {cfg.runs} runs.",
            "",
            "| reader | msgs/s | vs gzip+orjson (target ≥ 2x) |",
            "|---|---:|---:|",
            f"| gzip'd lines + orjson | {gzr.fmt(k)} | 1.00 |",
            f"| `replay.open_archive` | {rep.fmt(k)} | {ratio.fmt(x2)} |",
            "",
            f"Polars: `pl.scan_parquet('{glob.replace(str(hour_root), '<root>')}')"
            f".select({len(cols)} columns).collect()` — one full channel-hour of diff depth "
            f"(20 symbols at 100 ms: {rows:,} rows in {n_files} files, one per symbol, written "
            "by `ArchiveWriter` and compacted), columns "
            f"{', '.join(cols)}: **{pol.fmt(lambda v: f'{v / 1e6:.1f} M')} rows/s** "
            '(target ≥ 20 M). On a short recording\'s "hours" (a few seconds of rows per '
            "file) Polars' fixed costs per query and per file (glob, footers, about 0.1-0.2 ms "
            "per file) dominate and the rate is about half.",
            "",
        ]
        self.summary += [
            (
                "replay vs gzip+orjson",
                "≥ 2x and ≥ 1 M msgs/s",
                f"{ratio.median:.2f}x, {rep.median / 1e6:.2f} M/s",
                "met" if ratio.median >= 2 and rep.median >= 1e6 else "MISSED",
            ),
            (
                "Polars scan of one channel-hour",
                "≥ 20 M rows/s",
                f"{pol.median / 1e6:.1f} M rows/s",
                "met" if pol.median >= 20e6 else "MISSED",
            ),
        ]

    def write_depth_hour(self, root: Path, n: int) -> tuple[int, int]:
        """One hour of Binance spot diff depth for 20 symbols (``n`` messages, receive times
        spread evenly over the hour), written and compacted; returns (rows, files)."""
        from recorder.archive._writer import ArchiveWriter
        from recorder.core._message import Message

        frames = [f for f in _corpus.generate(20, n * 6, seed=11) if b"depthUpdate" in f][:n]
        hour0 = (time.time_ns() // HOUR_NS - 2) * HOUR_NS
        step = HOUR_NS // max(1, len(frames))
        w = ArchiveWriter(str(root), writer_id="w0", fsync=False)
        for i, f in enumerate(frames):
            stream = _corpus.stream_of(f)
            w.add(
                Message(
                    venue="binance-spot",
                    stream=stream,
                    channel="depth",
                    symbol=stream.split("@", 1)[0].upper(),
                    recv_ns=hour0 + i * step,
                    conn="c#1",
                    seq=i + 1,
                    payload=f,
                )
            )
            if i % 100_000 == 99_999:
                w.flush()
        w.flush()
        w.compact_closed_hours(hour0 + 2 * HOUR_NS, 0)
        files = len(list(root.rglob("data-*.parquet")))
        return len(frames), files

    # -- memory ----------------------------------------------------------------------------------

    def memory(self) -> None:
        cfg = self.cfg
        n_sym = -(-cfg.mem_streams // 3)
        streams = _corpus.streams_for(_corpus.symbols(n_sym))[: cfg.mem_streams]
        corpus = self.work / "memory-corpus.txt"
        frames = _corpus.generate(n_sym, min(300_000, max(10_000, int(cfg.mem_rate * 5))), seed=5)
        keep = set(streams)
        _corpus.write(corpus, [f for f in frames if _corpus.stream_of(f) in keep])
        root = self.fresh("memory-archive")
        dur = cfg.mem_duration
        every = max(1.0, dur / 30)
        log(f"memory: {len(streams)} streams at {cfg.mem_rate:,.0f} msgs/s for {dur:.0f} s")
        conns = -(-len(streams) // 1024)
        with ServerProc(
            self.server_spec(
                corpus,
                conns,
                len(streams),
                False,
                mode="paced",
                rate=cfg.mem_rate,
                duration=dur + 30,
            )
        ) as srv:
            res = run_json(
                "benchmarks._recproc",
                {
                    "url": self.url(srv.port, False),
                    "rest_url": srv.rest_url,
                    "streams": streams,
                    "root": str(root),
                    "duration": dur,
                    "rss_every": every,
                    "rss_cap_mb": cfg.mem_cap_mb,
                    "flush_interval": 5.0,
                    "fsync": True,
                },
                timeout=dur + 600,
            )
        samples = res["rss_samples"]
        peak = res["peak_rss_mb"]
        capped = res.get("capped_at_s")
        ran = float(capped) if capped is not None else dur
        half = [s for s in samples if s[0] >= ran / 2]
        first_half = [s for s in samples if 5 <= s[0] < ran / 2] or samples
        growth = (max(s[1] for s in half) - max(s[1] for s in first_half)) if half else 0
        rate = res["messages"] / ran
        self.md += [
            "## 4. Memory",
            "",
            f"{len(streams):,} streams on {res['shards']} connections, the server pacing "
            f"{cfg.mem_rate:,.0f} msgs/s in total (every 10 ms), recorded for {dur:.0f} s "
            "(`flush_interval=5`, `fsync=True`). RSS = the recorder process plus its children "
            "(the writer process), from `/proc/<pid>/status`: the peak from samples every "
            f"0.5 s, the table every {every:.0f} s. "
            f"Writer in a child process: {'yes' if res.get('writer_process') else 'no'}.",
            "",
            (
                f"**Stopped early at {capped:.0f} s: RSS passed the {cfg.mem_cap_mb} MB safety "
                "cap (`--mem-cap-mb`).** "
                if capped is not None
                else ""
            )
            + f"Peak RSS **{peak:.0f} MB** (target ≤ 300 MB, includes the final flush of the "
            f"backlog: {res['final_flush_s']:.1f} s); max RSS in the second half minus "
            f"max in the first half: {growth:+d} MB; received {res['messages']:,} messages = "
            f"{rate:,.0f} msgs/s on average (sent: {cfg.mem_rate:,.0f}/s), "
            f"rows written {res['rows_written']:,}, reconnects {res['reconnects']}.",
            "",
            "*Not on disk yet* = received - written: rows in the buffers plus the rows of "
            "the flush in progress (`rows_written` grows when a whole flush ends). It stays "
            f"below ~{3 * 5 * cfg.mem_rate:,.0f} (3 flush intervals) when the writer keeps up.",
            "",
            "| t (s) | RSS (MB) | of which the receiving process | messages received | "
            "rows written | not on disk yet |",
            "|---:|---:|---:|---:|---:|---:|",
            *[
                f"| {t:.0f} | {r} | {own} | {m:,} | {w:,} | {m - w:,} |"
                for t, r, m, _, w, own in samples
            ],
            "",
        ]
        backlog = samples[-1][2] - samples[-1][4] if samples else 0
        kept_up = rate >= 0.97 * cfg.mem_rate and backlog <= 3 * 5.0 * cfg.mem_rate
        self.summary.append(
            (
                f"memory, {len(streams)} streams at {cfg.mem_rate / 1000:.0f}k msgs/s, {dur:.0f} s",
                "≤ 300 MB, flat",
                f"peak {peak:.0f} MB, drift {growth:+d} MB, kept up: {'yes' if kept_up else 'no'}"
                + (f", stopped at {capped:.0f} s by the RSS cap" if capped is not None else ""),
                "met" if peak <= 300 and growth <= 20 and kept_up else "MISSED",
            )
        )

    # -- scale -----------------------------------------------------------------------------------

    def scale(self) -> None:
        cfg = self.cfg
        self.md += ["## 5. Scale", ""]
        res = run_json(
            "benchmarks._scaleproc",
            {"streams": cfg.scale_streams, "root": str(self.fresh("scale-archive"))},
            timeout=900,
        )
        shard_sizes: list[int] = res["shard_sizes"]
        per_req, rate = 200, 5

        def lb(sizes: Sequence[int]) -> float:
            # k SUBSCRIBEs on one connection: 5 in any 1 s window, so the last one goes out
            # no earlier than floor((k - 1) / 5) s after the first.
            return max(((-(-s // per_req)) - 1) // rate for s in sizes)

        lb_plan = lb(shard_sizes)
        n = cfg.scale_streams
        ideal_conns = -(-n // 1024)
        ideal = [n // ideal_conns + (1 if i < n % ideal_conns else 0) for i in range(ideal_conns)]
        lb_ideal = lb(ideal)
        spaced = max((-(-s // per_req) - 1) / rate for s in shard_sizes)
        floor = res["one_subscribe_s"]
        measured = res["subscribed_s"]
        bound = lb_plan + floor
        self.md += [
            f"### Subscribing {n:,} Binance streams (simulator `replay.sim.Simulator`, which "
            "enforces 5 msgs/s per connection, 1024 streams per connection and 300 "
            "connections per 5 min)",
            "",
            "Streams `<symbol>@trade`, `@aggTrade` and `@bookTicker` (no diff depth, so no "
            "REST snapshots competing with the simulator, which runs in the same process).",
            "",
            f"Recorder plan: {len(shard_sizes)} connections of {', '.join(map(str, shard_sizes))} "
            f"streams, ≤ {per_req} streams per SUBSCRIBE. Time from `Recorder.run` start to every "
            f"shard subscribed: **{measured:.2f} s**. Lower bound for this plan: "
            f"{lb_plan:.0f} s of rate-limit waits (the connection with the most SUBSCRIBEs, "
            f"5 per second) + {floor:.2f} s for connecting and one subscribe round trip "
            f"(measured with one connection and {per_req} streams) = {bound:.2f} s; "
            f'ratio **{measured / bound:.2f}**. Reading "5 msgs/s" strictly as one message '
            f"every 200 ms instead: {spaced:.1f} s + {floor:.2f} s = {spaced + floor:.2f} s, "
            f"ratio {measured / (spaced + floor):.2f}. "
            f"(Any plan needs ≥ {ideal_conns} connections; "
            f"spreading evenly over {ideal_conns} gives a rate-limit bound of {lb_ideal:.0f} s; "
            "300 connection attempts per 5 min never bind here.) "
            f"Rate-limit disconnects: **{res['rate_limit_closes']}**; connections opened: "
            f"{res['connections_total']}; streams refused: {res['refused']}.",
            "",
        ]
        self.summary.append(
            (
                f"subscribe {n:,} streams",
                "≈ rate-limit bound, 0 rate-limit closes",
                f"{measured:.2f} s = {measured / bound:.2f}x bound "
                f"({measured / (spaced + floor):.2f}x the 200 ms-spaced bound), "
                f"{res['rate_limit_closes']} closes",
                "met" if res["rate_limit_closes"] == 0 and measured / bound <= 1.5 else "MISSED",
            )
        )
        self.workers()

    def workers(self) -> None:
        from recorder.capture._shard import split_for_workers

        cfg = self.cfg
        corpus, streams = self.ingest_corpus()
        per_shard = 30
        per_stream = Counter(_corpus.stream_of(f) for f in _corpus.read(corpus))
        rows = []
        errors: list[str] = []
        base_rate: float | None = None
        for n in cfg.workers:
            shares = [split_for_workers(streams, i, n) for i in range(n)]
            plans = [plan_count(s, per_shard) for s in shares]
            conns = sum(plans)
            expected = [sum(per_stream[x] for x in share) for share in shares]
            stat = Stat()
            for _ in range(cfg.runs):
                root = self.fresh("workers-archive")
                with ServerProc(self.server_spec(corpus, conns, len(streams), False)) as srv:
                    procs = [
                        start_json(
                            "benchmarks._recproc",
                            {
                                "url": self.url(srv.port, False),
                                "rest_url": srv.rest_url,
                                "streams": share,
                                "root": str(root),
                                "writer_id": f"w{i}",
                                "max_streams_per_connection": per_shard,
                                "expected": expected[i],
                                "flush_interval": 5.0,
                                "fsync": True,
                            },
                        )
                        for i, share in enumerate(shares)
                    ]
                    try:
                        outs = [finish_json(p, "benchmarks._recproc") for p in procs]
                    except RuntimeError as exc:
                        for p in procs:
                            p.kill()
                            p.wait()
                        errors.append(f"{n} workers: {exc}")
                        log(f"workers={n}: failed")
                        continue
                first = min(o["first_recv_ns"] for o in outs)
                end = max(o["done_ns"] for o in outs)
                total = sum(o["messages"] for o in outs)
                stat.add(total / ((end - first) / 1e9))
                log(f"workers={n}: {stat.values[-1]:.0f}")
            if not stat.values:
                shares_txt = ", ".join(str(len(s)) for s in shares)
                rows.append(f"| {n} | {conns} | {shares_txt} | FAILED (see below) | |")
                continue
            if base_rate is None:
                base_rate = stat.median
            rows.append(
                f"| {n} | {conns} | {', '.join(str(len(s)) for s in shares)} | {stat.fmt(k)} | "
                f"{stat.median / base_rate:.2f} |"
            )
        self.md += [
            "### Ingest vs workers",
            "",
            "`ticktape record --workers N` exists: it starts N processes, each recording the "
            "share `split_for_workers(streams, i, N)` with writer id `w<i>` into "
            "the same archive. The benchmark starts the same N processes itself (its recorder "
            "wrapper, so that each stops when its messages are in, and times are exact), same "
            f"split, same writer ids, one archive; {len(streams)} streams, ≤ {per_shard} streams "
            f"per connection, {cfg.ingest_messages:,} messages in total, ws://. Rate = messages "
            "/ (first receive to the last process's final flush done).",
            "",
            "| workers | connections | streams per worker | msgs/s | vs 1 worker |",
            "|---:|---:|---|---:|---:|",
            *rows,
            "",
            f"The machine has {os.cpu_count()} cores and the server process needs one share "
            "of them: more workers than cores cannot scale.",
            "",
        ]
        if errors:
            self.summary.append(
                ("ingest vs workers", "runs", f"{len(errors)} run(s) failed", "FAILED")
            )
        for e in errors:
            self.md += ["A failed run (error trimmed):", "", "```", e[:2500], "[...]"]
            self.md += [e[-2500:], "```", ""]

    # -- report ----------------------------------------------------------------------------------

    def report(self, argv: Sequence[str], started: float) -> str:
        head = [
            "# ticktape benchmarks",
            "",
            "Generated by `make bench` (`benchmarks/run.py`); do not edit by hand.",
            "",
            f"Command: `{' '.join(shlex.quote(a) for a in argv)}` "
            f"(run at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, took "
            f"{(time.time() - started) / 60:.1f} min). Everything on 127.0.0.1.",
            "",
            "| machine | |",
            "|---|---|",
            *[f"| {a} | {b} |" for a, b in self.machine],
            (
                "| load average at the end (1/5/15 min) | "
                + " / ".join(f"{x:.2f}" for x in os.getloadavg())
                + " |"
            ),
            "",
            "| versions | |",
            "|---|---|",
            *[f"| {a} | {b} |" for a, b in versions()],
            "",
            "## Summary",
            "",
            "| what | target | measured (median) | |",
            "|---|---|---|---|",
            *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.summary],
            "",
        ]
        missed = [(a, c) for a, _, c, d in self.summary if d == "MISSED"]
        if missed:
            head += [
                "## Missed targets: by how much and why",
                "",
                "The why is from the profile in section 1 and the tables below, at the commit "
                "above; re-check it after changing the hot path.",
                "",
            ]
            seen: set[str] = set()
            for what, got in missed:
                key = what.split()[0].rstrip(",")
                why = WHY.get(key, "")
                head.append(f"- **{what}**: {got}. {why if key not in seen else '(see above)'}")
                seen.add(key)
            head.append("")
        if self.notes:
            head += ["## Notes", "", *[f"- {n}" for n in self.notes], ""]
        return "\n".join(head + self.md) + "\n"


WHY = {
    "ingest": (
        "Two halves. (1) The Trio thread: frame parsing is no longer where it goes (data "
        "frames are cut out of each read by `_wsframes.FrameSplitter`, wsproto sees only "
        "control frames: compare *receive-only* with the ceiling); in the profile most of its "
        "busy time is per-message work after receiving, `FanOut.put` (`ArchiveWriter.add` and "
        "the order-book keeper parsing every depth message) and `classify`. "
        "(2) The writer: every message is decoded, its typed row rendered back and compared "
        "with the payload, and every flush writes one Parquet file per (channel, symbol) "
        "partition with an fsync each (see *the archive writer alone*: µs per message and ms "
        "per file). With `RecorderConfig.writer_process` (the default) that runs in a child "
        "process, but this machine has 2 cores for the server, the receive loop and the "
        "writer; and the final flush of the last `flush_interval` of messages is inside the "
        "measured time (column *final flush*)."
    ),
    "storage": (
        "See section 2: decimals are float64 + a digit count, ids and times int64 per row, "
        "every file of a (channel, symbol, hour) partition carries its own footer and Arrow "
        "schema metadata (bytes per file in the table), and recv_time/seq are stored per row; "
        "gzip sees the JSON text's redundancy across rows of every stream at once."
    ),
    "replay": (
        "`open_archive` yields one Python `Message` per row, with its payload rendered back "
        "from the typed columns. Per message, on one thread (measured on this archive): "
        "Parquet decoding ~250-280 ns (82 small files), batch rendering of payloads with Arrow "
        "string kernels ~350-400 ns (about 7 ns per literal piece per row and 15-20 ns per "
        "integer formatted), the batched merge of an hour's files ~150-180 ns, `Message` "
        "creation and the loop ~180-250 ns: about 1 µs, against 1.5-1.6 µs for gzip + orjson. "
        "Decoding and rendering run on a producer thread and a small pool, mostly without the "
        "GIL, but on 2 cores shared with the consumer they overlap little."
    ),
    "Polars": (
        "A channel-hour is one file per symbol; with few rows per file Polars spends its time "
        "opening files and reading footers (see the rows and files counts in section 3)."
    ),
    "memory": (
        "Flat and kept up (section 4), but two Python processes. The receiving process "
        "(~200-220 MB): the interpreter, pyarrow and the rest ~93 MB; the order books of 667 "
        "diff-depth streams and, while they wait their turn for a REST snapshot under the "
        "weight limit, the last 10 s of their events; about a second of buffered messages. "
        "The writer process (~250 MB, 74 MB idle): the staged Arrow tables of up to one flush "
        "interval plus the one being written, the batch being encoded (parsed JSON) and the "
        "allocators' high-water marks. Running the writer in the receiving process "
        "(`writer_process=False`) measured more (509 MB over 60 s)."
    ),
    "subscribe": (
        "`Recorder._start_job` starts shards one after another and `await "
        "nursery.start(runner.run)` returns only once that shard's first session has "
        "subscribed (or failed), so the shards' subscribe times add up instead of overlapping; "
        "and the per-connection limiter keeps 1 msg/s of headroom (4 SUBSCRIBEs/s, so 5 "
        "batches take ~1 s)."
    ),
}


KEY_PATHS: dict[str, list[tuple[str, tuple[str, str]]]] = {
    "trio": [
        ("`_connection._receive_loop` (everything per frame)", ("_connection.py", "_receive_loop")),
        ("`_ws.WsClient.receive`", ("_ws.py", "receive")),
        ("`_wsframes.FrameSplitter._scan` (data frames)", ("_wsframes.py", "_scan")),
        ("wsproto `events()` (other frames)", ("wsproto/__init__.py", "events")),
        ("`_adapters.BinanceAdapter.classify`", ("_adapters.py", "classify")),
        ("`_recorder.FanOut.put`", ("_recorder.py", "put")),
        ("`_archive.ArchiveWriter.add`", ("_archive.py", "add")),
        ("`_paths.date_hour` (in `add`)", ("_paths.py", "date_hour")),
        ("`_books.BookKeeper.observe` (in `put`)", ("_books.py", "observe")),
    ],
    "flush": [
        ("`ArchiveWriter.flush`", ("_archive.py", "flush")),
        ("`ArchiveWriter._stage` (encoding)", ("_archive.py", "_stage")),
        ("`_archive._encode`", ("_archive.py", "_encode")),
        ("`ColumnarEncoder._encode` (batch encoder)", ("_columnar.py", "_encode")),
        ("`_columnar._objects` (orjson per payload)", ("_columnar.py", "_objects")),
        ("`_archive._encode_rows` (per-row path)", ("_archive.py", "_encode_rows")),
        ("`_archive._merge_staged`", ("_archive.py", "_merge_staged")),
        (
            "waiting for the part-file threads (Parquet, fsync, rename)",
            ("~", "<method 'acquire' of '_thread.lock' objects>"),
        ),
    ],
}


def column_sizes(files: Sequence[Path], total: int) -> tuple[list[str], int]:
    """Where the Parquet bytes go: compressed column chunks by column, and the rest."""
    import pyarrow.parquet as pq

    by_col: Counter[str] = Counter()
    by_channel: Counter[str] = Counter()
    rows: Counter[str] = Counter()
    for p in files:
        md = pq.ParquetFile(p).metadata
        channel = next((x.split("=", 1)[1] for x in p.parts if x.startswith("channel=")), "?")
        by_channel[channel] += p.stat().st_size
        rows[channel] += md.num_rows
        for rg in range(md.num_row_groups):
            g = md.row_group(rg)
            for c in range(g.num_columns):
                col = g.column(c)
                name = col.path_in_schema.split(".")[0]
                by_col[f"{channel}.{name}"] += col.total_compressed_size
    data = sum(by_col.values())
    out = [
        f"Where the bytes go: {len(files)} files; column chunks {data:,} bytes, the rest "
        f"(footers, schemas, metadata: {total - data:,} bytes = "
        f"{(total - data) / max(1, len(files)):,.0f} bytes per file).",
        "",
        "| channel | rows | bytes | bytes/row |",
        "|---|---:|---:|---:|",
        *[
            f"| {ch} | {rows[ch]:,} | {b:,} | {b / max(1, rows[ch]):.1f} |"
            for ch, b in by_channel.most_common()
        ],
        "",
        "| column (compressed, all files) | bytes | share |",
        "|---|---:|---:|",
        *[
            f"| {name} | {b:,} | {100 * b / max(1, total):.1f} % |"
            for name, b in by_col.most_common(15)
        ],
        "",
    ]
    return out, data


def plan_count(streams: Sequence[str], max_per_conn: int) -> int:
    """How many connections the recorder plans for ``streams`` (binance-spot)."""
    from recorder import VenueJob
    from recorder.capture._shard import StreamSpec, plan_shards
    from recorder.venues._adapters import make_adapter

    adapter = make_adapter(VenueJob("binance-spot", tuple(streams)))
    specs = [StreamSpec(s, route=adapter.route_of(s), weight=adapter.weight_of(s)) for s in streams]
    limits = replace(adapter.plan_limits, max_streams_per_connection=max_per_conn)
    return len(plan_shards(specs, limits))


SECTIONS = ("ingest", "storage", "memory", "scale")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--messages", type=int, help="messages per ingest run")
    ap.add_argument("--storage-messages", type=int)
    ap.add_argument("--mem-duration", type=float, help="seconds (default 300)")
    ap.add_argument("--mem-rate", type=float)
    ap.add_argument("--mem-streams", type=int)
    ap.add_argument("--mem-cap-mb", type=int, help="stop the memory run above this RSS")
    ap.add_argument("--scale-streams", type=int)
    ap.add_argument("--no-tune", action="store_true")
    ap.add_argument("--transport", action="append", choices=("ws", "wss"), help="ingest only")
    ap.add_argument("--connections", action="append", type=int, help="ingest only")
    ap.add_argument("--only", action="append", choices=SECTIONS)
    ap.add_argument("--workdir", help="keep the work files here (default: a temp dir)")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    over: dict[str, Any] = {}
    for name, key in (
        ("runs", "runs"),
        ("messages", "ingest_messages"),
        ("storage_messages", "storage_messages"),
        ("mem_duration", "mem_duration"),
        ("mem_rate", "mem_rate"),
        ("mem_streams", "mem_streams"),
        ("mem_cap_mb", "mem_cap_mb"),
        ("scale_streams", "scale_streams"),
    ):
        v = getattr(args, name)
        if v is not None:
            over[key] = v
    if args.no_tune:
        over["tune"] = False
    if args.transport:
        over["transports"] = tuple(t == "wss" for t in args.transport)
    if args.connections:
        over["connections"] = tuple(args.connections)
    cfg = replace(cfg, **over)
    started = time.time()
    tmp = None
    if args.workdir:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="ticktape-bench-")
        work = Path(tmp.name)
    try:
        b = Bench(cfg, work)
        sections = args.only or SECTIONS
        failed = 0
        for name, run in (
            ("ingest", b.ingest),
            ("storage", b.storage_and_replay),
            ("memory", b.memory),
            ("scale", b.scale),
        ):
            if name not in sections:
                continue
            try:
                run()
            except Exception as exc:  # one broken section must not lose the others
                failed += 1
                log(f"section {name} failed: {exc}")
                (work / f"{name}-error.txt").write_text(str(exc))
                b.summary.append((f"section {name}", "runs", "FAILED (see below)", "FAILED"))
                b.md += [
                    f"## Section {name}: FAILED",
                    "",
                    "```",
                    str(exc)[-4000:],
                    "```",
                    "",
                ]
        cmd = [
            "python",
            "-m",
            "benchmarks.run",
            *(list(argv) if argv is not None else sys.argv[1:]),
        ]
        text = b.report(cmd, started)
        Path(args.out).write_text(text, encoding="utf-8")
        log(f"wrote {args.out}")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
