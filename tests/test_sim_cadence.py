"""Update cadences and candle closing under a mock clock (payload clock = Trio clock)."""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import orjson
import trio
from trio_websocket import open_websocket_url

from replay.sim import SimConfig, trio_clock
from tests.test_sim_support import running


def _cfg(venue: str, rate: float = 50.0) -> SimConfig:
    return SimConfig(venues=(venue,), rate=rate, tick=0.05, clock=trio_clock())


async def test_usdm_cadences(autojump_clock: Any) -> None:
    """binance-usdm-futures.md §5 / README item 9: markPrice 3 s (1 s with @1s), miniTicker and
    ticker 2 s, `!bookTicker` every 5 s (one message per symbol), depth 250 ms."""
    del autojump_clock
    v = "binance-usdm"
    async with running(_cfg(v)) as (_sim, urls):
        names = "btcusdt@markPrice/btcusdt@markPrice@1s/btcusdt@miniTicker/btcusdt@ticker"
        times: dict[str, list[int]] = defaultdict(list)
        async with open_websocket_url(f"{urls.ws(v)}/market/stream?streams={names}") as ws:
            with trio.fail_after(60):
                while min((len(times[n]) for n in names.split("/")), default=0) < 3:
                    m = orjson.loads(await ws.get_message())
                    times[m["stream"]].append(m["data"]["E"])
        want = {"btcusdt@markPrice": 3000, "btcusdt@markPrice@1s": 1000,
                "btcusdt@miniTicker": 2000, "btcusdt@ticker": 2000}  # fmt: skip
        for name, t in times.items():  # emitted on the first pump tick (50 ms) after a boundary
            assert all(abs(b - a - want[name]) <= 60 for a, b in itertools.pairwise(t))
        async with open_websocket_url(f"{urls.ws(v)}/public/ws/!bookTicker/btcusdt@depth") as ws:
            books: list[tuple[int, str]] = []
            depth: list[int] = []
            with trio.fail_after(60):
                while len(books) < 6:
                    m = orjson.loads(await ws.get_message())
                    if m["e"] == "bookTicker":
                        books.append((m["E"], m["s"]))
                    else:
                        depth.append(m["E"])
        assert abs(books[3][0] - books[0][0] - 5000) <= 60
        assert {s for _, s in books[:3]} == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
        for a, b in itertools.pairwise(depth):  # 250 ms (skipped when unchanged)
            assert round((b - a) / 250) >= 1 and abs(b - a - 250 * round((b - a) / 250)) <= 60


async def test_spot_kline_closes_once_per_candle(autojump_clock: Any) -> None:
    """binance-spot.md §6.3: kline pushed every 2000 ms (1000 ms for 1s); `x` becomes true for
    the final update of a candle, then the next candle starts."""
    del autojump_clock
    v = "binance-spot"
    async with running(_cfg(v, rate=20)) as (_sim, urls):
        async with open_websocket_url(f"{urls.ws(v)}/ws/btcusdt@kline_1m") as ws:
            msgs: list[Any] = []
            with trio.fail_after(200):
                while len([m for m in msgs if m["k"]["x"]]) < 2:
                    msgs.append(orjson.loads(await ws.get_message()))
        es = [m["E"] for m in msgs]
        assert all(abs(b - a - 2000) <= 60 for a, b in itertools.pairwise(es))
        closed = [i for i, m in enumerate(msgs) if m["k"]["x"]]
        first, second = msgs[closed[0]]["k"], msgs[closed[1]]["k"]
        assert second["t"] == first["t"] + 60_000 and first["T"] == first["t"] + 59_999
        assert msgs[closed[0] + 1]["k"]["t"] == second["t"] and not msgs[closed[0] + 1]["k"]["x"]


async def test_bybit_kline_confirm_flag(autojump_clock: Any) -> None:
    """bybit-v5.md §4.4: `confirm` flips to true once per closed candle."""
    del autojump_clock
    v = "bybit-linear"
    async with running(_cfg(v, rate=20)) as (_sim, urls):
        async with open_websocket_url(f"{urls.ws(v)}/v5/public/linear") as ws:
            await ws.send_message('{"op":"subscribe","args":["kline.1.BTCUSDT"]}')
            confirms: list[bool] = []
            with trio.fail_after(200):
                while sum(confirms) < 2:
                    m = orjson.loads(await ws.get_message())
                    if "topic" in m:
                        confirms.append(m["data"][0]["confirm"])
        assert 50 <= confirms.index(True) <= 62
        assert confirms.count(True) == 2
