"""A deterministic random order book with integer prices/quantities (one per symbol)."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

from replay.sim._types import SymbolSpec


def parse_fixed(text: str, decimals: int) -> int:
    """``"65000.5"`` with 2 decimals -> 6500050."""
    whole, _, frac = text.partition(".")
    frac = (frac + "0" * decimals)[:decimals]
    sign = -1 if whole.startswith("-") else 1
    value: int = abs(int(whole or "0")) * 10**decimals + int(frac or "0")
    return sign * value


class Formatter:
    """Integer -> fixed-decimal string, with a cache (prices repeat a lot)."""

    __slots__ = ("_cache", "_pad", "_scale", "_trim", "_wire")

    def __init__(self, decimals: int, wire_decimals: int, trim: bool = False) -> None:
        self._pad = 10 ** (wire_decimals - decimals) if wire_decimals >= decimals else 1
        self._wire = wire_decimals
        self._scale = 10**wire_decimals
        self._trim = trim  # strip trailing zeros (Bybit spot prints "65140", "0.03")
        self._cache: dict[int, str] = {}

    def __call__(self, value: int) -> str:
        s = self._cache.get(value)
        if s is None:
            v = value * self._pad
            if self._wire == 0:
                s = str(v)
            else:
                sign = "-" if v < 0 else ""
                v = abs(v)
                s = f"{sign}{v // self._scale}.{v % self._scale:0{self._wire}d}"
                if self._trim:
                    s = s.rstrip("0").rstrip(".")
            if len(self._cache) < 100_000:
                self._cache[value] = s
        return s


@dataclass(slots=True)
class Fill:
    price: int
    qty: int
    buyer_maker: bool


class Book:
    """Bids/asks as ``{price: qty}``; every level change takes the next update id."""

    __slots__ = (
        "asks",
        "ba",
        "bb",
        "bids",
        "levels",
        "lot",
        "qty_scale",
        "rng",
        "tick",
        "update_id",
    )

    def __init__(self, spec: SymbolSpec, rng: random.Random, levels: int, first_id: int) -> None:
        self.rng = rng
        self.tick = spec.tick
        self.lot = spec.lot
        self.levels = levels
        mid = parse_fixed(spec.mid, spec.price_decimals)
        mid -= mid % self.tick
        self.qty_scale = max(5, 10**spec.qty_decimals // 4)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        for i in range(levels):
            p = mid - (i + 1) * self.tick
            if p > 0:
                self.bids[p] = self.rand_qty()
            self.asks[mid + (i + 1) * self.tick] = self.rand_qty()
        self.bb = max(self.bids)
        self.ba = min(self.asks)
        self.update_id = first_id

    def rand_qty(self) -> int:
        q = int(self.rng.expovariate(1.0 / self.qty_scale)) + 1
        return max(self.lot, q - q % self.lot)

    def _fix_best(self) -> None:
        if self.bb not in self.bids:
            self.bb = max(self.bids) if self.bids else 0
        if self.ba not in self.asks:
            self.ba = min(self.asks) if self.asks else self.bb + self.tick

    def change(self) -> tuple[bool, int, int]:
        """One random level change: (is_bid, price, new qty; 0 = removed)."""
        rng = self.rng
        is_bid = rng.random() < 0.5
        side = self.bids if is_bid else self.asks
        gap = (self.ba - self.bb) // self.tick - 1
        if gap > 0 and rng.random() < 0.6:
            k = -rng.randint(1, min(gap, 3))
        else:
            k = min(int(rng.expovariate(0.05)), self.levels - 1)
        price = self.bb - k * self.tick if is_bid else self.ba + k * self.tick
        if price <= 0:
            price = self.bb if is_bid else self.ba
        cur = side.get(price)
        fill = len(side) / self.levels
        if cur is not None and len(side) > 10 and rng.random() < 0.4 * fill * fill:
            del side[price]
            qty = 0
        else:
            qty = self.rand_qty()
            side[price] = qty
        if is_bid and price > self.bb:
            self.bb = price
        elif not is_bid and price < self.ba:
            self.ba = price
        if qty == 0:
            self._fix_best()
        self.update_id += 1
        if len(side) > self.levels * 2:
            worst = min(side) if is_bid else max(side)
            del side[worst]
        return is_bid, price, qty

    def trade(self, taker_buy: bool) -> tuple[list[Fill], tuple[bool, int, int]]:
        """A taker order against the best level: 1-3 fills at one price, one level change."""
        side = self.asks if taker_buy else self.bids
        price = self.ba if taker_buy else self.bb
        level = side[price]
        fills: list[Fill] = []
        for _ in range(1 + int(self.rng.random() < 0.3) + int(self.rng.random() < 0.1)):
            if level <= 0:
                break
            q = min(level, self.rand_qty())
            level -= q
            fills.append(Fill(price, q, not taker_buy))
        if level <= 0 and len(side) > 5:
            del side[price]
            level = 0
            self._fix_best()
        else:
            level = max(level, self.lot)
            side[price] = level
        self.update_id += 1
        return fills, (not taker_buy, price, level)

    def top(self, n: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        bids = heapq.nlargest(n, self.bids.items())
        asks = heapq.nsmallest(n, self.asks.items())
        return bids, asks

    def reset_ids(self, first_id: int) -> None:
        self.update_id = first_id
