"""Synthetic Bybit V5 market for one category (spot, linear, inverse, option): a MarketSource.

Topics (``bybit-v5.md`` §4): ``orderbook.{depth}.{symbol}`` (snapshot per new subscriber, then
deltas computed against the last published top-N view; ``u`` +1 per push, ``seq`` increasing;
level 1 snapshot-only, re-sent after 3 s unchanged with the same ``u``), ``publicTrade.{symbol}``
(batched per tick, ≤1024 per message; options by base coin), ``tickers.{symbol}`` (spot/option
snapshots; linear/inverse snapshot then changed-field deltas), ``kline.{interval}.{symbol}``,
``allLiquidation.{symbol}`` (linear/inverse). The REST snapshot is the deepest view (1000, option
100) with its ``u``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from replay.sim._book import Book, Formatter
from replay.sim._types import DepthSnapshot, MarketEvent, SymbolSpec

MS = 1_000_000

DEPTHS: dict[str, dict[int, int]] = {
    "spot": {1: 10, 50: 20, 200: 100, 1000: 200},
    "linear": {1: 10, 50: 20, 200: 100, 1000: 200},
    "inverse": {1: 10, 50: 20, 200: 100, 1000: 200},
    "option": {25: 20, 100: 100},
}
KLINE_MS: dict[str, int] = {
    **{str(m): m * 60_000 for m in (1, 3, 5, 15, 30, 60, 120, 240, 360, 720)},
    "D": 86_400_000,
    "W": 604_800_000,
    "M": 2_592_000_000,
}
TICKER_MS = {"spot": 50, "linear": 100, "inverse": 100, "option": 100}


@dataclass(slots=True)
class _View:
    depth: int
    interval: int
    u: int = 0
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    last_idx: int = -1
    last_sent_ms: int = 0
    seq: int = 0
    cts: int = 0
    live: bool = False
    reset: bool = False
    fresh: bool = False


@dataclass(slots=True)
class _Kline:
    start: int
    length: int
    o: int
    h: int
    low: int
    c: int
    v: int = 0
    q: int = 0
    last_ms: int = 0


class _BSym:
    def __init__(self, spec: SymbolSpec, rng: random.Random, levels: int, category: str) -> None:
        self.spec = spec
        self.book = Book(spec, rng, levels, 0)
        trim = category == "spot"  # spot prints decimals without trailing zeros (corpus)
        self.fp = Formatter(spec.price_decimals, spec.wire_pd, trim)
        self.fq = Formatter(spec.qty_decimals, spec.wire_qd, trim)
        qd = spec.price_decimals + spec.qty_decimals
        self.fqv = Formatter(qd, qd, trim)
        self.seq = rng.randrange(10**9, 10**10)
        self.views = {
            d: _View(d, iv, u=rng.randrange(10**6, 10**7)) for d, iv in DEPTHS[category].items()
        }
        self.trades: list[str] = []
        self.last_price = (self.book.bb + self.book.ba) // 2
        self.open = self.high = self.low = self.prev_price = self.last_price
        self.vol = 0
        self.turnover = 0
        self.tick_dir = "ZeroPlusTick"
        self.ticker_sent: dict[str, str] = {}
        self.ticker_idx = -1
        self.klines: dict[str, _Kline] = {}
        self.kline_idx: dict[str, int] = {}
        self.liqs: list[str] = []
        self.liq_idx = -1


def _lv(fp: Formatter, fq: Formatter, levels: Sequence[tuple[int, int]]) -> str:
    return ",".join(f'["{fp(p)}","{fq(q) if q else "0"}"]' for p, q in levels)


class BybitMarket:
    """Synthetic market of one Bybit category."""

    def __init__(
        self, venue: str, specs: Sequence[SymbolSpec], *, seed: int, rate: float, levels: int = 200
    ) -> None:
        self._venue = venue
        self.category = venue.split("-", 1)[1]
        self.rng = random.Random(f"{venue}:{seed}")
        self.rate = rate
        self.specs = tuple(specs)
        self.syms = {s.symbol: _BSym(s, self.rng, levels, self.category) for s in specs}
        self.order = list(self.syms.values())
        self.rest_depth = 100 if self.category == "option" else 1000
        self.t0: int | None = None
        self.steps_done = 0
        self.topics = self._topic_table()

    # -- topics -------------------------------------------------------------------------------

    def _topic_table(self) -> dict[str, tuple[str, Any]]:
        """Every valid topic -> (kind, arg)."""
        cat = self.category
        table: dict[str, tuple[str, Any]] = {}
        for st in self.order:
            s = st.spec.symbol
            for d in DEPTHS[cat]:
                table[f"orderbook.{d}.{s}"] = ("orderbook", (st, d))
            table[f"tickers.{s}"] = ("tickers", st)
            if cat != "option":
                table[f"publicTrade.{s}"] = ("publicTrade", [st])
                for iv in KLINE_MS:
                    table[f"kline.{iv}.{s}"] = ("kline", (st, iv))
            if cat in ("linear", "inverse"):
                table[f"allLiquidation.{s}"] = ("allLiquidation", st)
        if cat == "option":
            by_base: dict[str, list[_BSym]] = {}
            for st in self.order:
                by_base.setdefault(st.spec.base, []).append(st)
            for base, members in by_base.items():
                table[f"publicTrade.{base}"] = ("publicTrade", members)
        return table

    def valid_topic(self, topic: str) -> bool:
        return topic in self.topics

    # -- MarketSource -------------------------------------------------------------------------

    @property
    def venue(self) -> str:
        return self._venue

    def instruments(self) -> Sequence[SymbolSpec]:
        return self.specs

    def reset_book(self, symbol: str | None) -> None:
        for st in self.order:
            if symbol is None or st.spec.symbol == symbol:
                for v in st.views.values():
                    v.reset = True

    def resend_snapshot(self, symbol: str | None) -> None:
        """Push a fresh snapshot (next ``u``) instead of the next delta on every book topic."""
        for st in self.order:
            if symbol is None or st.spec.symbol == symbol:
                for v in st.views.values():
                    v.fresh = True

    def depth_snapshot(self, symbol: str, limit: int, now_ns: int) -> DepthSnapshot | None:
        st = self.syms.get(symbol)
        if st is None:
            return None
        v = st.views[self.rest_depth]
        if not v.live:
            self._refresh(st, v, now_ns // MS)
        bids = sorted(v.bids.items(), reverse=True)[:limit]
        asks = sorted(v.asks.items())[:limit]
        return DepthSnapshot(
            last_update_id=v.u,
            bids=[(st.fp(p), st.fq(q)) for p, q in bids],
            asks=[(st.fp(p), st.fq(q)) for p, q in asks],
            time_ms=now_ns // MS,
            seq=v.seq,
            cts_ms=v.cts,
        )

    def on_subscribe(self, stream: str, now_ns: int) -> Sequence[MarketEvent]:
        entry = self.topics.get(stream)
        if entry is None:
            return ()
        kind, arg = entry
        ms = now_ns // MS
        if kind == "orderbook":
            st, depth = arg
            v = st.views[depth]
            if not v.live:
                self._refresh(st, v, ms)
            return [self._book_msg(stream, st, v, "snapshot", v.bids, v.asks, ms)]
        if kind == "tickers" and self.category in ("linear", "inverse"):
            st = arg
            if not st.ticker_sent:
                st.ticker_sent = self._ticker_fields(st)
            return [self._ticker_msg(stream, st, st.ticker_sent, "snapshot", ms)]
        return ()

    def _refresh(self, st: _BSym, v: _View, ms: int) -> None:
        bids, asks = st.book.top(v.depth)
        v.bids, v.asks = dict(bids), dict(asks)
        v.seq, v.cts, v.live = st.seq, ms, True
        if v.u == 0:
            v.u = 1

    # -- generation ---------------------------------------------------------------------------

    def advance(self, now_ns: int, active: Collection[str]) -> list[MarketEvent]:
        if self.t0 is None:
            self.t0 = now_ns
        target = int((now_ns - self.t0) / 1e9 * self.rate)
        n = target - self.steps_done
        if n > self.rate * 2 + 10:
            self.steps_done = target - int(self.rate * 2 + 10)
            n = target - self.steps_done
        rng = self.rng
        ms = now_ns // MS
        for _ in range(max(n, 0)):
            st = self.order[rng.randrange(len(self.order))]
            st.seq += 1
            if rng.random() < 0.35:
                fills, _change = st.book.trade(rng.random() < 0.5)
                self._trades(st, fills, ms)
            else:
                st.book.change()
            if self.category in ("linear", "inverse") and rng.random() < 0.005:
                side = "Buy" if rng.random() < 0.5 else "Sell"
                st.liqs.append(
                    f'{{"T":{ms},"s":"{st.spec.symbol}","S":"{side}",'
                    f'"v":"{st.fq(st.book.rand_qty())}","p":"{st.fp(st.book.bb)}"}}'
                )
        self.steps_done += max(n, 0)
        out: list[MarketEvent] = []
        self._emit_trades(ms, active, out)
        for st in self.order:
            self._books(st, ms, active, out)
            self._tickers(st, ms, active, out)
            self._klines(st, ms, active, out)
            self._liquidations(st, ms, active, out)
        return out

    def _trades(self, st: _BSym, fills: Sequence[Any], ms: int) -> None:
        s = st.spec.symbol
        for f in fills:
            side = "Sell" if f.buyer_maker else "Buy"
            if f.price > st.last_price:
                st.tick_dir = "PlusTick"
            elif f.price < st.last_price:
                st.tick_dir = "MinusTick"
            else:
                st.tick_dir = (
                    "ZeroPlusTick" if st.tick_dir.endswith("PlusTick") else "ZeroMinusTick"
                )
            st.last_price = f.price
            st.high = max(st.high, f.price)
            st.low = min(st.low, f.price)
            st.vol += f.qty
            st.turnover += f.qty * f.price
            for k in st.klines.values():
                k.c = f.price
                k.h = max(k.h, f.price)
                k.low = min(k.low, f.price)
                k.v += f.qty
                k.q += f.qty * f.price
                k.last_ms = ms
            p, v = st.fp(f.price), st.fq(f.qty)
            tid = str(uuid.UUID(int=self.rng.getrandbits(128)))
            if self.category == "spot":
                tid = str(self.rng.randrange(2 * 10**18, 3 * 10**18))
                item = (
                    f'{{"i":"{tid}","T":{ms},"p":"{p}","v":"{v}","S":"{side}","seq":{st.seq},'
                    f'"s":"{s}","BT":false,"RPI":false}}'
                )
            elif self.category == "option":
                item = (
                    f'{{"T":{ms},"s":"{s}","S":"{side}","v":"{v}","p":"{p}","i":"{tid}",'
                    f'"BT":false,"mP":"{p}","iP":"65000.00","mIv":"0.4896","iv":"0.4896"}}'
                )
            else:
                item = (
                    f'{{"T":{ms},"s":"{s}","S":"{side}","v":"{v}","p":"{p}","L":"{st.tick_dir}",'
                    f'"i":"{tid}","BT":false,"RPI":false,"seq":{st.seq}}}'
                )
            st.trades.append(item)

    def _emit_trades(self, ms: int, active: Collection[str], out: list[MarketEvent]) -> None:
        groups: list[tuple[str, list[_BSym]]]
        if self.category == "option":
            bases: dict[str, list[_BSym]] = {}
            for st in self.order:
                bases.setdefault(st.spec.base, []).append(st)
            groups = [(f"publicTrade.{b}", m) for b, m in bases.items()]
        else:
            groups = [(f"publicTrade.{st.spec.symbol}", [st]) for st in self.order]
        for topic, members in groups:
            items: list[str] = []
            for st in members:
                items.extend(st.trades)
                st.trades.clear()
            if not items or topic not in active:
                continue
            for i in range(0, len(items), 1024):
                data = ",".join(items[i : i + 1024])
                if self.category == "option":
                    mid = f"{topic}-{members[0].seq}-{ms}"
                    text = (
                        f'{{"id":"{mid}","topic":"{topic}","ts":{ms},"data":[{data}],'
                        f'"type":"snapshot"}}'
                    )
                elif self.category == "spot":
                    text = f'{{"topic":"{topic}","ts":{ms},"type":"snapshot","data":[{data}]}}'
                else:
                    text = f'{{"topic":"{topic}","type":"snapshot","ts":{ms},"data":[{data}]}}'
                out.append(MarketEvent(topic, text.encode()))

    def _book_msg(
        self,
        topic: str,
        st: _BSym,
        v: _View,
        kind: str,
        bids: dict[int, int],
        asks: dict[int, int],
        ms: int,
    ) -> MarketEvent:
        b = _lv(st.fp, st.fq, sorted(bids.items(), reverse=True))
        a = _lv(st.fp, st.fq, sorted(asks.items()))
        data = f'{{"s":"{st.spec.symbol}","b":[{b}],"a":[{a}],"u":{v.u},"seq":{v.seq}}}'
        if self.category == "option":
            data = f'{{"s":"{st.spec.symbol}","b":[{b}],"a":[{a}],"u":{v.u}}}'
            text = (
                f'{{"id":"{topic}-{v.seq}-{ms}","topic":"{topic}","ts":{ms},"data":{data},'
                f'"type":"{kind}"}}'
            )
        elif self.category == "spot":
            text = f'{{"topic":"{topic}","ts":{ms},"type":"{kind}","data":{data},"cts":{v.cts}}}'
        else:
            text = f'{{"topic":"{topic}","type":"{kind}","ts":{ms},"data":{data},"cts":{v.cts}}}'
        v.last_sent_ms = ms
        return MarketEvent(topic, text.encode())

    def _books(self, st: _BSym, ms: int, active: Collection[str], out: list[MarketEvent]) -> None:
        s = st.spec.symbol
        for depth, v in st.views.items():
            idx = ms // v.interval
            if idx == v.last_idx:
                continue
            v.last_idx = idx
            topic = f"orderbook.{depth}.{s}"
            listening = topic in active
            if not listening and depth != self.rest_depth:
                v.live = False
                continue
            if v.reset:
                v.reset = False
                v.u = 0
                self._refresh(st, v, ms)
                if listening:
                    out.append(self._book_msg(topic, st, v, "snapshot", v.bids, v.asks, ms))
                continue
            if not v.live:
                self._refresh(st, v, ms)
                continue
            if v.fresh:
                v.fresh = False
                v.u += 1
                self._refresh(st, v, ms)
                if listening:
                    out.append(self._book_msg(topic, st, v, "snapshot", v.bids, v.asks, ms))
                continue
            bids, asks = st.book.top(depth)
            nb, na = dict(bids), dict(asks)
            db = {p: q for p, q in nb.items() if v.bids.get(p) != q}
            db.update({p: 0 for p in v.bids if p not in nb})
            da = {p: q for p, q in na.items() if v.asks.get(p) != q}
            da.update({p: 0 for p in v.asks if p not in na})
            v.bids, v.asks = nb, na
            if not db and not da:
                if depth == 1 and listening and ms - v.last_sent_ms >= 3000:
                    out.append(self._book_msg(topic, st, v, "snapshot", nb, na, ms))
                continue
            v.u += 1
            v.seq, v.cts = st.seq, ms
            if not listening:
                continue
            if depth == 1:
                out.append(self._book_msg(topic, st, v, "snapshot", nb, na, ms))
            else:
                out.append(self._book_msg(topic, st, v, "delta", db, da, ms))

    # -- tickers --------------------------------------------------------------------------------

    def _ticker_fields(self, st: _BSym) -> dict[str, str]:
        fp, fq, fqv = st.fp, st.fq, st.fqv
        b = st.book
        change = st.last_price - st.open
        pcnt = f"{change / max(st.open, 1):.6f}"
        cat = self.category
        if cat == "spot":
            return {
                "symbol": st.spec.symbol, "lastPrice": fp(st.last_price),
                "highPrice24h": fp(st.high), "lowPrice24h": fp(st.low),
                "prevPrice24h": fp(st.open), "volume24h": fq(st.vol),
                "turnover24h": fqv(st.turnover), "price24hPcnt": pcnt,
                "usdIndexPrice": fp(st.last_price),
            }  # fmt: skip
        if cat == "option":
            return {
                "symbol": st.spec.symbol, "bidPrice": fp(b.bb), "bidSize": fq(b.bids[b.bb]),
                "bidIv": "0.4800", "askPrice": fp(b.ba), "askSize": fq(b.asks[b.ba]),
                "askIv": "0.5140", "lastPrice": fp(st.last_price), "highPrice24h": fp(st.high),
                "lowPrice24h": fp(st.low), "markPrice": fp(st.last_price),
                "indexPrice": "65000.00", "markPriceIv": "0.4896", "underlyingPrice": "65010.00",
                "openInterest": "49.85", "turnover24h": fqv(st.turnover),
                "volume24h": fq(st.vol), "totalVolume": fq(st.vol),
                "totalTurnover": fqv(st.turnover), "delta": "0.047831", "gamma": "0.00021453",
                "vega": "0.81351067", "theta": "-19.9115368", "predictedDeliveryPrice": "0",
                "change24h": pcnt,
            }  # fmt: skip
        return {
            "symbol": st.spec.symbol, "tickDirection": st.tick_dir, "price24hPcnt": pcnt,
            "lastPrice": fp(st.last_price), "prevPrice24h": fp(st.open),
            "highPrice24h": fp(st.high), "lowPrice24h": fp(st.low),
            "prevPrice1h": fp(st.open), "markPrice": fp(st.last_price),
            "indexPrice": fp(st.last_price), "openInterest": "492373.72",
            "openInterestValue": "32824881841.75", "turnover24h": fqv(st.turnover),
            "volume24h": fq(st.vol), "fundingIntervalHour": "8", "fundingCap": "0.005",
            "singleOpenInterest": "246186.86", "singleOpenInterestValue": "16412440920.87",
            "nextFundingTime": "1760342400000", "fundingRate": "0.0001",
            "bid1Price": fp(b.bb), "bid1Size": fq(b.bids[b.bb]), "ask1Price": fp(b.ba),
            "ask1Size": fq(b.asks[b.ba]), "preOpenPrice": "", "preQty": "",
            "curPreListingPhase": "",
        }  # fmt: skip

    def _ticker_msg(
        self, topic: str, st: _BSym, fields: dict[str, str], kind: str, ms: int
    ) -> MarketEvent:
        data = orjson.dumps(fields).decode()
        cat = self.category
        if cat == "spot":
            text = f'{{"topic":"{topic}","ts":{ms},"type":"snapshot","cs":{st.seq},"data":{data}}}'
        elif cat == "option":
            text = (
                f'{{"id":"{topic}-{st.seq}-{ms}","topic":"{topic}","ts":{ms},"data":{data},'
                f'"type":"snapshot"}}'
            )
        else:
            text = f'{{"topic":"{topic}","type":"{kind}","data":{data},"cs":{st.seq},"ts":{ms}}}'
        return MarketEvent(topic, text.encode())

    def _tickers(self, st: _BSym, ms: int, active: Collection[str], out: list[MarketEvent]) -> None:
        topic = f"tickers.{st.spec.symbol}"
        idx = ms // TICKER_MS[self.category]
        if idx == st.ticker_idx:
            return
        st.ticker_idx = idx
        if topic not in active:
            st.ticker_sent = {}
            return
        fields = self._ticker_fields(st)
        if self.category in ("linear", "inverse"):
            delta = {k: v for k, v in fields.items() if st.ticker_sent.get(k) != v}
            if not st.ticker_sent:
                st.ticker_sent = fields
                out.append(self._ticker_msg(topic, st, fields, "snapshot", ms))
                return
            if len(delta) <= 0:
                return
            st.ticker_sent = fields
            delta = {"symbol": st.spec.symbol, **delta}
            out.append(self._ticker_msg(topic, st, delta, "delta", ms))
            return
        if fields == st.ticker_sent:
            return
        st.ticker_sent = fields
        out.append(self._ticker_msg(topic, st, fields, "snapshot", ms))

    def _klines(self, st: _BSym, ms: int, active: Collection[str], out: list[MarketEvent]) -> None:
        if self.category == "option":
            return
        s = st.spec.symbol
        for iv, length in KLINE_MS.items():
            topic = f"kline.{iv}.{s}"
            if topic not in active:
                st.klines.pop(iv, None)
                continue
            k = st.klines.get(iv)
            start = ms // length * length
            if k is None:
                p = st.last_price
                k = st.klines[iv] = _Kline(start, length, p, p, p, p, last_ms=ms)
                st.kline_idx[iv] = ms // 1000
            sec = ms // 1000
            closed = ms >= k.start + k.length
            if sec == st.kline_idx.get(iv) and not closed:
                continue
            st.kline_idx[iv] = sec
            fp, fq, fqv = st.fp, st.fq, st.fqv
            item = (
                f'{{"start":{k.start},"end":{k.start + k.length - 1},"interval":"{iv}",'
                f'"open":"{fp(k.o)}","close":"{fp(k.c)}","high":"{fp(k.h)}","low":"{fp(k.low)}",'
                f'"volume":"{fq(k.v)}","turnover":"{fqv(k.q)}",'
                f'"confirm":{"true" if closed else "false"},'
                f'"timestamp":{k.last_ms or ms}}}'
            )
            if self.category == "spot":
                text = f'{{"type":"snapshot","topic":"{topic}","data":[{item}],"ts":{ms}}}'
            else:
                text = f'{{"topic":"{topic}","data":[{item}],"ts":{ms},"type":"snapshot"}}'
            out.append(MarketEvent(topic, text.encode()))
            if closed:
                p = st.last_price
                st.klines[iv] = _Kline(start, length, p, p, p, p, last_ms=ms)

    def _liquidations(
        self, st: _BSym, ms: int, active: Collection[str], out: list[MarketEvent]
    ) -> None:
        if self.category not in ("linear", "inverse"):
            return
        idx = ms // 500
        if idx == st.liq_idx:
            return
        st.liq_idx = idx
        liqs, st.liqs = st.liqs, []
        topic = f"allLiquidation.{st.spec.symbol}"
        if liqs and topic in active:
            data = ",".join(liqs)
            out.append(
                MarketEvent(
                    topic,
                    f'{{"topic":"{topic}","type":"snapshot","ts":{ms},"data":[{data}]}}'.encode(),
                )
            )
