"""The simulator's payload shapes (key order, nesting, JSON types) match real captured messages.

Reference: ``shared/corpus`` (exact wire lines only, i.e. without ``note``) and the README
simulator section ("payloads as documented"). Old captures that differ from today's documented
shape (USDⓈ-M aggTrade/bookTicker of 2021) are left out on purpose.
"""

from __future__ import annotations

from typing import Any

import orjson
import trio
from trio_websocket import open_websocket_url

from replay.sim import SimConfig
from tests._shared import corpus
from tests.test_sim_support import running


def shape(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple((k, shape(x)) for k, x in v.items())
    if isinstance(v, list):
        first = v[0] if v else None
        return ("list", shape(first)) if isinstance(first, dict | list) and first else ("list",)
    return type(v).__name__


def unwrap(venue: str, payload: bytes) -> Any:
    msg = orjson.loads(payload)
    if venue.startswith("binance") and isinstance(msg, dict) and "stream" in msg:
        return msg["data"]
    return msg


def corpus_shapes(venue: str, kind: str, pred: Any = None) -> set[Any]:
    out = set()
    for line in corpus(venue, kind):
        if not line.exact:
            continue
        msg = unwrap(venue, line.payload)
        if pred is None or pred(msg):
            out.add(shape(msg))
    return out


BINANCE_CASES = [
    ("binance-spot", "trade", "btcusdt@trade"),
    ("binance-spot", "aggTrade", "btcusdt@aggTrade"),
    ("binance-spot", "bookTicker", "btcusdt@bookTicker"),
    ("binance-spot", "depthUpdate", "btcusdt@depth@100ms"),
    ("binance-spot", "kline", "btcusdt@kline_1m"),
    ("binance-usdm", "trade", "btcusdt@trade"),
    ("binance-usdm", "depthUpdate", "btcusdt@depth@100ms"),
    ("binance-usdm", "kline", "btcusdt@kline_1m"),
]


async def _first_per_stream(url: str, n: int, key: Any) -> dict[Any, Any]:
    seen: dict[Any, Any] = {}
    async with open_websocket_url(url) as ws:
        with trio.fail_after(10):
            while len(seen) < n:
                m = orjson.loads(await ws.get_message())
                k = key(m)
                if k is not None:
                    seen.setdefault(k, m)
    return seen


async def test_binance_payload_shapes_match_corpus() -> None:
    """binance-spot.md §6 / binance-usdm-futures.md §5 shapes vs shared/corpus exact lines."""
    cfg = SimConfig(venues=("binance-spot", "binance-usdm"), rate=500)
    async with running(cfg) as (_sim, urls):
        for venue in ("binance-spot", "binance-usdm"):
            cases = [c for c in BINANCE_CASES if c[0] == venue]
            route = "/market" if venue == "binance-usdm" else ""
            names = "/".join(c[2] for c in cases)
            if venue == "binance-usdm":  # public and market streams need their own routes
                pub = [c for c in cases if "depth" in c[2]]
                mkt = [c for c in cases if "depth" not in c[2]]
                seen = await _first_per_stream(
                    f"{urls.ws(venue)}/public/stream?streams={pub[0][2]}", 1,
                    lambda m: m["stream"],
                )  # fmt: skip
                names = "/".join(c[2] for c in mkt)
            else:
                seen = {}
            seen |= await _first_per_stream(
                f"{urls.ws(venue)}{route}/stream?streams={names}",
                len(cases) - len(seen),
                lambda m: m["stream"],
            )
            for _venue, kind, stream in cases:
                expected = corpus_shapes(venue, kind)
                assert expected, (venue, kind)
                got = shape(seen[stream]["data"])
                assert got in expected, (venue, kind, got, expected)


async def test_bybit_payload_shapes_match_corpus() -> None:
    """bybit-v5.md §4 topics vs shared/corpus exact 2026 captures (spot and linear):
    publicTrade, orderbook snapshot/delta, tickers, kline."""
    cfg = SimConfig(venues=("bybit-spot", "bybit-linear"), rate=800)
    async with running(cfg) as (_sim, urls):
        for venue in ("bybit-spot", "bybit-linear"):
            cat = venue.split("-")[1]
            topics = ["publicTrade.BTCUSDT", "orderbook.200.BTCUSDT", "tickers.BTCUSDT",
                      "kline.1.BTCUSDT"]  # fmt: skip
            seen: dict[Any, Any] = {}
            async with open_websocket_url(f"{urls.ws(venue)}/v5/public/{cat}") as ws:
                await ws.send_message(orjson.dumps({"op": "subscribe", "args": topics}).decode())
                with trio.fail_after(10):
                    while len(seen) < 5:
                        m = orjson.loads(await ws.get_message())
                        if "topic" in m:
                            kind = m["topic"].split(".")[0]
                            if kind in ("orderbook", "tickers"):
                                kind += ":" + m["type"]
                            if kind != "tickers:delta":
                                seen.setdefault(kind, m)
            for kind, msg in seen.items():
                file, _, typ = kind.partition(":")
                expected = corpus_shapes(
                    venue,
                    file,
                    lambda m, t=typ, f=file: (
                        (not t or m.get("type") == t)
                        and (f != "tickers" or m["data"].get("symbol") == "BTCUSDT")
                    ),
                )
                assert expected, (venue, kind)
                assert shape(msg) in expected, (venue, kind, shape(msg), expected)
