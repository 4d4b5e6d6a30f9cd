"""Synthetic Binance market (spot JSON, USDⓈ-M and COIN-M futures, spot SBE): a
:class:`MarketSource`.

One deterministic random walk per symbol (seeded); real-time streams (trades, aggTrade,
bookTicker, diff depth) are rendered here when a step happens, timed streams on wall-clock
boundaries of their period by ``_binance_timed``. Payloads follow the documented examples field by
field (``binance-spot.md`` §6, ``binance-usdm-futures.md`` §5, ``binance-sbe.md`` §2). Diff-depth
events chain per stream: spot ``U = previous u + 1``, futures ``pu = previous u``; the REST
snapshot is the live book with ``lastUpdateId`` = last update id.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence

from replay.sim._binance_coinm import base_value
from replay.sim._binance_state import (
    MS,
    US,
    PendingDiff,
    SymState,
    json_bool,
    levels_json,
)
from replay.sim._binance_streams import FLAVORS, Parsed, parse_stream
from replay.sim._binance_timed import TimedRenderer
from replay.sim._book import Fill
from replay.sim._sbe_enc import encode_best_bid_ask, encode_depth_diff, encode_trades
from replay.sim._types import DepthSnapshot, MarketEvent, SymbolSpec


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
        self.syms = {s.symbol: SymState(s, self.rng, levels, speeds, self.coinm) for s in specs}
        self.order = list(self.syms.values())
        self.timed = TimedRenderer(self.flavor, self.syms, self.cm, funding_fields)
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

    def _record_change(self, st: SymState, change: tuple[bool, int, int]) -> None:
        is_bid, price, qty = change
        uid = st.book.update_id
        for pend in st.pending.values():
            if not pend.changes:
                pend.first = uid
            pend.changes[(is_bid, price)] = qty

    def _trades(
        self,
        st: SymState,
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
                            f'"T":{ms},"m":{json_bool(m)},"M":true}}'.encode(),
                            payload_us=f'{{"e":"trade","E":{now_ns // US},"s":"{s}",'
                            f'"t":{tid},"p":"{p}","q":"{q}","T":{now_ns // US},"m":{json_bool(m)},'
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
                            f'"q":"{q}","X":"MARKET","m":{json_bool(m)}}}'.encode(),
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
                    f'"f":{first},"l":{last},"T":{ms},"m":{json_bool(m)},"M":true}}'.encode(),
                    payload_us=f'{{"e":"aggTrade","E":{now_ns // US},"s":"{s}","a":{a},'
                    f'"p":"{p}","q":"{q}","f":{first},"l":{last},"T":{now_ns // US},'
                    f'"m":{json_bool(m)},"M":true}}'.encode(),
                )
            )

    def _value(self, st: SymState, qty: int, price: int) -> int:
        """Traded value in ``fqv`` units: quote (qty x price); COIN-M: base-asset amount."""
        return base_value(st.spec, qty, price) if self.coinm else qty * price

    def _flush_aggs(
        self, st: SymState, now_ms: int, active: Collection[str], out: list[MarketEvent]
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
                    f'"f":{first},"l":{last},"T":{t},"m":{json_bool(bool(m))}{st_field}}}'.encode(),
                )
            )

    def _block_trade(
        self, st: SymState, now_ns: int, active: Collection[str], out: list[MarketEvent]
    ) -> None:
        """Spot ``<symbol>@blockTrade`` (binance-spot.md §6.13): own id sequence, rare."""
        st.block_id += 1
        price, qty = st.last_price, st.book.rand_qty() * 20
        m = json_bool(
            self.rng.random() < 0.5
        )  # draw before the listener check: keeps runs identical
        name = f"{st.lower}@blockTrade"
        if name not in active:
            return
        body = f'"s":"{st.spec.symbol}","t":{st.block_id},"p":"{st.fp(price)}","q":"{st.fq(qty)}"'
        ms, us = now_ns // MS, now_ns // US
        text = f'{{"e":"blockTrade","E":{ms},{body},"T":{ms - 200},"m":{m}}}'
        text_us = f'{{"e":"blockTrade","E":{us},{body},"T":{us - 200_000},"m":{m}}}'
        out.append(MarketEvent(name, text.encode(), payload_us=text_us.encode()))

    def _bbo(
        self, st: SymState, now_ns: int, active: Collection[str], out: list[MarketEvent]
    ) -> None:
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
                    self.timed.kline_state(parsed, now_ms)
                continue
            if last == idx:
                continue
            self.timed.render(name, parsed, now_ns, out)
        sec = now_ms // 1000
        if sec != self._last_sec:
            self._last_sec = sec
            for st in self.order:
                st.changed = False
                st.force = None

    def _depth_diff(
        self,
        st: SymState,
        speed: int,
        pend: PendingDiff,
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
        b = levels_json(st.fp, st.fq, bids)
        a = levels_json(st.fp, st.fq, asks)
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
