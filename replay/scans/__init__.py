"""Polars LazyFrames over the right partition files, with analysis-ready columns."""

from replay.scans._scan import scan, scan_quotes, scan_tickers_merged, scan_trades

__all__ = ["scan", "scan_quotes", "scan_tickers_merged", "scan_trades"]
