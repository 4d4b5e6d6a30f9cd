"""Timed Binance streams: klines, partial depth, tickers, mark price, forceOrder and the other
streams rendered on boundaries of their period (``binance-spot.md`` §6,
``binance-usdm-futures.md`` §5). COIN-M differences: ``ps`` after ``s``, markPrice without
``ap`` and with per-contract funding fields."""

from __future__ import annotations

from replay.sim._binance_coinm import mark_price
from replay.sim._binance_state import MS, US, Kline, SymState, json_bool, levels_json
from replay.sim._binance_streams import INTERVAL_MS, Parsed
from replay.sim._sbe_enc import encode_depth_snapshot
from replay.sim._types import MarketEvent


class TimedRenderer:
    """Renders the timed streams of one market from its symbols' state."""

    def __init__(
        self, flavor: str, syms: dict[str, SymState], cm: bool, funding_fields: bool
    ) -> None:
        self.flavor = flavor
        self.syms = syms
        self.order = list(syms.values())
        self.cm = cm
        self.coinm = flavor == "coinm"
        self.funding_fields = funding_fields

    def kline_state(self, parsed: Parsed, now_ms: int) -> Kline:
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
            k = Kline(start, length, st.trade_id, st.trade_id, *(st.last_price,) * 4)
            st.klines[key] = k
        return k

    def _kline_json(
        self, st: SymState, k: Kline, iv: str, closed: bool, with_symbol: bool, t: int
    ) -> str:
        fp, fq, fqv = st.fp, st.fq, st.fqv
        start, end = k.start * t, (k.start + k.interval_ms) * t - 1
        sym = f'"s":"{st.spec.symbol}",' if with_symbol else ""
        first, last = (k.first_id, k.last_id) if k.n else (-1, -1)
        return (
            f'{{"t":{start},"T":{end},{sym}"i":"{iv}","f":{first},"L":{last},"o":"{fp(k.o)}",'
            f'"c":"{fp(k.c)}","h":"{fp(k.h)}","l":"{fp(k.low)}","v":"{fq(k.v)}","n":{k.n},'
            f'"x":{json_bool(closed)},"q":"{fqv(k.q)}","V":"{fq(k.tv)}","Q":"{fqv(k.tq)}","B":"0"}}'
        )

    def render(self, name: str, parsed: Parsed, now_ns: int, out: list[MarketEvent]) -> None:
        kind = parsed.kind
        ms = now_ns // MS
        spot = self.flavor == "spot"
        st = self.syms.get(parsed.symbol or "")
        if kind in ("kline", "continuousKline") and st is not None:
            k = self.kline_state(parsed, ms)
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
                self.kline_state(parsed, ms)
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
        self, name: str, parsed: Parsed, st: SymState, now_ns: int, out: list[MarketEvent]
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
        b = levels_json(st.fp, st.fq, bids)
        a = levels_json(st.fp, st.fq, asks)
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

    def _symbol_timed(self, kind: str, st: SymState, parsed: Parsed, t: int, scale: int = 1) -> str:
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
            return mark_price(st, t, self.funding_fields)
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
