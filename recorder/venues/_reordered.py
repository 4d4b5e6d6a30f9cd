"""A payload spec node for objects whose key order varies (a generic :mod:`_jsonspec` node)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from recorder.venues._jsonspec import Key, Obj


class Reordered(Obj):
    """An object whose key order differs between API generations or from the docs.

    The first order is the spec's own; ``alternatives`` list other observed orders (each a
    permutation of the spec's keys). The order a payload used is kept in the int8 column
    ``column`` (0 = the spec's order) so that it re-renders exactly.
    """

    column: str
    variants: tuple[Obj, ...]
    orders: tuple[tuple[str, ...], ...]

    def __init__(self, *keys: Key, column: str, alternatives: Sequence[Sequence[str]]) -> None:
        object.__setattr__(self, "column", column)
        super().__init__(*keys)
        by_json = {k.json: k for k in keys}
        variants: list[Obj] = [Obj(*keys)]
        for alt in alternatives:
            if sorted(alt) != sorted(by_json):
                raise ValueError(f"alternative order {alt} is not a permutation of the keys")
            variants.append(Obj(*(by_json[j] for j in alt)))
        object.__setattr__(self, "variants", tuple(variants))
        object.__setattr__(self, "orders", tuple(tuple(k.json for k in v.keys) for v in variants))

    def columns(self) -> list[pa.Field]:
        return [*super().columns(), pa.field(self.column, pa.int8())]

    def extract(self, value: Any, row: dict[str, Any]) -> None:
        super().extract(value, row)
        seen = [k for k in value if k in self._by_json]
        for i, order in enumerate(self.orders):
            if [k for k in order if k in value] == seen:
                row[self.column] = i
                return
        row[self.column] = 0
        row["__extra__"] = True

    def is_absent(self, row: Mapping[str, Any]) -> bool:
        return super().is_absent(row) and row.get(self.column) is None

    def render(self, row: Mapping[str, Any], out: list[str]) -> None:
        self.variants[row.get(self.column) or 0].render(row, out)


__all__ = ["Reordered"]
