"""Per-symbol state of the synthetic Binance market: book, trade ids, 24 h stats, klines,
pending diff-depth changes per update speed; and the JSON fragments shared by the renderers."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from replay.sim._book import Book, Formatter
from replay.sim._types import SymbolSpec

MS = 1_000_000
US = 1_000
COINM_VALUE_DECIMALS = 8  # COIN-M volumes `q`/`Q` are base-asset amounts with 8 decimals


@dataclass(slots=True)
class Kline:
    """The open candle of one kline stream (integers in the symbol's units)."""

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
class PendingDiff:
    """Book changes since the last diff-depth event of one update speed."""

    first: int = 0
    changes: dict[tuple[bool, int], int] = field(default_factory=dict)
    prev_u: int = 0
    last_idx: int = -1


class SymState:
    """Everything the market keeps for one symbol."""

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
        self.pending = {s: PendingDiff(prev_u=self.book.update_id) for s in speeds}
        self.prev_partial: dict[str, int] = {}
        self.klines: dict[str, Kline] = {}
        self.force: tuple[bool, int, int] | None = None


def levels_json(fmt_p: Formatter, fmt_q: Formatter, levels: Sequence[tuple[int, int]]) -> str:
    return ",".join(f'["{fmt_p(p)}","{fmt_q(q)}"]' for p, q in levels)


def json_bool(flag: bool) -> str:
    return "true" if flag else "false"
