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

import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from recorder._errors import ConfigError
from recorder._recorder import RecorderConfig, VenueJob

VENUES = (
    "binance-spot",
    "binance-usdm",
    "binance-sbe",
    "bybit-spot",
    "bybit-linear",
    "bybit-inverse",
    "bybit-option",
)


def expand_streams(venue: str, symbols: Sequence[str], channels: Sequence[str]) -> list[str]:
    """Stream names for every (symbol, channel) pair, in the venue's naming scheme."""
    if venue.startswith("bybit"):
        return [f"{ch}.{sym.upper()}" for sym in symbols for ch in channels]
    return [f"{sym.lower()}@{ch}" for sym in symbols for ch in channels]


def _strs(table: Mapping[str, Any], key: str, where: str) -> list[str]:
    v = table.get(key, [])
    if isinstance(v, str):
        v = [x for x in v.split(",") if x]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{where}: {key!r} must be a list of strings")
    return [x.strip() for x in v]


def job_from_table(t: Mapping[str, Any], where: str) -> VenueJob:
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
    }
    unknown = set(t) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    streams = _strs(t, "streams", where)
    symbols = _strs(t, "symbols", where)
    channels = _strs(t, "channels", where)
    if bool(symbols) != bool(channels):
        raise ConfigError(f"{where}: 'symbols' and 'channels' go together")
    streams += expand_streams(venue, symbols, channels)
    if not streams:
        raise ConfigError(f"{where}: no streams (give 'streams', or 'symbols' and 'channels')")
    msc = t.get("max_streams_per_connection")
    if msc is not None and (not isinstance(msc, int) or not 1 <= msc <= 1024):
        raise ConfigError(f"{where}: max_streams_per_connection must be an integer in 1..1024")
    for k in ("ws_url", "rest_url"):
        u = t.get(k)
        if u is not None and (not isinstance(u, str) or "://" not in u):
            raise ConfigError(f"{where}: {k} must be a URL, got {u!r}")
    return VenueJob(
        venue=venue,
        streams=tuple(dict.fromkeys(streams)),
        ws_url=t.get("ws_url"),
        rest_url=t.get("rest_url"),
        max_streams_per_connection=msc,
        api_key_env=t.get("api_key_env"),
        api_key_file=t.get("api_key_file"),
    )


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
) -> RecorderConfig:
    """Merge a TOML file with command-line options (options win) into a validated config."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    top_known = {"root", "flush_interval", "writer_id", "venues", "compaction_grace"}
    unknown = set(data) - top_known
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}")
    tables = data.get("venues", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{path}: 'venues' must be an array of tables ([[venues]])")
    jobs = [job_from_table(t, f"{path} venues[{i}]") for i, t in enumerate(tables)]
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
        jobs = [
            VenueJob(
                j.venue,
                j.streams,
                ws_url or j.ws_url,
                rest_url or j.rest_url,
                j.max_streams_per_connection,
                j.api_key_env,
                j.api_key_file,
            )
        ]
    root = root or data.get("root")
    if not root or not isinstance(root, str):
        raise ConfigError("no archive root: pass --root DIR or set root in the config")
    fi = flush_interval if flush_interval is not None else data.get("flush_interval", 5.0)
    if not isinstance(fi, int | float):
        raise ConfigError("flush_interval must be a number of seconds")
    return RecorderConfig(
        root=root,
        jobs=tuple(jobs),
        writer_id=writer_id or str(data.get("writer_id", "w0")),
        flush_interval=float(fi),
        compaction_grace=float(data.get("compaction_grace", 30.0)),
    )
