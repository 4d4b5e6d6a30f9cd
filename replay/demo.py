"""``make demo``: record the embedded exchange simulator, then show what was archived.

Runs a local simulator of Binance spot, Binance USDⓈ-M and Bybit linear on 127.0.0.1, records
it with the live status on screen, then prints ``ticktape ls`` of the archive and a small Polars
query (one-second OHLCV bars of BTCUSDT on Binance spot). Nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys

import polars as pl
import trio

STREAMS = {
    "binance-spot": [
        f"{s}@{k}"
        for s in ("btcusdt", "ethusdt", "solusdt")
        for k in ("trade", "aggTrade", "bookTicker", "depth@100ms", "kline_1m")
    ],
    "binance-usdm": [
        f"{s}@{k}"
        for s in ("btcusdt", "ethusdt")
        for k in ("aggTrade", "bookTicker", "depth@100ms", "markPrice@1s")
    ],
    "bybit-linear": [
        f"{k}.{s}"
        for s in ("BTCUSDT", "ETHUSDT")
        for k in ("orderbook.50", "publicTrade", "tickers")
    ],
}


async def record(root: str, duration: float, show_status: bool) -> None:
    from recorder import Recorder, RecorderConfig, VenueJob
    from recorder.cli import run_recorder
    from replay.sim import SimConfig, Simulator

    sim = Simulator(SimConfig(venues=tuple(STREAMS), rate=400.0, seed=42))
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(sim.run)
        jobs = tuple(
            VenueJob(venue=v, streams=tuple(s), ws_url=urls.ws(v), rest_url=urls.rest(v))
            for v, s in STREAMS.items()
        )
        rec = Recorder(RecorderConfig(root=root, jobs=jobs, flush_interval=2.0))
        await run_recorder(rec, duration, show_status, False)
        nursery.cancel_scope.cancel()


def ohlcv(root: str, venue: str, symbol: str, every: str = "1s") -> pl.DataFrame:
    """OHLCV bars of one symbol's trades, read straight from the Hive-partitioned files."""
    glob = f"{root}/venue={venue}/channel=trade/symbol={symbol}/**/*.parquet"
    return (
        pl.scan_parquet(glob, hive_partitioning=True)
        .sort("trade_time")
        .group_by_dynamic("trade_time", every=every)
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("qty").sum().alias("volume"),
            pl.len().alias("trades"),
        )
        .collect()
    )


def show(root: str) -> None:
    from rich.console import Console

    from recorder.cli import cli

    console = Console(width=None if sys.stdout.isatty() else 120)
    console.rule("ticktape ls " + root)
    cli.main(["ls", root], standalone_mode=False)
    console.rule("1-second OHLCV of BTCUSDT trades (Polars, straight from the Parquet files)")
    with pl.Config(tbl_rows=12, tbl_width_chars=120):
        bars = ohlcv(root, "binance-spot", "BTCUSDT")
        console.print(bars.tail(12))
    glob = f"{root}/venue=binance-spot/channel=trade/**/*.parquet"
    console.print(f"\nQuery it yourself:\n  pl.scan_parquet('{glob}', hive_partitioning=True)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default="demo-archive")
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--keep", action="store_true", help="add to an existing archive")
    args = ap.parse_args(argv)
    if not args.keep:
        shutil.rmtree(args.root, ignore_errors=True)
    from recorder.cli import setup_logging

    setup_logging(False)
    trio.run(record, args.root, args.duration, sys.stderr.isatty())
    show(args.root)


if __name__ == "__main__":
    main()
