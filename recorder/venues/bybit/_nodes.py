"""Payload-spec nodes specific to Bybit: wide decimals and book levels whose number format
(trimmed or zero-padded decimals) is kept per message so payloads re-render exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
import pyarrow as pa

from recorder.venues._jsonspec import (
    LEVEL_TYPE,
    Dec,
    Key,
    Mismatch,
    Node,
    Obj,
    parse_decimal,
    render_decimal,
)

# --------------------------------------------------------------------------------------------
# Spec nodes specific to Bybit


class _Obj(Obj):
    """An :class:`Obj` whose Arrow columns follow a canonical order.

    The JSON key order differs between categories (spot trades start with ``i``, linear with
    ``T``); a canonical column order keeps one struct type for every Bybit venue.
    """

    canon: tuple[str, ...] | None

    def __init__(self, *keys: Key, canon: Sequence[str] | None = None) -> None:
        object.__setattr__(self, "canon", tuple(canon) if canon is not None else None)
        super().__init__(*keys)

    def columns(self) -> list[pa.Field]:
        cols = [f for k in self.keys for f in k.node.columns()]
        if self.canon is None:
            return cols
        rank = {n: i for i, n in enumerate(self.canon)}
        return sorted(cols, key=lambda f: rank.get(f.name, len(rank)))


@dataclass(frozen=True)
class WideDec(Dec):
    """A :class:`Dec` that also keeps the text (``<name>_text``) of a value with more digits
    than float64 holds (spot ``turnover24h`` such as ``"191747537.79752568"``, about half of
    spot ticker rows); the column is null for every other value, so it costs next to nothing
    and such rows still re-render exactly."""

    @property
    def text(self) -> str:
        return self.name + "_text"

    def columns(self) -> list[pa.Field]:
        return [*super().columns(), pa.field(self.text, pa.string())]

    def extract(self, value: Any, row: dict[str, Any]) -> None:
        super().extract(value, row)
        dp = row[self.dp]
        keep = None
        if isinstance(value, str) and dp >= 0 and render_decimal(row[self.name], dp) != value:
            keep = value
        row[self.text] = keep

    def render(self, row: Mapping[str, Any], out: list[str]) -> None:
        text = row.get(self.text)
        if text is not None:
            out.append(orjson.dumps(text).decode())
        else:
            super().render(row, out)


# Level number formats (bit flags in ``<name>_fmt``; price bits 0-1, qty bits 2-3).
FMT_ZERO_SHORT: Final = 1
"""Fixed fraction digits, but a zero is sent as ``"0"`` (linear/inverse delta deletions)."""
FMT_TRIMMED: Final = 2
"""Trailing zeros stripped (spot: ``"65140"``, ``"65140.4"``); ``_dp`` holds the maximum."""


def _level_format(texts: list[str], values: list[float]) -> tuple[int, int, bool]:
    """(fraction digits, format flags, representable) for one column of book levels."""
    if not texts:
        return 0, 0, True
    dps = []
    for t in texts:
        dot = t.find(".")
        dps.append(len(t) - dot - 1 if dot >= 0 else 0)
    first = dps[0]
    if all(d == first for d in dps):
        return first, 0, True
    nonzero = {d for d, v in zip(dps, values, strict=True) if v != 0.0}
    zeros_short = all(t == "0" for t, v in zip(texts, values, strict=True) if v == 0.0)
    if len(nonzero) == 1 and zeros_short:
        return nonzero.pop(), FMT_ZERO_SHORT, True
    top = max(dps)
    if not any("." in t and t.endswith("0") for t in texts):
        return top, FMT_TRIMMED, True
    return top, 0, False


def _render_level_value(v: float, dp: int, fmt: int) -> str:
    if fmt & FMT_TRIMMED:
        s = f"{v:.{dp}f}"
        return s.rstrip("0").rstrip(".") if "." in s else s
    if fmt & FMT_ZERO_SHORT and v == 0.0:
        return "0"
    return f"{v:.{dp}f}"


@dataclass(frozen=True)
class BookLevels(Node):
    """Bybit book levels ``[["price","size"], ...]``.

    Same columns as :class:`~recorder.venues._jsonspec.Levels` plus ``<name>_fmt`` (int8 flags, see
    ``FMT_*``): Bybit spot trims trailing zeros and futures deltas send deletions as ``"0"``,
    so a single fraction-digit count per column would lose the exact text.
    """

    name: str

    def columns(self) -> list[pa.Field]:
        return [
            pa.field(self.name, LEVEL_TYPE),
            pa.field(self.name + "_price_dp", pa.int8()),
            pa.field(self.name + "_qty_dp", pa.int8()),
            pa.field(self.name + "_fmt", pa.int8()),
        ]

    def extract(self, value: Any, row: dict[str, Any]) -> None:
        if not isinstance(value, list):
            raise Mismatch(f"{self.name}: expected an array of levels")
        ptexts: list[str] = []
        qtexts: list[str] = []
        prices: list[float] = []
        qtys: list[float] = []
        for lv in value:
            if not isinstance(lv, list) or len(lv) != 2:
                raise Mismatch(f"{self.name}: a level is not a [price, size] pair")
            p, pd = parse_decimal(lv[0])
            q, qd = parse_decimal(lv[1])
            if p is None or q is None or pd < 0 or qd < 0:
                raise Mismatch(f"{self.name}: empty price or size")
            ptexts.append(lv[0])
            qtexts.append(lv[1])
            prices.append(p)
            qtys.append(q)
        pdp, pfmt, pok = _level_format(ptexts, prices)
        qdp, qfmt, qok = _level_format(qtexts, qtys)
        if not (pok and qok):
            row["__extra__"] = True
        row[self.name] = [{"price": p, "qty": q} for p, q in zip(prices, qtys, strict=True)]
        row[self.name + "_price_dp"] = pdp
        row[self.name + "_qty_dp"] = qdp
        row[self.name + "_fmt"] = pfmt | (qfmt << 2)

    def render(self, row: Mapping[str, Any], out: list[str]) -> None:
        pdp = row[self.name + "_price_dp"]
        qdp = row[self.name + "_qty_dp"]
        fmt = row[self.name + "_fmt"] or 0
        pf, qf = fmt & 3, (fmt >> 2) & 3
        out.append("[")
        for i, lv in enumerate(row[self.name]):
            if i:
                out.append(",")
            p = _render_level_value(lv["price"], pdp, pf)
            q = _render_level_value(lv["qty"], qdp, qf)
            out.append(f'["{p}","{q}"]')
        out.append("]")
