"""Synthetic Binance market (spot JSON, USDⓈ-M futures, spot SBE): a :class:`MarketSource`.

One deterministic random walk per symbol (seeded); real-time streams are rendered when a step
happens, timed streams on wall-clock boundaries of their period. Payloads follow the documented
examples field by field (``binance-spot.md`` §6, ``binance-usdm-futures.md`` §5,
``binance-sbe.md`` §2). Diff-depth events chain per stream: spot ``U = previous u + 1``, futures
``pu = previous u``; the REST snapshot is the live book with ``lastUpdateId`` = last update id.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from replay.sim._book import Book, Fill, Formatter, parse_fixed
from replay.sim._sbe_enc import (
    encode_best_bid_ask,
    encode_depth_diff,
    encode_depth_snapshot,
    encode_trades,
)
from replay.sim._types import DepthSnapshot, MarketEvent, SymbolSpec

MS = 1_000_000
US = 1_000
COINM_VALUE_DECIMALS = 8

INTERVAL_MS: dict[str, int] = {
    "1s": 1000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
    "1M": 2_592_000_000,
}
WINDOWS = {"1h", "4h", "1d"}

SPOT_DEPTH_SPEEDS = {"": 1000, "@1000ms": 1000, "@100ms": 100}
USDM_DEPTH_SPEEDS = {"": 250, "@500ms": 500, "@100ms": 100}

# usdm route of each stream kind ("public" = book data, "market" = the rest)
USDM_PUBLIC_KINDS = {"bookTicker", "allBookTicker", "depth", "partial", "rpiDepth"}


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed Binance stream name."""

    kind: str
    symbol: str | None = None  # uppercase
    period_ms: int = 0  # 0 = real time
    arg: str = ""  # interval, window, levels ...

    @property
    def usdm_route(self) -> str:
        return "public" if self.kind in USDM_PUBLIC_KINDS else "market"


_SYM = r"([a-z0-9]+)"
_SPOT_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Parsed | None]]] = []
_USDM_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Parsed | None]]] = []
_SBE_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Parsed | None]]] = []
_COINM_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Parsed | None]]] = []


def _kline(m: re.Match[str], period: Callable[[str], int]) -> Parsed | None:
    iv = m.group(2)
    if iv not in INTERVAL_MS:
        return None
    tz = m.group(3) if m.re.groups >= 3 else None  # spot `@+08:00` variant
    return Parsed("kline", m.group(1).upper(), period(iv), iv + (tz or ""))


def _depth_patterns(
    p: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Parsed | None]]],
    speeds: dict[str, int],
) -> None:
    """Partial book (``@depth5``...) and diff depth streams, at the venue's update speeds."""
    speed = "(" + "|".join(re.escape(k) for k in speeds if k) + ")?"
    p.append(
        (
            re.compile(rf"{_SYM}@depth(5|10|20){speed}"),
            lambda m: Parsed("partial", m.group(1).upper(), speeds[m.group(3) or ""], m.group(2)),
        )
    )
    p.append(
        (
            re.compile(rf"{_SYM}@depth{speed}"),
            lambda m: Parsed("depth", m.group(1).upper(), speeds[m.group(2) or ""]),
        )
    )


def _spot_patterns() -> None:
    p = _SPOT_PATTERNS
    p.append((re.compile(rf"{_SYM}@trade"), lambda m: Parsed("trade", m.group(1).upper())))
    p.append((re.compile(rf"{_SYM}@aggTrade"), lambda m: Parsed("aggTrade", m.group(1).upper())))
    p.append(
        (
            re.compile(rf"{_SYM}@kline_([0-9]+[smhdwM])(@\+08:00)?"),
            lambda m: _kline(m, lambda iv: 1000 if iv == "1s" else 2000),
        )
    )
    p.append(
        (
            re.compile(rf"{_SYM}@miniTicker"),
            lambda m: Parsed("miniTicker", m.group(1).upper(), 1000),
        )
    )
    p.append((re.compile(r"!miniTicker@arr"), lambda m: Parsed("allMiniTicker", None, 1000)))
    p.append((re.compile(rf"{_SYM}@ticker"), lambda m: Parsed("ticker", m.group(1).upper(), 1000)))
    p.append(
        (
            re.compile(rf"{_SYM}@ticker_(1h|4h|1d)"),
            lambda m: Parsed("windowTicker", m.group(1).upper(), 1000, m.group(2)),
        )
    )
    p.append(
        (
            re.compile(r"!ticker_(1h|4h|1d)@arr"),
            lambda m: Parsed("allWindowTicker", None, 1000, m.group(1)),
        )
    )
    p.append(
        (re.compile(rf"{_SYM}@bookTicker"), lambda m: Parsed("bookTicker", m.group(1).upper()))
    )
    p.append(
        (re.compile(rf"{_SYM}@avgPrice"), lambda m: Parsed("avgPrice", m.group(1).upper(), 1000))
    )
    p.append(
        (
            re.compile(rf"{_SYM}@referencePrice"),
            lambda m: Parsed("referencePrice", m.group(1).upper(), 1000),
        )
    )
    p.append(
        (re.compile(rf"{_SYM}@blockTrade"), lambda m: Parsed("blockTrade", m.group(1).upper()))
    )
    _depth_patterns(p, SPOT_DEPTH_SPEEDS)


def _usdm_patterns() -> None:
    p = _USDM_PATTERNS
    # `<symbol>@trade` is undocumented for USDⓈ-M but live (shared/corpus/binance-usdm/trade)
    p.append((re.compile(rf"{_SYM}@trade"), lambda m: Parsed("trade", m.group(1).upper())))
    p.append((re.compile(rf"{_SYM}@aggTrade"), lambda m: Parsed("aggTrade", m.group(1).upper())))
    p.append(
        (
            re.compile(rf"{_SYM}@markPrice(@1s)?"),
            lambda m: Parsed("markPrice", m.group(1).upper(), 1000 if m.group(2) else 3000),
        )
    )
    p.append(
        (
            re.compile(r"!markPrice@arr(@1s)?"),
            lambda m: Parsed("allMarkPrice", None, 1000 if m.group(1) else 3000),
        )
    )
    p.append((re.compile(rf"{_SYM}@kline_([0-9]+[smhdwM])"), lambda m: _kline(m, lambda iv: 250)))
    p.append(
        (
            re.compile(
                rf"{_SYM}_(perpetual|current_quarter|next_quarter|tradifi_perpetual)"
                r"@continuousKline_([0-9]+[smhdwM])"
            ),
            lambda m: (
                Parsed("continuousKline", m.group(1).upper(), 250, m.group(3) + "|" + m.group(2))
                if m.group(3) in INTERVAL_MS
                else None
            ),
        )
    )
    p.append(
        (
            re.compile(rf"{_SYM}@miniTicker"),
            lambda m: Parsed("miniTicker", m.group(1).upper(), 2000),
        )
    )
    p.append((re.compile(r"!miniTicker@arr"), lambda m: Parsed("allMiniTicker", None, 1000)))
    p.append((re.compile(rf"{_SYM}@ticker"), lambda m: Parsed("ticker", m.group(1).upper(), 2000)))
    p.append((re.compile(r"!ticker@arr"), lambda m: Parsed("allTicker", None, 1000)))
    p.append(
        (re.compile(rf"{_SYM}@bookTicker"), lambda m: Parsed("bookTicker", m.group(1).upper()))
    )
    p.append((re.compile(r"!bookTicker"), lambda m: Parsed("allBookTicker", None, 5000)))
    p.append(
        (
            re.compile(rf"{_SYM}@forceOrder"),
            lambda m: Parsed("forceOrder", m.group(1).upper(), 1000),
        )
    )
    p.append((re.compile(r"!forceOrder@arr"), lambda m: Parsed("allForceOrder", None, 1000)))
    _depth_patterns(p, USDM_DEPTH_SPEEDS)
    p.append(
        (
            re.compile(rf"{_SYM}@rpiDepth@500ms"),
            lambda m: Parsed("rpiDepth", m.group(1).upper(), 500),
        )
    )
    p.append(
        (
            re.compile(rf"{_SYM}@compositeIndex"),
            lambda m: Parsed("compositeIndex", m.group(1).upper(), 1000),
        )
    )
    p.append((re.compile(r"!contractInfo"), lambda m: Parsed("contractInfo", None, 0)))
    p.append((re.compile(r"!assetIndex@arr"), lambda m: Parsed("allAssetIndex", None, 1000)))
    p.append(
        (
            re.compile(r"([a-z0-9]+)@assetIndex"),
            lambda m: Parsed("assetIndex", None, 1000, m.group(1).upper()),
        )
    )
    p.append((re.compile(r"tradingSession"), lambda m: Parsed("tradingSession", None, 1000)))


def _sbe_patterns() -> None:
    p = _SBE_PATTERNS
    p.append((re.compile(rf"{_SYM}@trade"), lambda m: Parsed("trade", m.group(1).upper())))
    p.append(
        (re.compile(rf"{_SYM}@bestBidAsk"), lambda m: Parsed("bestBidAsk", m.group(1).upper()))
    )
    p.append((re.compile(rf"{_SYM}@depth20"), lambda m: Parsed("depth20", m.group(1).upper(), 50)))
    p.append((re.compile(rf"{_SYM}@depth"), lambda m: Parsed("depth", m.group(1).upper(), 20)))


def _coinm_patterns() -> None:
    """COIN-M (``dstream``): the USDⓈ-M forms for contract symbols such as ``btcusd_perp``."""
    p = _COINM_PATTERNS
    sym = r"([a-z0-9]+_[a-z0-9]+)"
    p.append((re.compile(rf"{sym}@aggTrade"), lambda m: Parsed("aggTrade", m.group(1).upper())))
    p.append(
        (
            re.compile(rf"{sym}@markPrice(@1s)?"),
            lambda m: Parsed("markPrice", m.group(1).upper(), 1000 if m.group(2) else 3000),
        )
    )
    p.append((re.compile(rf"{sym}@kline_([0-9]+[smhdwM])"), lambda m: _kline(m, lambda iv: 250)))
    p.append((re.compile(rf"{sym}@bookTicker"), lambda m: Parsed("bookTicker", m.group(1).upper())))
    p.append(
        (
            re.compile(rf"{sym}@forceOrder"),
            lambda m: Parsed("forceOrder", m.group(1).upper(), 1000),
        )
    )
    p.append((re.compile(r"!forceOrder@arr"), lambda m: Parsed("allForceOrder", None, 1000)))
    speed = "(" + "|".join(re.escape(k) for k in USDM_DEPTH_SPEEDS if k) + ")?"
    p.append(
        (
            re.compile(rf"{sym}@depth(5|10|20){speed}"),
            lambda m: Parsed(
                "partial", m.group(1).upper(), USDM_DEPTH_SPEEDS[m.group(3) or ""], m.group(2)
            ),
        )
    )
    p.append(
        (
            re.compile(rf"{sym}@depth{speed}"),
            lambda m: Parsed("depth", m.group(1).upper(), USDM_DEPTH_SPEEDS[m.group(2) or ""]),
        )
    )


_spot_patterns()
_usdm_patterns()
_sbe_patterns()
_coinm_patterns()
PATTERNS = {
    "spot": _SPOT_PATTERNS,
    "usdm": _USDM_PATTERNS,
    "sbe": _SBE_PATTERNS,
    "coinm": _COINM_PATTERNS,
}
FLAVORS = {
    "binance-spot": "spot",
    "binance-usdm": "usdm",
    "binance-sbe": "sbe",
    "binance-coinm": "coinm",
}


def parse_stream(flavor: str, name: str, symbols: Collection[str]) -> Parsed | None:
    """Parse a stream name; None if invalid (unknown form or symbol, not lowercase)."""
    for pat, make in PATTERNS[flavor]:
        m = pat.fullmatch(name)
        if m is not None:
            parsed = make(m)
            if parsed is None:
                return None
            if parsed.symbol is not None and parsed.symbol not in symbols:
                return None
            return parsed
    return None


@dataclass(slots=True)
class _Kline:
    start: int
    interval_ms: int
    first_id: int
    last_id: int
    o: int
    h: int
    low: int
    c: int
    v: int = 0
    q: int = 0
    n: int = 0
    tv: int = 0
    tq: int = 0


@dataclass(slots=True)
class _Pending:
    first: int = 0
    changes: dict[tuple[bool, int], int] = field(default_factory=dict)
    prev_u: int = 0
    last_idx: int = -1


class _Sym:
    __slots__ = (
        "agg_id",
        "agg_idx",
        "aggs",
        "bbo",
        "block_id",
        "book",
        "changed",
        "first_trade_id",
        "force",
        "fp",
        "fq",
        "fqv",
        "high",
        "klines",
        "last_price",
        "last_qty",
        "last_trade_ms",
        "low",
        "lower",
        "n",
        "open",
        "pending",
        "prev_partial",
        "ps",
        "quote_vol",
        "spec",
        "trade_id",
        "vol",
    )

    def __init__(
        self,
        spec: SymbolSpec,
        rng: random.Random,
        levels: int,
        speeds: Sequence[int],
        coinm: bool = False,
    ):
        self.spec = spec
        self.lower = spec.symbol.lower()
        self.book = Book(spec, rng, levels, rng.randrange(10**8, 10**9))
        self.fp = Formatter(spec.price_decimals, spec.wire_pd)
        self.fq = Formatter(spec.qty_decimals, spec.wire_qd)
        qd = spec.price_decimals + spec.qty_decimals
        self.fqv = Formatter(qd, max(spec.wire_pd, qd if spec.wire_price_decimals is None else 8))
        # COIN-M: `ps` (pair) follows `s`; volumes "q"/"Q" are in the base asset, 8 decimals
        self.ps = f',"ps":"{spec.symbol.partition("_")[0]}"' if coinm else ""
        if coinm:
            self.fqv = Formatter(COINM_VALUE_DECIMALS, COINM_VALUE_DECIMALS)
        self.trade_id = rng.randrange(10**8, 10**9)
        self.first_trade_id = self.trade_id + 1
        self.agg_id = rng.randrange(10**7, 10**8)
        self.aggs: list[list[int]] = []
        self.block_id = rng.randrange(100, 1000)
        self.agg_idx = -1
        mid = (self.book.bb + self.book.ba) // 2
        self.open = self.high = self.low = self.last_price = mid
        self.last_qty = 0
        self.last_trade_ms = 0
        self.vol = 0
        self.quote_vol = 0
        self.n = 0
        self.changed = False
        self.bbo = (0, 0, 0, 0)
        self.pending = {s: _Pending(prev_u=self.book.update_id) for s in speeds}
        self.prev_partial: dict[str, int] = {}
        self.klines: dict[str, _Kline] = {}
        self.force: tuple[bool, int, int] | None = None


def _levels(fmt_p: Formatter, fmt_q: Formatter, levels: Sequence[tuple[int, int]]) -> str:
    return ",".join(f'["{fmt_p(p)}","{fmt_q(q)}"]' for p, q in levels)


def _b(flag: bool) -> str:
    return "true" if flag else "false"


class BinanceMarket:
    """Synthetic market for ``binance-spot``, ``binance-usdm`` or ``binance-sbe``."""

    def __init__(
        self,
        venue: str,
        specs: Sequence[SymbolSpec],
        *,
        seed: int,
        rate: float,
        levels: int = 200,
        cm_fields: bool = False,
        funding_fields: bool = True,
    ) -> None:
        self._venue = venue
        self.flavor = FLAVORS[venue]
        self.futures = self.flavor in ("usdm", "coinm")
        self.coinm = self.flavor == "coinm"
        self.rng = random.Random(f"{venue}:{seed}")
        self.rate = rate
        self.cm = cm_fields and self.flavor == "usdm"
        self.funding_fields = funding_fields  # COIN-M markPrice `r`/`T` (see VenueConfig)
        speeds = {
            "spot": (1000, 100),
            "usdm": (250, 500, 100),
            "coinm": (250, 500, 100),
            "sbe": (20,),
        }[self.flavor]
        self.speeds = speeds
        self.specs = tuple(specs)
        self.syms = {s.symbol: _Sym(s, self.rng, levels, speeds, self.coinm) for s in specs}
        self.order = list(self.syms.values())
        self.t0: int | None = None
        self.steps_done = 0
        self._parsed: dict[str, Parsed | None] = {}
        self._last_idx: dict[str, int] = {}
        self._last_sec = -1

    # -- MarketSource -------------------------------------------------------------------------

    @property
    def venue(self) -> str:
        return self._venue

    def instruments(self) -> Sequence[SymbolSpec]:
        return self.specs

    def symbols(self) -> Collection[str]:
        return self.syms.keys()

    def parse(self, name: str) -> Parsed | None:
        if name in self._parsed:
            return self._parsed[name]
        parsed = parse_stream(self.flavor, name, self.syms)
        if len(self._parsed) < 100_000:
            self._parsed[name] = parsed
        return parsed

    def on_subscribe(self, stream: str, now_ns: int) -> Sequence[MarketEvent]:
        return ()

    def reset_book(self, symbol: str | None) -> None:
        return None

    def depth_snapshot(self, symbol: str, limit: int, now_ns: int) -> DepthSnapshot | None:
        st = self.syms.get(symbol)
        if st is None:
            return None
        bids, asks = st.book.top(limit)
        return DepthSnapshot(
            last_update_id=st.book.update_id,
            bids=[(st.fp(p), st.fq(q)) for p, q in bids],
            asks=[(st.fp(p), st.fq(q)) for p, q in asks],
            time_ms=now_ns // MS,
        )

    def advance(self, now_ns: int, active: Collection[str]) -> list[MarketEvent]:
        if self.t0 is None:
            self.t0 = now_ns
        target = int((now_ns - self.t0) / 1e9 * self.rate)
        n = target - self.steps_done
        if n > self.rate * 2 + 10:  # after a long pause, do not burst more than 2 s of steps
            self.steps_done = target - int(self.rate * 2 + 10)
            n = target - self.steps_done
        out: list[MarketEvent] = []
        rng = self.rng
        flavor = self.flavor
        for _ in range(max(n, 0)):
            st = (
                self.order[rng.randrange(len(self.order))] if len(self.order) > 1 else self.order[0]
            )
            if rng.random() < 0.35:
                fills, change = st.book.trade(rng.random() < 0.5)
                self._record_change(st, change)
                self._trades(st, fills, now_ns, active, out)
            else:
                change = st.book.change()
                self._record_change(st, change)
            self._bbo(st, now_ns, active, out)
            if self.futures and rng.random() < 0.01:
                st.force = (rng.random() < 0.5, st.book.bb, st.book.rand_qty())
            elif flavor == "spot" and rng.random() < 0.002:
                self._block_trade(st, now_ns, active, out)
        self.steps_done += max(n, 0)
        self._timed(now_ns, active, out)
        return out

    # -- real time ------------------------------------------------------------------------------

    def _record_change(self, st: _Sym, change: tuple[bool, int, int]) -> None:
        is_bid, price, qty = change
        uid = st.book.update_id
        for pend in st.pending.values():
            if not pend.changes:
                pend.first = uid
            pend.changes[(is_bid, price)] = qty

    def _trades(
        self,
        st: _Sym,
        fills: list[Fill],
        now_ns: int,
        active: Collection[str],
        out: list[MarketEvent],
    ) -> None:
        if not fills:
            return
        first = st.trade_id + 1
        ms = now_ns // MS
        total = 0
        for f in fills:
            st.trade_id += 1
            st.n += 1
            st.vol += f.qty
            value = self._value(st, f.qty, f.price)
            st.quote_vol += value
            total += f.qty
            for k in st.klines.values():
                if k.n == 0:
                    k.first_id = st.trade_id
                    k.o = k.h = k.low = f.price
                k.last_id = st.trade_id
                k.c = f.price
                k.h = max(k.h, f.price)
                k.low = min(k.low, f.price)
                k.v += f.qty
                k.q += value
                k.n += 1
                if not f.buyer_maker:
                    k.tv += f.qty
                    k.tq += value
        price = fills[0].price
        st.last_price = price
        st.last_qty = fills[-1].qty
        st.last_trade_ms = ms
        st.high = max(st.high, price)
        st.low = min(st.low, price)
        st.changed = True
        m = fills[0].buyer_maker
        p = st.fp(price)
        s = st.spec.symbol
        if self.flavor == "spot":
            name = f"{st.lower}@trade"
            if name in active:
                tid = first
                for f in fills:
                    q = st.fq(f.qty)
                    out.append(
                        MarketEvent(
                            name,
                            f'{{"e":"trade","E":{ms},"s":"{s}","t":{tid},"p":"{p}","q":"{q}",'
                            f'"T":{ms},"m":{_b(m)},"M":true}}'.encode(),
                            payload_us=f'{{"e":"trade","E":{now_ns // US},"s":"{s}",'
                            f'"t":{tid},"p":"{p}","q":"{q}","T":{now_ns // US},"m":{_b(m)},'
                            '"M":true}'.encode(),
                        )
                    )
                    tid += 1
        elif self.flavor == "sbe":
            name = f"{st.lower}@trade"
            if name in active:
                out.append(
                    MarketEvent(
                        name,
                        encode_trades(
                            now_ns // US,
                            now_ns // US,
                            -st.spec.price_decimals,
                            -st.spec.qty_decimals,
                            [
                                (first + i, f.price, f.qty, f.buyer_maker)
                                for i, f in enumerate(fills)
                            ],
                            s,
                        ),
                        binary=True,
                    )
                )
            return
        if self.flavor == "usdm":
            name = f"{st.lower}@trade"
            if name in active:
                tid = first
                for f in fills:
                    q = st.fq(f.qty)
                    out.append(
                        MarketEvent(
                            name,
                            f'{{"e":"trade","E":{ms},"T":{ms},"s":"{s}","t":{tid},"p":"{p}",'
                            f'"q":"{q}","X":"MARKET","m":{_b(m)}}}'.encode(),
                        )
                    )
                    tid += 1
        if self.futures:  # same price and taker side aggregated per 100 ms window
            last_agg = st.aggs[-1] if st.aggs else None
            if last_agg is not None and last_agg[1] == price and last_agg[2] == int(m):
                last_agg[3] += total
                last_agg[5] = st.trade_id
                last_agg[6] = ms
            else:
                st.agg_id += 1
                st.aggs.append([st.agg_id, price, int(m), total, first, st.trade_id, ms])
            return
        st.agg_id += 1
        name = f"{st.lower}@aggTrade"
        if name in active and self.flavor == "spot":
            q = st.fq(total)
            a = st.agg_id
            last = st.trade_id
            out.append(
                MarketEvent(
                    name,
                    f'{{"e":"aggTrade","E":{ms},"s":"{s}","a":{a},"p":"{p}","q":"{q}",'
                    f'"f":{first},"l":{last},"T":{ms},"m":{_b(m)},"M":true}}'.encode(),
                    payload_us=f'{{"e":"aggTrade","E":{now_ns // US},"s":"{s}","a":{a},'
                    f'"p":"{p}","q":"{q}","f":{first},"l":{last},"T":{now_ns // US},'
                    f'"m":{_b(m)},"M":true}}'.encode(),
                )
            )

    def _value(self, st: _Sym, qty: int, price: int) -> int:
        """Traded value in ``fqv`` units: quote (qty x price), or on COIN-M the base-asset
        amount of ``qty`` contracts of ``contract_size`` USD at ``price``."""
        if not self.coinm:
            return qty * price
        size = st.spec.contract_size or 100
        scale = 10 ** (COINM_VALUE_DECIMALS + st.spec.price_decimals - st.spec.qty_decimals)
        value: int = qty * size * scale // max(price, 1)
        return value

    def _flush_aggs(
        self, st: _Sym, now_ms: int, active: Collection[str], out: list[MarketEvent]
    ) -> None:
        """USDⓈ-M aggTrade: the aggregates of the last 100 ms window."""
        idx = now_ms // 100
        if idx == st.agg_idx:
            return
        st.agg_idx = idx
        aggs, st.aggs = st.aggs, []
        name = f"{st.lower}@aggTrade"
        if not aggs or name not in active:
            return
        s = st.spec.symbol
        st_field = ',"st":1' if self.cm else ""
        for a, price, m, qty, first, last, t in aggs:
            p, q = st.fp(price), st.fq(qty)
            nq = "" if self.coinm else f',"nq":"{q}"'  # RPI is USDⓈ-M only
            out.append(
                MarketEvent(
                    name,
                    f'{{"e":"aggTrade","E":{now_ms},"s":"{s}","a":{a},"p":"{p}","q":"{q}"{nq},'
                    f'"f":{first},"l":{last},"T":{t},"m":{_b(bool(m))}{st_field}}}'.encode(),
                )
            )

    def _block_trade(
        self, st: _Sym, now_ns: int, active: Collection[str], out: list[MarketEvent]
    ) -> None:
        """Spot ``<symbol>@blockTrade`` (binance-spot.md §6.13): own id sequence, rare."""
        st.block_id += 1
        price, qty = st.last_price, st.book.rand_qty() * 20
        m = _b(self.rng.random() < 0.5)  # draw before the listener check: keeps runs identical
        name = f"{st.lower}@blockTrade"
        if name not in active:
            return
        body = f'"s":"{st.spec.symbol}","t":{st.block_id},"p":"{st.fp(price)}","q":"{st.fq(qty)}"'
        ms, us = now_ns // MS, now_ns // US
        text = f'{{"e":"blockTrade","E":{ms},{body},"T":{ms - 200},"m":{m}}}'
        text_us = f'{{"e":"blockTrade","E":{us},{body},"T":{us - 200_000},"m":{m}}}'
        out.append(MarketEvent(name, text.encode(), payload_us=text_us.encode()))

    def _bbo(self, st: _Sym, now_ns: int, active: Collection[str], out: list[MarketEvent]) -> None:
        book = st.book
        bbo = (book.bb, book.bids[book.bb], book.ba, book.asks[book.ba])
        if bbo == st.bbo:
            return
        st.bbo = bbo
        s = st.spec.symbol
        if self.flavor == "sbe":
            name = f"{st.lower}@bestBidAsk"
            if name in active:
                out.append(
                    MarketEvent(
                        name,
                        encode_best_bid_ask(
                            now_ns // US,
                            book.update_id,
                            -st.spec.price_decimals,
                            -st.spec.qty_decimals,
                            bbo,
                            s,
                        ),
                        binary=True,
                        cull_key=name,
                    )
                )
            return
        name = f"{st.lower}@bookTicker"
        if name not in active:
            return
        fp, fq = st.fp, st.fq
        body = (
            f'"s":"{s}"{st.ps},"b":"{fp(bbo[0])}","B":"{fq(bbo[1])}","a":"{fp(bbo[2])}",'
            f'"A":"{fq(bbo[3])}"'
        )
        if self.flavor == "spot":
            out.append(MarketEvent(name, f'{{"u":{book.update_id},{body}}}'.encode()))
        else:
            ms = now_ns // MS
            extra = f',"st":1,"ps":"{s}"' if self.cm else ""
            out.append(
                MarketEvent(
                    name,
                    f'{{"e":"bookTicker","u":{book.update_id},"E":{ms},"T":{ms},{body}{extra}}}'.encode(),
                )
            )

    # -- timed ----------------------------------------------------------------------------------

    def _timed(self, now_ns: int, active: Collection[str], out: list[MarketEvent]) -> None:
        now_ms = now_ns // MS
        # diff depth: every speed is flushed on its boundary, listened to or not (keeps chains)
        for st in self.order:
            for speed, pend in st.pending.items():
                idx = now_ms // speed
                if idx == pend.last_idx:
                    continue
                pend.last_idx = idx
                if not pend.changes:
                    continue
                self._depth_diff(st, speed, pend, now_ns, active, out)
                pend.prev_u = st.book.update_id
                pend.changes = {}
        if self.futures:
            for st in self.order:
                self._flush_aggs(st, now_ms, active, out)
        for name in active:
            parsed = self.parse(name)
            if parsed is None or parsed.period_ms == 0 or parsed.kind == "depth":
                continue
            idx = now_ms // parsed.period_ms
            last = self._last_idx.get(name)
            self._last_idx[name] = idx
            if last is None:
                if parsed.kind in ("kline", "continuousKline"):
                    self._kline_state(parsed, now_ms)
                continue
            if last == idx:
                continue
            self._render_timed(name, parsed, now_ns, out)
        sec = now_ms // 1000
        if sec != self._last_sec:
            self._last_sec = sec
            for st in self.order:
                st.changed = False
                st.force = None

    def _depth_diff(
        self,
        st: _Sym,
        speed: int,
        pend: _Pending,
        now_ns: int,
        active: Collection[str],
        out: list[MarketEvent],
    ) -> None:
        fl = self.flavor
        if fl == "spot":
            name = f"{st.lower}@depth" if speed == 1000 else f"{st.lower}@depth@100ms"
            alt = f"{st.lower}@depth@1000ms" if speed == 1000 else ""
            if name not in active and alt not in active:
                return
        elif self.futures:
            suffix = {250: "", 500: "@500ms", 100: "@100ms"}[speed]
            name = f"{st.lower}@depth{suffix}"
            alt = f"{st.lower}@rpiDepth@500ms" if speed == 500 else ""
            if name not in active and alt not in active:
                return
        else:
            name, alt = f"{st.lower}@depth", ""
            if name not in active:
                return
        bids = sorted(((p, q) for (b, p), q in pend.changes.items() if b), reverse=True)
        asks = sorted((p, q) for (b, p), q in pend.changes.items() if not b)
        u = st.book.update_id
        s = st.spec.symbol
        if fl == "sbe":
            payload = encode_depth_diff(
                now_ns // US,
                pend.first,
                u,
                -st.spec.price_decimals,
                -st.spec.qty_decimals,
                bids,
                asks,
                s,
            )
            out.append(MarketEvent(name, payload, binary=True))
            return
        b = _levels(st.fp, st.fq, bids)
        a = _levels(st.fp, st.fq, asks)
        ms = now_ns // MS
        if fl == "spot":
            body = f'"s":"{s}","U":{pend.first},"u":{u},"b":[{b}],"a":[{a}]}}'
            ev = MarketEvent(
                name,
                f'{{"e":"depthUpdate","E":{ms},{body}'.encode(),
                payload_us=f'{{"e":"depthUpdate","E":{now_ns // US},{body}'.encode(),
            )
        else:
            extra = f',"st":1,"ps":"{s}"' if self.cm else ""
            ev = MarketEvent(
                name,
                f'{{"e":"depthUpdate","E":{ms},"T":{ms - 1},"s":"{s}"{st.ps},"U":{pend.first},'
                f'"u":{u},"pu":{pend.prev_u},"b":[{b}],"a":[{a}]{extra}}}'.encode(),
            )
        if name in active:
            out.append(ev)
        if alt and alt in active:
            out.append(MarketEvent(alt, ev.payload, payload_us=ev.payload_us))

    def _kline_state(self, parsed: Parsed, now_ms: int) -> _Kline:
        st = self.syms[parsed.symbol or ""]
        key = parsed.arg  # "1m", "1d@+08:00", "1m|perpetual"
        iv, _, tz = key.split("|")[0].partition("@")
        k = st.klines.get(key)
        length = INTERVAL_MS[iv]
        offset = 3 * 86_400_000 if iv == "1w" else 0  # weeks start on Monday
        if tz:
            offset += 8 * 3_600_000  # candles aligned to UTC+8
        start = (now_ms + offset) // length * length - offset
        if k is None:
            k = _Kline(start, length, st.trade_id, st.trade_id, *(st.last_price,) * 4)
            st.klines[key] = k
        return k

    def _kline_json(
        self, st: _Sym, k: _Kline, iv: str, closed: bool, with_symbol: bool, t: int
    ) -> str:
        fp, fq, fqv = st.fp, st.fq, st.fqv
        start, end = k.start * t, (k.start + k.interval_ms) * t - 1
        sym = f'"s":"{st.spec.symbol}",' if with_symbol else ""
        first, last = (k.first_id, k.last_id) if k.n else (-1, -1)
        return (
            f'{{"t":{start},"T":{end},{sym}"i":"{iv}","f":{first},"L":{last},"o":"{fp(k.o)}",'
            f'"c":"{fp(k.c)}","h":"{fp(k.h)}","l":"{fp(k.low)}","v":"{fq(k.v)}","n":{k.n},'
            f'"x":{_b(closed)},"q":"{fqv(k.q)}","V":"{fq(k.tv)}","Q":"{fqv(k.tq)}","B":"0"}}'
        )

    def _render_timed(self, name: str, parsed: Parsed, now_ns: int, out: list[MarketEvent]) -> None:
        kind = parsed.kind
        ms = now_ns // MS
        spot = self.flavor == "spot"
        st = self.syms.get(parsed.symbol or "")
        if kind in ("kline", "continuousKline") and st is not None:
            k = self._kline_state(parsed, ms)
            iv = parsed.arg.split("|")[0].partition("@")[0]
            closed = ms >= k.start + k.interval_ms
            for scale_name, scale in (("ms", 1), ("us", 1000)):
                if scale_name == "us" and not spot:
                    break
                E = ms * scale
                if kind == "kline":
                    body = self._kline_json(st, k, iv, closed, True, scale)
                    text = f'{{"e":"kline","E":{E},"s":"{st.spec.symbol}","k":{body}}}'
                else:
                    body = self._kline_json(st, k, iv, closed, False, scale)
                    ct = parsed.arg.split("|")[1].upper()
                    text = (
                        f'{{"e":"continuous_kline","E":{E},"ps":"{st.spec.symbol}","ct":"{ct}",'
                        f'"k":{body}}}'
                    )
                if scale == 1:
                    ev = MarketEvent(name, text.encode())
                else:
                    ev.payload_us = text.encode()
            out.append(ev)
            if closed:
                del st.klines[parsed.arg]
                self._kline_state(parsed, ms)
            return
        if kind in ("partial", "depth20") and st is not None:
            self._partial(name, parsed, st, now_ns, out)
            return
        if kind == "referencePrice" and st is not None:
            body = (
                f'{{"e":"referencePrice","s":"{st.spec.symbol}","r":"{st.fp(st.last_price)}","t":'
            )
            out.append(
                MarketEvent(
                    name, f"{body}{ms}}}".encode(), payload_us=f"{body}{now_ns // US}}}".encode()
                )
            )
            return
        if kind in ("miniTicker", "ticker", "windowTicker", "avgPrice", "markPrice") and st:
            text = self._symbol_timed(kind, st, parsed, ms)
            ev = MarketEvent(name, text.encode())
            if spot:
                ev.payload_us = self._symbol_timed(kind, st, parsed, now_ns // US, 1000).encode()
            out.append(ev)
            return
        if kind in ("allMiniTicker", "allWindowTicker", "allTicker", "allMarkPrice"):
            single = {
                "allMiniTicker": "miniTicker",
                "allWindowTicker": "windowTicker",
                "allTicker": "ticker",
                "allMarkPrice": "markPrice",
            }[kind]
            syms = [s for s in self.order if s.changed or single == "markPrice"]
            if not syms:
                return
            items = ",".join(self._symbol_timed(single, s, parsed, ms) for s in syms)
            ev = MarketEvent(name, f"[{items}]".encode())
            if spot:
                t = now_ns // US
                items_us = ",".join(self._symbol_timed(single, s, parsed, t, 1000) for s in syms)
                ev.payload_us = f"[{items_us}]".encode()
            out.append(ev)
            return
        if kind == "allBookTicker":
            for s in self.order:
                b = s.book
                extra = f',"st":1,"ps":"{s.spec.symbol}"' if self.cm else ""
                out.append(
                    MarketEvent(
                        name,
                        f'{{"e":"bookTicker","u":{b.update_id},"E":{ms},"T":{ms},'
                        f'"s":"{s.spec.symbol}"{s.ps},"b":"{s.fp(b.bb)}","B":"{s.fq(b.bids[b.bb])}",'
                        f'"a":"{s.fp(b.ba)}","A":"{s.fq(b.asks[b.ba])}"{extra}}}'.encode(),
                    )
                )
            return
        if kind in ("forceOrder", "allForceOrder"):
            for s in [st] if st is not None else self.order:
                if s.force is None:
                    continue
                buy, price, qty = s.force
                side = "BUY" if buy else "SELL"
                p, q = s.fp(price), s.fq(qty)
                extra = f',"st":1,"ps":"{s.spec.symbol}"' if self.cm and st is None else ""
                out.append(
                    MarketEvent(
                        name,
                        f'{{"e":"forceOrder","E":{ms},"o":{{"s":"{s.spec.symbol}"{s.ps},"S":"{side}",'
                        f'"o":"LIMIT","f":"IOC","q":"{q}","p":"{p}","ap":"{p}","X":"FILLED",'
                        f'"l":"{q}","z":"{q}","T":{ms - 1}}}{extra}}}'.encode(),
                    )
                )
            return
        if kind in ("allAssetIndex", "assetIndex"):
            item = (
                f'{{"e":"assetIndexUpdate","E":{ms},"s":"{parsed.arg or "BTCUSD"}",'
                f'"i":"{self.order[0].fp(self.order[0].last_price)}","b":"0.10000000",'
                '"a":"0.10000000","B":"0.24716207","A":"0.30208698","q":"0.05000000",'
                '"g":"0.05000000","Q":"0.26089330","G":"0.28835575"}'
            )
            text = f"[{item}]" if kind == "allAssetIndex" else item
            out.append(MarketEvent(name, text.encode()))
            return
        if kind == "tradingSession":
            start = ms // 3_600_000 * 3_600_000
            out.append(
                MarketEvent(
                    name,
                    f'{{"e":"EquityUpdate","E":{ms},"t":{start},"T":{start + 3_600_000},'
                    f'"S":"REGULAR"}}'.encode(),
                )
            )
            return
        if kind == "compositeIndex" and st is not None:
            out.append(
                MarketEvent(
                    name,
                    f'{{"e":"compositeIndex","E":{ms},"s":"{st.spec.symbol}",'
                    f'"p":"{st.fp(st.last_price)}","C":"baseAsset","c":[]}}'.encode(),
                )
            )

    def _partial(
        self, name: str, parsed: Parsed, st: _Sym, now_ns: int, out: list[MarketEvent]
    ) -> None:
        n = 20 if parsed.kind == "depth20" else int(parsed.arg)
        bids, asks = st.book.top(n)
        u = st.book.update_id
        s = st.spec.symbol
        if self.flavor == "sbe":
            payload = encode_depth_snapshot(
                now_ns // US, u, -st.spec.price_decimals, -st.spec.qty_decimals, bids, asks, s
            )
            out.append(MarketEvent(name, payload, binary=True))
            return
        b = _levels(st.fp, st.fq, bids)
        a = _levels(st.fp, st.fq, asks)
        if self.flavor == "spot":
            out.append(
                MarketEvent(name, f'{{"lastUpdateId":{u},"bids":[{b}],"asks":[{a}]}}'.encode())
            )
            return
        prev = st.prev_partial.get(name, u)
        st.prev_partial[name] = u
        first = prev + 1 if prev < u else u
        ms = now_ns // MS
        extra = f',"st":1,"ps":"{s}"' if self.cm else ""
        out.append(
            MarketEvent(
                name,
                f'{{"e":"depthUpdate","E":{ms},"T":{ms - 1},"s":"{s}"{st.ps},"U":{first},"u":{u},'
                f'"pu":{prev},"b":[{b}],"a":[{a}]{extra}}}'.encode(),
            )
        )

    def _symbol_timed(self, kind: str, st: _Sym, parsed: Parsed, t: int, scale: int = 1) -> str:
        """One ticker-like object; ``t`` is the event time in the output unit."""
        fp, fq, fqv = st.fp, st.fq, st.fqv
        s = st.spec.symbol
        c, o, h, low = st.last_price, st.open, st.high, st.low
        v, q = fq(st.vol), fqv(st.quote_vol)
        cm = self.cm
        extra = f',"st":1,"ps":"{s}"' if cm else ""
        if kind == "miniTicker":
            return (
                f'{{"e":"24hrMiniTicker","E":{t},"s":"{s}","c":"{fp(c)}","o":"{fp(o)}",'
                f'"h":"{fp(h)}","l":"{fp(low)}","v":"{v}","q":"{q}"{extra}}}'
            )
        if kind == "markPrice" and self.coinm:
            return self._coinm_mark_price(st, t)
        if kind == "markPrice":
            st_f = ',"st":1' if cm else ""
            nxt = (t // 28_800_000 + 1) * 28_800_000
            return (
                f'{{"e":"markPriceUpdate","E":{t},"s":"{s}","p":"{fp(c)}","ap":"{fp(c)}",'
                f'"i":"{fp(c)}","P":"{fp(c)}","r":"0.00010000","T":{nxt}{st_f}}}'
            )
        if kind == "avgPrice":
            return (
                f'{{"e":"avgPrice","E":{t},"s":"{s}","i":"5m","w":"{fp(c)}",'
                f'"T":{st.last_trade_ms * scale}}}'
            )
        change = c - o
        sign = "-" if change < 0 else ""
        pct = abs(change) * 10000 // max(o, 1)
        pct_s = f"{sign}{pct // 100}.{pct % 100:02d}"
        w = st.quote_vol // st.vol if st.vol else c
        n = st.trade_id - st.first_trade_id + 1
        day = 86_400_000 * scale
        if kind == "windowTicker":
            win = parsed.arg
            return (
                f'{{"e":"{win}Ticker","E":{t},"s":"{s}","p":"{fp(change)}","P":"{pct_s}",'
                f'"o":"{fp(o)}","h":"{fp(h)}","l":"{fp(low)}","c":"{fp(c)}","w":"{fp(w)}",'
                f'"v":"{v}","q":"{q}","O":{t - day},"C":{t},"F":{st.first_trade_id},'
                f'"L":{st.trade_id},"n":{n}}}'
            )
        if self.flavor == "spot":
            b = st.book
            return (
                f'{{"e":"24hrTicker","E":{t},"s":"{s}","p":"{fp(change)}","P":"{pct_s}",'
                f'"w":"{fp(w)}","x":"{fp(o)}","c":"{fp(c)}","Q":"{fq(st.last_qty)}",'
                f'"b":"{fp(b.bb)}","B":"{fq(b.bids[b.bb])}","a":"{fp(b.ba)}",'
                f'"A":"{fq(b.asks[b.ba])}","o":"{fp(o)}","h":"{fp(h)}","l":"{fp(low)}",'
                f'"v":"{v}","q":"{q}","O":{t - day},"C":{t},"F":{st.first_trade_id},'
                f'"L":{st.trade_id},"n":{n}}}'
            )
        return (
            f'{{"e":"24hrTicker","E":{t},"s":"{s}","p":"{fp(change)}","P":"{pct_s}",'
            f'"w":"{fp(w)}","c":"{fp(c)}","Q":"{fq(st.last_qty)}","o":"{fp(o)}",'
            f'"h":"{fp(h)}","l":"{fp(low)}","v":"{v}","q":"{q}","O":{t - day},"C":{t},'
            f'"F":{st.first_trade_id},"L":{st.trade_id},"n":{n}{extra}}}'
        )

    def _coinm_mark_price(self, st: _Sym, t: int) -> str:
        """COIN-M markPriceUpdate: no `ap`; perpetuals carry funding `r`/`T`, delivery contracts
        `"r":""` and `"T":0` (both dropped with ``coinm_funding_fields=False``)."""
        p = st.fp(st.last_price)
        head = (
            f'{{"e":"markPriceUpdate","E":{t},"s":"{st.spec.symbol}","p":"{p}","P":"{p}","i":"{p}"'
        )
        if not self.funding_fields:
            return head + "}"
        if st.spec.symbol.endswith("_PERP"):
            nxt = (t // 28_800_000 + 1) * 28_800_000
            return f'{head},"r":"0.00010000","T":{nxt}}}'
        return f'{head},"r":"","T":0}}'


def mid_of(spec: SymbolSpec) -> int:
    return parse_fixed(spec.mid, spec.price_decimals)
