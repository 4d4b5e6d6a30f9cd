"""Polars access to an archive: lazy scans over the right partition files.

:func:`scan` returns a :class:`polars.LazyFrame` of one (venue, channel): the archive's
columns (``recv_time`` as ``Datetime(ns, UTC)``, exchange times as ``Datetime``, decimals as
``Float64`` with their ``*_dp`` digit counts, nested levels/trades as lists of structs, and
``raw``) plus the Hive columns ``venue``, ``channel``, ``symbol``, ``date`` (Date) and ``hour``.
The files are listed by :func:`recorder.archive.select` and passed explicitly, so
part files already absorbed by a compacted ``data-*.parquet`` (a crash between compaction and
deletion) are never read twice. Rows come in file order (by symbol, then hour, each file
sorted by receive time); sort if you need a global order.

On top of it:

* :func:`scan_trades` -- one row per trade, the same schema for Binance ``trade``/``aggTrade``,
  Bybit ``publicTrade`` and SBE ``trade`` (list columns exploded);
* :func:`scan_quotes` -- best bid/ask from Binance ``bookTicker``, SBE ``bestBidAsk`` or
  Bybit ``orderbook.1``;
* :func:`scan_tickers_merged` -- Bybit tickers with each delta merged into the last snapshot
  (bybit-v5.md 4.3: a field absent from a delta keeps its previous value).

Times (``start``/``end``, on the receive time; start inclusive, end exclusive) are epoch
nanoseconds or ``datetime`` (naive = UTC).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any, Final

import polars as pl

from recorder.archive import Selection, archive_schema, encode_value, select
from recorder.core import codec_for

TimeLike = int | dt.datetime | None
Symbols = str | Iterable[str] | None

_NS: Final = pl.Datetime("ns", "UTC")
HIVE_SCHEMA: Final[Mapping[str, pl.DataType]] = {
    "venue": pl.String(),
    "channel": pl.String(),
    "symbol": pl.String(),
    "date": pl.Date(),
    "hour": pl.Int64(),
}
_BINANCE_JSON: Final = ("binance-spot", "binance-usdm")
_SBE: Final = "binance-sbe"


def _to_ns(t: TimeLike) -> int | None:
    if t is None:
        return None
    if isinstance(t, dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if isinstance(t, bool) or not isinstance(t, int):
        raise TypeError(f"expected epoch nanoseconds or a datetime, got {type(t).__name__}")
    return t


def _symbol_set(symbols: Symbols) -> frozenset[str] | None:
    if symbols is None:
        return None
    if isinstance(symbols, str):
        return frozenset([symbols])
    return frozenset(symbols)


def _ns_lit(ns: int) -> pl.Expr:
    return pl.lit(ns, dtype=pl.Int64).cast(_NS)


def archive_polars_schema(venue: str, channel: str) -> pl.Schema:
    """The Polars schema of a (venue, channel)'s files, without the Hive columns."""
    codec = codec_for(venue, channel)
    return pl.from_arrow(archive_schema(codec).empty_table()).schema  # type: ignore[union-attr]


def partition_files(
    root: str,
    venue: str,
    channel: str,
    symbols: Symbols = None,
    start: TimeLike = None,
    end: TimeLike = None,
) -> tuple[list[str], dict[str, str]]:
    """The files a reader should read (superseded parts left out), and the symbols whose
    partition name differs from the symbol (``{encoded: symbol}``)."""
    sel = Selection.of([venue], [channel], _symbol_set(symbols), _to_ns(start), _to_ns(end))
    prefix = root.split("://", 1)[0] + "://" if "://" in root else ""
    files: list[str] = []
    renames: dict[str, str] = {}
    for p in select(root, sel).partitions:
        k = p.key
        files.extend(prefix + path for path in p.paths)
        enc = encode_value(k.symbol)
        if enc != k.symbol:
            renames[enc] = k.symbol
    return files, renames


def scan(
    root: str,
    venue: str,
    channel: str,
    symbols: Symbols = None,
    start: TimeLike = None,
    end: TimeLike = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> pl.LazyFrame:
    """Lazy scan of one (venue, channel), optionally restricted to symbols and a time range.

    Partitions outside the range are not opened; rows are filtered on ``recv_time``. An empty
    selection gives an empty frame with the full schema.
    """
    file_schema = archive_polars_schema(venue, channel)
    files, renames = partition_files(root, venue, channel, symbols, start, end)
    if not files:
        return pl.LazyFrame(schema={**file_schema, **HIVE_SCHEMA})
    lf = pl.scan_parquet(
        files,
        hive_partitioning=True,
        hive_schema=dict(HIVE_SCHEMA),
        schema=file_schema,
        missing_columns="insert",
        extra_columns="ignore",
        storage_options=dict(storage_options) if storage_options is not None else None,
    )
    if renames:  # percent-encoded partition names: put the real symbol back
        lf = lf.with_columns(pl.col("symbol").replace(renames))
    start_ns, end_ns = _to_ns(start), _to_ns(end)
    if start_ns is not None:
        lf = lf.filter(pl.col("recv_time") >= _ns_lit(start_ns))
    if end_ns is not None:
        lf = lf.filter(pl.col("recv_time") < _ns_lit(end_ns))
    return lf


# --------------------------------------------------------------------------------------------
# Trades

TRADE_SCHEMA: Final[Mapping[str, pl.DataType]] = {
    "recv_time": _NS,
    "event_time": _NS,
    "symbol": pl.String(),
    "price": pl.Float64(),
    "qty": pl.Float64(),
    "side": pl.String(),
    "trade_time": _NS,
    "trade_id": pl.String(),
    "venue": pl.String(),
}
"""Columns of :func:`scan_trades`. ``side`` is the taker side, ``"buy"`` or ``"sell"``;
``event_time`` the message's exchange time, ``trade_time`` the match time."""


def _default_trade_channel(venue: str) -> str:
    if venue.startswith("bybit-"):
        return "publicTrade"
    return "trade"


def _trades_select(venue: str, channel: str, lf: pl.LazyFrame) -> pl.LazyFrame:
    def side_from_maker(col: pl.Expr) -> pl.Expr:
        return pl.when(col).then(pl.lit("sell")).otherwise(pl.lit("buy"))

    if venue.startswith("bybit-"):
        if channel != "publicTrade":
            raise ValueError(f"{venue}: trades are on channel publicTrade, not {channel!r}")
        t = pl.col("_t")
        return (
            lf.select("recv_time", "event_time", "symbol", "venue", pl.col("trades").alias("_t"))
            .explode("_t")
            .filter(pl.col("_t").is_not_null())
            .select(
                pl.col("recv_time"),
                pl.col("event_time").cast(_NS),
                pl.coalesce(t.struct.field("sym"), pl.col("symbol")).alias("symbol"),
                t.struct.field("price").alias("price"),
                t.struct.field("qty").alias("qty"),
                t.struct.field("side").str.to_lowercase().alias("side"),
                t.struct.field("trade_time").cast(_NS).alias("trade_time"),
                t.struct.field("trade_id").cast(pl.String).alias("trade_id"),
                pl.col("venue"),
            )
        )
    if venue == _SBE:
        if channel != "trade":
            raise ValueError(f"{venue}: trades are on channel trade, not {channel!r}")
        t = pl.col("_t")
        return (
            lf.select(
                "recv_time",
                "event_time",
                "transact_time",
                "symbol",
                "venue",
                pl.col("trades").alias("_t"),
            )
            .explode("_t")
            .filter(pl.col("_t").is_not_null())
            .select(
                pl.col("recv_time"),
                pl.col("event_time").cast(_NS),
                pl.col("symbol"),
                t.struct.field("price").alias("price"),
                t.struct.field("qty").alias("qty"),
                side_from_maker(t.struct.field("is_buyer_maker")).alias("side"),
                pl.col("transact_time").cast(_NS).alias("trade_time"),
                t.struct.field("id").cast(pl.String).alias("trade_id"),
                pl.col("venue"),
            )
        )
    if venue in _BINANCE_JSON:
        ids = {"trade": "trade_id", "aggTrade": "agg_trade_id"}
        if channel not in ids:
            raise ValueError(f"{venue}: trades are on channel trade or aggTrade, not {channel!r}")
        return lf.select(
            pl.col("recv_time"),
            pl.col("event_time").cast(_NS),
            pl.col("symbol"),
            pl.col("price"),
            pl.col("qty"),
            side_from_maker(pl.col("buyer_is_maker")).alias("side"),
            pl.col("trade_time").cast(_NS),
            pl.col(ids[channel]).cast(pl.String).alias("trade_id"),
            pl.col("venue"),
        )
    raise ValueError(f"no trade view for venue {venue!r}")


def scan_trades(
    root: str,
    venue: str,
    symbols: Symbols = None,
    start: TimeLike = None,
    end: TimeLike = None,
    *,
    channel: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> pl.LazyFrame:
    """One row per trade with the uniform :data:`TRADE_SCHEMA`.

    ``channel``: Binance ``trade`` (default) or ``aggTrade``; Bybit ``publicTrade``; SBE
    ``trade``. Bybit and SBE messages carry several trades: the list is exploded, and Bybit's
    ``symbol`` is each trade's own (option trades are recorded per base coin).
    """
    if not (venue.startswith("bybit-") or venue == _SBE or venue in _BINANCE_JSON):
        raise ValueError(f"no trade view for venue {venue!r}")
    channel = channel or _default_trade_channel(venue)
    lf = scan(root, venue, channel, symbols, start, end, storage_options=storage_options)
    return _trades_select(venue, channel, lf).cast(dict(TRADE_SCHEMA))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Quotes

QUOTE_SCHEMA: Final[Mapping[str, pl.DataType]] = {
    "recv_time": _NS,
    "symbol": pl.String(),
    "bid": pl.Float64(),
    "bid_qty": pl.Float64(),
    "ask": pl.Float64(),
    "ask_qty": pl.Float64(),
    "event_time": _NS,
    "update_id": pl.Int64(),
    "venue": pl.String(),
}
"""Columns of :func:`scan_quotes` (``event_time`` is null where the venue sends none)."""


def scan_quotes(
    root: str,
    venue: str,
    symbols: Symbols = None,
    start: TimeLike = None,
    end: TimeLike = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> pl.LazyFrame:
    """Best bid/ask updates with the uniform :data:`QUOTE_SCHEMA`.

    Binance ``bookTicker``, SBE ``bestBidAsk``, or Bybit ``orderbook.1.*`` (level 1 is
    snapshot-only; an empty side gives nulls).
    """
    so = storage_options
    if venue in _BINANCE_JSON or venue == _SBE:
        channel = "bestBidAsk" if venue == _SBE else "bookTicker"
        lf = scan(root, venue, channel, symbols, start, end, storage_options=so)
        has_event = "event_time" in archive_polars_schema(venue, channel)
        out = lf.select(
            pl.col("recv_time"),
            pl.col("symbol"),
            pl.col("bid_price").alias("bid"),
            pl.col("bid_qty"),
            pl.col("ask_price").alias("ask"),
            pl.col("ask_qty"),
            (pl.col("event_time").cast(_NS) if has_event else pl.lit(None, _NS)).alias(
                "event_time"
            ),
            pl.col("book_update_id" if venue == _SBE else "update_id").alias("update_id"),
            pl.col("venue"),
        )
    elif venue.startswith("bybit-"):
        lf = scan(root, venue, "orderbook", symbols, start, end, storage_options=so)
        b = pl.col("bids").list.first()
        a = pl.col("asks").list.first()
        out = lf.filter(
            pl.col("stream").str.starts_with("orderbook.1.") & (pl.col("msg_type") == "snapshot")
        ).select(
            pl.col("recv_time"),
            pl.col("symbol"),
            b.struct.field("price").alias("bid"),
            b.struct.field("qty").alias("bid_qty"),
            a.struct.field("price").alias("ask"),
            a.struct.field("qty").alias("ask_qty"),
            pl.col("event_time").cast(_NS),
            pl.col("update_id"),
            pl.col("venue"),
        )
    else:
        raise ValueError(f"no quote view for venue {venue!r}")
    return out.cast(dict(QUOTE_SCHEMA))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Bybit tickers, merged

_TICKER_KEEP: Final = frozenset(
    {"recv_time", "conn", "seq", "stream", "envelope", "raw", "topic", "msg_type", "sym",
     "cross_seq", "event_time", "layout"}
)  # fmt: skip


def _ticker_field_groups(venue: str) -> list[list[str]]:
    """The data fields of a tickers payload, each with its companion columns
    (``x``, ``x_dp``, ``x_text``); presence is told by ``x_dp`` where there is one."""
    names = list(archive_polars_schema(venue, "tickers"))
    present = set(names)
    groups: list[list[str]] = []
    for n in names:
        if n in _TICKER_KEEP or n.endswith(("_dp", "_text")):
            continue
        g = [n] + [c for c in (n + "_dp", n + "_text") if c in present]
        groups.append(g)
    return groups


def scan_tickers_merged(
    root: str,
    venue: str,
    symbols: Symbols = None,
    start: TimeLike = None,
    end: TimeLike = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> pl.LazyFrame:
    """Bybit ``tickers`` with every delta merged into the last snapshot, one row per message.

    Per symbol and connection (a subscription), in receive order: a ``snapshot`` resets every
    field to its own values (fields it lacks become null); a ``delta`` overrides only the fields
    it carries -- a present but empty value (``""``, e.g. ``fundingRate`` on dated futures) is
    kept as null, not filled. ``from_snapshot`` is False for deltas received before any
    snapshot of their connection (their other fields are unknown). Decimal fields keep their
    ``*_dp`` (and ``*_text``) columns, merged with them. Rows come sorted by
    (symbol, recv_time, conn, seq).

    Only the messages in [start, end) are read: a range that starts after the snapshot leaves
    its deltas with ``from_snapshot`` False.
    """
    if not venue.startswith("bybit-"):
        raise ValueError(f"merged tickers are a Bybit view, not {venue!r}")
    groups = _ticker_field_groups(venue)
    lf = scan(root, venue, "tickers", symbols, start, end, storage_options=storage_options)
    keys = ["symbol", "conn"]
    lf = lf.sort(["symbol", "conn", "recv_time", "seq"]).with_columns(
        (pl.col("msg_type") == "snapshot").cum_sum().over(keys).alias("_snap")
    )
    seg = [*keys, "_snap"]
    merged: list[pl.Expr] = []
    for g in groups:
        head = g[0]
        presence = pl.col(g[1]) if len(g) > 1 and g[1].endswith("_dp") else pl.col(head)
        packed = pl.when(presence.is_not_null()).then(pl.struct(g)).otherwise(None)
        merged.append(packed.forward_fill().over(seg).alias("_m_" + head))
    lf = lf.with_columns(merged)
    unpack: list[pl.Expr] = []
    for g in groups:
        s = pl.col("_m_" + g[0])
        unpack.extend(s.struct.field(c).alias(c) for c in g)
    front = ["recv_time", "symbol", "msg_type", "event_time", "cross_seq", "conn", "seq"]
    return (
        lf.with_columns(unpack)
        .with_columns((pl.col("_snap") > 0).alias("from_snapshot"))
        .select(
            *front,
            "from_snapshot",
            *(c for g in groups for c in g),
            "stream",
            "venue",
            "date",
            "hour",
        )
        .sort(["symbol", "recv_time", "conn", "seq"])
    )


__all__ = [
    "HIVE_SCHEMA",
    "QUOTE_SCHEMA",
    "TRADE_SCHEMA",
    "archive_polars_schema",
    "partition_files",
    "scan",
    "scan_quotes",
    "scan_tickers_merged",
    "scan_trades",
]
