"""Job configuration: a TOML file and/or command-line options, validated before connecting.

Example ``job.toml``::

    root = "archive"
    flush_interval = 5

    [[venues]]
    venue = "binance-spot"
    symbols = ["BTCUSDT", "ETHUSDT"]
    channels = ["trade", "depth@100ms", "bookTicker"]

    [[venues]]
    venue = "bybit-linear"
    streams = ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"]

``channels`` are stream suffixes: Binance ``<symbol>@<channel>`` (``trade``, ``kline_1m``,
``depth@100ms``), Bybit ``<channel>.<SYMBOL>`` (``orderbook.50``, ``publicTrade``, ``kline.1``).
"""

from __future__ import annotations

import math
import os
import ssl
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from recorder.capture._connection import Timing
from recorder.capture._metrics import HealthPolicy
from recorder.capture._shard import split_for_host, split_for_workers
from recorder.capture._universe import expand_streams
from recorder.core._errors import ConfigError
from recorder.venues import VENUES, UniverseSelect, VenueJob


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
    writer_process: bool = True
    """Encode and write Parquet in a child process, on another core than the receive loop."""
    encode_interval: float = 1.0
    """Seconds between handing buffered messages to the writer to be encoded; they are
    written to disk every ``flush_interval``. Encoding as they come keeps the buffers small
    and leaves little to do at each flush (and at shutdown)."""

    metrics_port: int | None = None
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on this port (0 = any free port)."""
    metrics_host: str = "127.0.0.1"
    """Where the metrics endpoint listens (``0.0.0.0`` to let a scraper on the network in)."""
    health: HealthPolicy = field(default_factory=HealthPolicy)
    """When ``/readyz`` answers 200."""

    def __post_init__(self) -> None:
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port must be in 0..65535, got {self.metrics_port}")
        for j in self.jobs:
            if j.select is not None and not j.channels:
                raise ConfigError(f"{j.venue}: a symbol selection needs 'channels'")
            if j.refresh_interval < 10:
                raise ConfigError(f"{j.venue}: refresh_interval must be >= 10 s")
        if not 0 < self.flush_interval <= 60:
            raise ConfigError(
                f"flush_interval must be in (0, 60] seconds, got {self.flush_interval}"
            )
        if not 0 < self.encode_interval <= 60:
            raise ConfigError(
                f"encode_interval must be in (0, 60] seconds, got {self.encode_interval}"
            )
        if not (math.isfinite(self.compaction_grace) and self.compaction_grace >= 0):
            raise ConfigError(f"compaction_grace must be >= 0 seconds, got {self.compaction_grace}")
        if not self.jobs:
            raise ConfigError("nothing to record: no venue with streams was configured")


def _number(v: object, what: str, *, lo: float, hi: float = math.inf) -> float:
    """``v`` as a finite number in ``[lo, hi]`` (TOML's ``true`` is not a number of seconds)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{what} must be a number, got {v!r}")
    if not (math.isfinite(v) and lo <= v <= hi):
        bounds = f">= {lo:g}" if hi == math.inf else f"in [{lo:g}, {hi:g}]"
        raise ConfigError(f"{what} must be {bounds}, got {v!r}")
    return float(v)


def _opt_str(t: Mapping[str, Any], key: str, where: str) -> str | None:
    v = t.get(key)
    if v is not None and not isinstance(v, str):
        raise ConfigError(f"{where}: {key!r} must be a string, got {v!r}")
    return v


def check_url(u: object, what: str, schemes: tuple[str, ...]) -> str:
    """``u`` if it is a URL of one of ``schemes`` with a host and a valid port."""
    if not isinstance(u, str):
        raise ConfigError(f"{what} must be a URL string, got {u!r}")
    try:
        parts = urlsplit(u)
        port = parts.port  # ValueError when not a number in 0..65535
    except ValueError as exc:
        raise ConfigError(f"{what} is not a valid URL ({exc}): {u!r}") from None
    if parts.scheme.lower() not in schemes:
        raise ConfigError(
            f"{what} must be a {' or '.join(s + '://' for s in schemes)} URL, got {u!r}"
        )
    if not parts.hostname:
        raise ConfigError(f"{what} has no host: {u!r}")
    if port == 0:
        raise ConfigError(f"{what} has port 0: {u!r}")
    return u


def check_root(root: str) -> None:
    """A local archive root must be a directory, or creatable as one, and writable: found
    now rather than by the writer after the connections are up. Object-store roots (URIs)
    are checked by the writer when it opens them, also before anything connects."""
    if "://" in root:
        return
    path = Path(root).absolute()
    probe = path
    while not probe.exists():
        if probe.is_symlink():
            raise ConfigError(f"archive root {root}: {probe} is a dangling symbolic link")
        probe = probe.parent
    if not probe.is_dir():
        where = "is" if probe == path else f"is under {probe}, which is"
        raise ConfigError(f"archive root {root} {where} not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"archive root {root}: {probe} is not writable")


def _strs(table: Mapping[str, Any], key: str, where: str) -> list[str]:
    v = table.get(key, [])
    if isinstance(v, str):
        v = [x for x in v.split(",") if x]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{where}: {key!r} must be a list of strings")
    return [x.strip() for x in v]


def job_from_table(t: object, where: str) -> VenueJob:
    if not isinstance(t, Mapping):
        raise ConfigError(f"{where}: each venue must be a table ([[venues]]), got {t!r}")
    venue = t.get("venue")
    if venue not in VENUES:
        raise ConfigError(f"{where}: venue must be one of {', '.join(VENUES)}; got {venue!r}")
    known = {
        "venue",
        "streams",
        "symbols",
        "channels",
        "ws_url",
        "rest_url",
        "max_streams_per_connection",
        "api_key_env",
        "api_key_file",
        "select",
        "refresh_interval",
    }
    unknown = set(t) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    streams = _strs(t, "streams", where)
    symbols = _strs(t, "symbols", where)
    channels = _strs(t, "channels", where)
    if bool(symbols) != bool(channels) and t.get("select") is None:
        raise ConfigError(f"{where}: 'symbols' and 'channels' go together")
    select = _select(t.get("select"), where)
    if select is not None:
        if not channels:
            raise ConfigError(f"{where}: 'select' needs 'channels'")
        if symbols:
            raise ConfigError(f"{where}: give either 'symbols' or 'select', not both")
    else:
        streams += expand_streams(venue, symbols, channels)
    if not streams and select is None:
        raise ConfigError(
            f"{where}: no streams (give 'streams', 'symbols' and 'channels', or 'select')"
        )
    refresh = _number(
        t.get("refresh_interval", 3600.0), f"{where}: refresh_interval (seconds)", lo=10
    )
    msc = t.get("max_streams_per_connection")
    if msc is not None and (
        isinstance(msc, bool) or not isinstance(msc, int) or not 1 <= msc <= 1024
    ):
        raise ConfigError(f"{where}: max_streams_per_connection must be an integer in 1..1024")
    ws = t.get("ws_url")
    if ws is not None:
        check_url(ws, f"{where}: ws_url", ("ws", "wss"))
    rest = t.get("rest_url")
    if rest is not None:
        check_url(rest, f"{where}: rest_url", ("http", "https"))
    return VenueJob(
        venue=venue,
        streams=tuple(dict.fromkeys(streams)),
        ws_url=ws,
        rest_url=rest,
        max_streams_per_connection=msc,
        api_key_env=_opt_str(t, "api_key_env", where),
        api_key_file=_opt_str(t, "api_key_file", where),
        select=select,
        channels=tuple(channels) if select is not None else (),
        refresh_interval=refresh,
    )


def _select(v: Any, where: str) -> UniverseSelect | None:
    """``select = {quote = "USDT", status = "TRADING", base = ..., match = ..., max_symbols}``."""
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ConfigError(f"{where}: 'select' must be a table, e.g. {{quote = \"USDT\"}}")
    known = {"quote", "base", "status", "match", "max_symbols"}
    if set(v) - known:
        raise ConfigError(f"{where}: unknown keys in 'select': {sorted(set(v) - known)}")
    for k in ("quote", "base", "status", "match"):
        if v.get(k) is not None and not isinstance(v[k], str):
            raise ConfigError(f"{where}: select.{k} must be a string, got {v[k]!r}")
    cap = v.get("max_symbols")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int)):
        raise ConfigError(f"{where}: select.max_symbols must be an integer, got {cap!r}")
    return UniverseSelect(
        quote=v.get("quote"),
        base=v.get("base"),
        status=v.get("status", "TRADING"),
        match=v.get("match"),
        max_symbols=cap,
    )


def parse_share(text: str | None, what: str) -> tuple[int, int] | None:
    """``"I/N"`` (0-based I) as a tuple; raises ConfigError when malformed."""
    if text is None:
        return None
    i, sep, n = text.partition("/")
    if not sep or not i.isdigit() or not n.isdigit() or not 0 <= int(i) < int(n):
        raise ConfigError(f"{what} must be I/N with 0 <= I < N, got {text!r}")
    return int(i), int(n)


def default_writer_id() -> str:
    """A writer id stable for this host (recovery adopts the parts of its own writer id)."""
    import socket

    return socket.gethostname() or "w0"


def load_config(
    path: str | None,
    *,
    root: str | None = None,
    venue: str | None = None,
    streams: Sequence[str] = (),
    symbols: Sequence[str] = (),
    channels: Sequence[str] = (),
    ws_url: str | None = None,
    rest_url: str | None = None,
    flush_interval: float | None = None,
    writer_id: str | None = None,
    shard: tuple[int, int] | None = None,
    worker: tuple[int, int] | None = None,
    metrics_port: int | None = None,
    metrics_host: str | None = None,
) -> RecorderConfig:
    """Merge a TOML file with command-line options (options win) into a validated config."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}, line {line})") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    top_known = {
        "root",
        "flush_interval",
        "writer_id",
        "venues",
        "compaction_grace",
        "shard",
        "metrics_port",
        "metrics_host",
    }
    unknown = set(data) - top_known
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}")
    tables = data.get("venues", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{path}: 'venues' must be an array of tables ([[venues]])")
    jobs = [job_from_table(t, f"{path} venues[{i}]") for i, t in enumerate(tables)]
    seen: set[str] = set()
    for j in jobs:
        if j.venue in seen:
            # Shards, plans and connection ids are per venue: two tables would collide.
            raise ConfigError(f"{path}: venue {j.venue} is configured twice; merge its tables")
        seen.add(j.venue)
    if ws_url:
        check_url(ws_url, "--ws-url", ("ws", "wss"))
    if rest_url:
        check_url(rest_url, "--rest-url", ("http", "https"))
    if venue is not None or streams or symbols:
        t: dict[str, Any] = {"venue": venue or (jobs[0].venue if len(jobs) == 1 else None)}
        if streams:
            t["streams"] = list(streams)
        if symbols:
            t["symbols"] = list(symbols)
            t["channels"] = list(channels) or ["trade"]
        if ws_url:
            t["ws_url"] = ws_url
        if rest_url:
            t["rest_url"] = rest_url
        cli_job = job_from_table(t, "command line")
        jobs = [j for j in jobs if j.venue != cli_job.venue] + [cli_job]
    elif ws_url or rest_url:
        if len(jobs) != 1:
            raise ConfigError("--ws-url/--rest-url need exactly one venue")
        j = jobs[0]
        jobs = [replace(j, ws_url=ws_url or j.ws_url, rest_url=rest_url or j.rest_url)]
    if shard is None and "shard" in data:
        shard = parse_share(str(data["shard"]), "shard")
    # Hosts (--shard I/N) and workers (--workers N) take disjoint, stable shares of the
    # streams: a stream's share depends on its name only, so adding one never moves others.
    if shard is not None or worker is not None:
        shared = []
        for j in jobs:
            streams = list(j.streams)
            if shard is not None:
                streams = split_for_host(streams, *shard)
            if worker is not None:
                streams = split_for_workers(streams, *worker)
            if streams:
                shared.append(replace(j, streams=tuple(streams)))
        if not shared:
            raise ConfigError(
                "this share of the streams is empty (more shards/workers than streams)"
            )
        jobs = shared
    root = root or data.get("root")
    if not root or not isinstance(root, str):
        raise ConfigError("no archive root: pass --root DIR or set root in the config")
    check_root(root)
    fi = flush_interval if flush_interval is not None else data.get("flush_interval", 5.0)
    if isinstance(fi, bool) or not isinstance(fi, int | float):
        raise ConfigError(f"flush_interval must be a number of seconds, got {fi!r}")
    grace = _number(data.get("compaction_grace", 30.0), "compaction_grace (seconds)", lo=0)
    file_wid = data.get("writer_id")
    if file_wid is not None and (not isinstance(file_wid, str) or not file_wid):
        raise ConfigError(f"writer_id must be a non-empty string, got {file_wid!r}")
    wid = writer_id or file_wid or default_writer_id()
    if shard is not None:
        wid += f"-h{shard[0]}of{shard[1]}"
    if worker is not None:
        wid += f"-w{worker[0]}"
    port = metrics_port if metrics_port is not None else data.get("metrics_port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
        raise ConfigError("metrics_port must be a port number")
    if port and worker is not None:
        port += worker[0]  # one endpoint per worker process: base port + worker index
    host = metrics_host or data.get("metrics_host") or "127.0.0.1"
    if not isinstance(host, str):
        raise ConfigError("metrics_host must be a string")
    return RecorderConfig(
        metrics_port=port,
        metrics_host=host,
        root=root,
        jobs=tuple(jobs),
        worker_count=worker[1] if worker is not None else 1,
        writer_id=wid,
        flush_interval=float(fi),
        compaction_grace=grace,
    )
