"""Declarative JSON payload specs: typed Arrow columns that re-render the payload exactly.

A venue describes each channel's payload once, as a tree of nodes that mirrors the JSON
(key order included). From that one description this module derives

* the explicit Arrow schema of the channel's typed columns,
* ``extract``: parsed JSON -> one row of column values (the message's ``fields``), and
* ``render``: a row -> the exact compact JSON text.

The archive stores the typed row and keeps the raw payload only when ``render(extract(p)) != p``
(an unknown field, another key order, an odd number format): lossless, yet most rows cost only
their typed columns.

Decimals arrive as JSON strings (``"0.00100000"``). They are stored as ``float64`` (what
analysis wants) plus an ``int8`` count of fraction digits (``<col>_dp``), which re-renders the
text exactly for every value of up to 15 significant digits; the writer verifies each row, so a
value that does not survive the round trip only costs that row its raw bytes. ``_dp`` is -1 for
an empty string and -2 for JSON ``null``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

__all__ = [
    "Bool",
    "Const",
    "Dec",
    "Float",
    "Int",
    "Json",
    "Key",
    "Levels",
    "Mismatch",
    "Node",
    "Obj",
    "ObjList",
    "Str",
    "Time",
]

DP_EMPTY = -1
DP_NULL = -2


class Mismatch(Exception):
    """The payload does not have the shape the spec describes (raised by ``extract``)."""


_PLAIN = re.compile(r'[^"\\\x00-\x1f]*\Z')


def _json_str(value: str) -> str:
    # Most strings (symbols, ids, enums) need no escaping: skip the encoder for them.
    if value.isascii() and _PLAIN.match(value):
        return '"' + value + '"'
    return orjson.dumps(value).decode()


def parse_decimal(text: Any) -> tuple[float | None, int]:
    """Split a decimal string into (value, fraction digits); raises Mismatch on non-numbers.

    Shapes other than ``-?digits[.digits]`` ("1e-5", "007") still give a value; their
    re-rendering differs from the text, so the writer's exactness check keeps their bytes.
    """
    if type(text) is not str:
        if text is None:
            return None, DP_NULL
        raise Mismatch(f"expected a decimal string, got {type(text).__name__}")
    if not text:
        return None, DP_EMPTY
    try:
        value = float(text)
    except ValueError:
        raise Mismatch(f"not a decimal: {text[:40]!r}") from None
    dot = text.find(".")
    return value, (len(text) - dot - 1 if dot >= 0 else 0)


def render_decimal(value: float | None, dp: int | None) -> str:
    if dp == DP_EMPTY:
        return ""
    if value is None or dp is None:
        raise Mismatch("missing decimal")
    return f"{value:.{dp}f}"


class Node:
    """A JSON value description. Subclasses map one JSON value to zero or more columns."""

    def columns(self) -> list[pa.Field]:
        raise NotImplementedError

    def extract(self, value: Any, row: dict[str, Any]) -> None:
        """Store the columns for ``value`` into ``row``; raise :class:`Mismatch` if impossible."""
        raise NotImplementedError

    def absent(self, row: dict[str, Any]) -> None:
        """Store the columns of a key that is not present (all null)."""
        for f in self.columns():
            row[f.name] = None

    def is_absent(self, row: Mapping[str, Any]) -> bool:
        return all(row.get(f.name) is None for f in self.columns())

    def render(self, row: Mapping[str, Any], out: list[str]) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Const(Node):
    """A constant JSON value such as ``"e":"trade"``; stored nowhere."""

    value: Any

    def columns(self) -> list[pa.Field]:
        return []

    def extract(self, value: Any, row: dict[str, Any]) -> None:
        if value != self.value or type(value) is not type(self.value):
            raise Mismatch(f"expected {self.value!r}, got {value!r}")

    def is_absent(self, row: Mapping[str, Any]) -> bool:
        return False

    def render(self, row: Mapping[str, Any], out: list[str]) -> None:
        out.append(orjson.dumps(self.value).decode())


@dataclass(frozen=True)
class Int(Node):
    """A JSON integer (ids, counts) as int64."""

    name: str

    def columns(self) -> list[pa.Field]:
        return [pa.field(self.name, pa.int64())]

    def extract(self, value: Any, row: dict[str, Any]) -> None:
        if type(value) is not int or not -(2**63) <= value < 2**63:
            raise Mismatch(f"{self.name}: expected int64, got {value!r}")
        row[self.name] = value

    def render(self, row: Mapping[str, Any], out: list[str]) -> None:
        out.append(str(row[self.name]))


@dataclass(frozen=True)
class Time(Node):
    """A JSON integer timestamp in ``unit`` ('ms' or 'us'), stored as an Arrow timestamp."""

    name: str
    unit: str = "ms"

    def columns(self) -> list[pa.Field]:
        return [pa.field(self.name, pa.timestamp(self.unit, tz="UTC"))]

    def extract(self, value: Any, row: dict[str, Any]) -> None:
        if type(value) is not int or not -(2**63) <= value < 2**63:
            raise Mismatch(f"{self.name}: expected an integer time, got {value!r}")
        row[self.name] = value

    def render(self, row: Mapping[str, Any], out: list[str]) -> None:
        out.append(str(row[self.name]))


@dataclass(frozen=True)
class Str(Node):
    """A JSON string."""

    name: str

    def columns(self) -> list[pa.Field]:
        return [pa.field(self.name, pa.string())]

    def extract(self, value: Any, row: dict[str, Any]) -> None:
        if not isinstance(value, str):
            raise Mismatch(f"{self.name}: expected a string, got {value!r}")
        row[self.name] = value

    def render(self, row: Mapping[str, Any], out: list[str]) -> None:
        out.append(_json_str(row[self.name]))


@dataclass(frozen=True)
class Bool(Node):
    """A JSON boolean."""

    name: str

    def columns(self) -> list[pa.Field]:
        return [pa.field(self.name, pa.bool_())]

    def extract(self, value: Any, row: dict[str, Any]) -> None:
        if type(value) is not bool:
            raise Mismatch(f"{self.name}: expected a boolean, got {value!r}")
        row[self.name] = value

    def render(self, row: Mapping[str, Any], out: list[str]) -> None:
        out.append("true" if row[self.name] else "false")


@dataclass(frozen=True)
class Float(Node):
    """A JSON number with a fraction (rare: e.g. ``mmr`` in ``contractInfo``)."""

    name: str

    def columns(self) -> list[pa.Field]:
        return [pa.field(self.name, pa.float64())]

    def extract(self, value: Any, row: dict[str, Any]) -> None:
        if type(value) not in (int, float):
            raise Mismatch(f"{self.name}: expected a number, got {value!r}")
        row[self.name] = float(value)

    def render(self, row: Mapping[str, Any], out: list[str]) -> None:
        out.append(orjson.dumps(row[self.name]).decode())


@dataclass(frozen=True)
class Dec(Node):
    """A decimal sent as a JSON string: ``<name>`` float64 plus ``<name>_dp`` int8."""

    name: str

    @property
    def dp(self) -> str:
        return self.name + "_dp"

    def columns(self) -> list[pa.Field]:
        return [pa.field(self.name, pa.float64()), pa.field(self.dp, pa.int8())]

    def extract(self, value: Any, row: dict[str, Any]) -> None:
        row[self.name], row[self.dp] = parse_decimal(value)

    def is_absent(self, row: Mapping[str, Any]) -> bool:
        return row.get(self.dp) is None

    def render(self, row: Mapping[str, Any], out: list[str]) -> None:
        dp = row[self.dp]
        if dp == DP_NULL:
            out.append("null")
        else:
            out.append('"' + render_decimal(row[self.name], dp) + '"')


@dataclass(frozen=True)
class Json(Node):
    """Any JSON value kept as its compact text (for rare, irregular parts of a payload)."""

    name: str

    def columns(self) -> list[pa.Field]:
        return [pa.field(self.name, pa.string())]

    def extract(self, value: Any, row: dict[str, Any]) -> None:
        row[self.name] = orjson.dumps(value).decode()

    def render(self, row: Mapping[str, Any], out: list[str]) -> None:
        out.append(row[self.name])


@dataclass(frozen=True)
class Key:
    """One key of an object: its JSON name, its value node, and whether it may be missing."""

    json: str
    node: Node
    optional: bool = False


@dataclass(frozen=True)
class Obj(Node):
    """A JSON object with known keys in a known order. Its columns are its keys' columns."""

    keys: tuple[Key, ...]
    _by_json: dict[str, Key] = field(init=False, repr=False, compare=False)
    _prefixes: tuple[tuple[str, str, Key], ...] = field(init=False, repr=False, compare=False)

    def __init__(self, *keys: Key) -> None:
        object.__setattr__(self, "keys", tuple(keys))
        object.__setattr__(self, "_by_json", {k.json: k for k in keys})
        # '"name":' once per spec, not once per rendered field: (first, later, key).
        object.__setattr__(
            self,
            "_prefixes",
            tuple((_json_str(k.json) + ":", "," + _json_str(k.json) + ":", k) for k in keys),
        )
        names = [f.name for f in self.columns()]
        if len(names) != len(set(names)):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"duplicate column names in spec: {dupes}")

    def columns(self) -> list[pa.Field]:
        return [f for k in self.keys for f in k.node.columns()]

    def extract(self, value: Any, row: dict[str, Any]) -> None:
        if not isinstance(value, dict):
            raise Mismatch(f"expected an object, got {type(value).__name__}")
        seen = 0
        for k in self.keys:
            if k.json in value:
                k.node.extract(value[k.json], row)
                seen += 1
            elif k.optional:
                k.node.absent(row)
            else:
                raise Mismatch(f"missing key {k.json!r}")
        if seen != len(value):
            # Unknown keys: the typed row is still right, the renderer just cannot
            # reproduce the extras, so the writer keeps this row's raw bytes.
            row.setdefault("__extra__", True)

    def is_absent(self, row: Mapping[str, Any]) -> bool:
        return all(k.node.is_absent(row) for k in self.keys)

    def render(self, row: Mapping[str, Any], out: list[str]) -> None:
        out.append("{")
        first = True
        for head, sep, k in self._prefixes:
            if k.optional and k.node.is_absent(row):
                continue
            out.append(head if first else sep)
            first = False
            k.node.render(row, out)
        out.append("}")


def _struct_fields(obj: Obj) -> list[pa.Field]:
    return obj.columns()


@dataclass(frozen=True)
class ObjList(Node):
    """A JSON array of objects, stored as one ``list<struct<...>>`` column."""

    name: str
    item: Obj

    def columns(self) -> list[pa.Field]:
        return [pa.field(self.name, pa.list_(pa.struct(_struct_fields(self.item))))]

    def extract(self, value: Any, row: dict[str, Any]) -> None:
        if not isinstance(value, list):
            raise Mismatch(f"{self.name}: expected an array, got {type(value).__name__}")
        items = []
        for v in value:
            item: dict[str, Any] = {}
            self.item.extract(v, item)
            if item.pop("__extra__", False):
                row["__extra__"] = True
            items.append(item)
        row[self.name] = items

    def render(self, row: Mapping[str, Any], out: list[str]) -> None:
        out.append("[")
        for i, item in enumerate(row[self.name]):
            if i:
                out.append(",")
            self.item.render(item, out)
        out.append("]")


LEVEL_TYPE = pa.list_(pa.struct([pa.field("price", pa.float64()), pa.field("qty", pa.float64())]))


@dataclass(frozen=True)
class Levels(Node):
    """Book levels ``[["price","qty"], ...]``: a ``list<struct<price, qty>>`` column plus the
    fraction digits shared by every price (``<name>_price_dp``) and every qty (``<name>_qty_dp``).
    A message whose levels mix digit counts still stores its values; it keeps raw bytes."""

    name: str

    def columns(self) -> list[pa.Field]:
        return [
            pa.field(self.name, LEVEL_TYPE),
            pa.field(self.name + "_price_dp", pa.int8()),
            pa.field(self.name + "_qty_dp", pa.int8()),
        ]

    def extract(self, value: Any, row: dict[str, Any]) -> None:
        if not isinstance(value, list):
            raise Mismatch(f"{self.name}: expected an array of levels")
        levels = []
        pdp: int | None = None
        qdp: int | None = None
        uniform = True
        for lv in value:
            if not isinstance(lv, list) or len(lv) != 2:
                raise Mismatch(f"{self.name}: a level is not a [price, qty] pair")
            p, pd = parse_decimal(lv[0])
            q, qd = parse_decimal(lv[1])
            if p is None or q is None:
                raise Mismatch(f"{self.name}: empty price or qty")
            if pdp is None:
                pdp, qdp = pd, qd
            elif pd != pdp or qd != qdp:
                uniform = False
            levels.append({"price": p, "qty": q})
        if not uniform:
            row["__extra__"] = True
        row[self.name] = levels
        row[self.name + "_price_dp"] = pdp if pdp is not None else 0
        row[self.name + "_qty_dp"] = qdp if qdp is not None else 0

    def render(self, row: Mapping[str, Any], out: list[str]) -> None:
        pdp = row[self.name + "_price_dp"]
        qdp = row[self.name + "_qty_dp"]
        out.append("[")
        for i, lv in enumerate(row[self.name]):
            if i:
                out.append(",")
            out.append(f'["{lv["price"]:.{pdp}f}","{lv["qty"]:.{qdp}f}"]')
        out.append("]")


@dataclass(frozen=True)
class Payload:
    """A channel's payload description plus where its event time and symbol live."""

    root: Node
    event_time: str | None = None
    event_time_unit: str = "ms"
    symbol: str | None = None
    _fast: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fast = compile_obj(self.root) if type(self.root) is Obj else None
        object.__setattr__(self, "_fast", fast)

    def schema_fields(self) -> list[pa.Field]:
        return self.root.columns()

    def extract(self, value: Any) -> tuple[dict[str, Any], bool]:
        """Typed row of a parsed payload and whether it can possibly re-render exactly."""
        if self._fast is not None:
            row = self._fast[0](value)
        else:
            row = {}
            self.root.extract(value, row)
        extra = bool(row.pop("__extra__", False))
        return row, not extra

    def render(self, row: Mapping[str, Any]) -> str:
        if self._fast is not None:
            text: str = self._fast[1](row)
            return text
        out: list[str] = []
        self.root.render(row, out)
        return "".join(out)

    def event_ns(self, row: Mapping[str, Any]) -> int | None:
        if self.event_time is None:
            return None
        v = row.get(self.event_time)
        if v is None:
            return None
        return int(v) * _UNIT_NS[self.event_time_unit]


_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def unit_ns(unit: str) -> int:
    return _UNIT_NS[unit]


RowTransform = Callable[[dict[str, Any]], dict[str, Any]]


# -- compiled specs ---------------------------------------------------------------------------
#
# Walking the node tree costs a method call per field per message, several times what orjson
# needs to parse the payload. A top-level object whose fields are plain nodes is therefore
# compiled once into two flat functions (extract and render) with the same semantics; any other
# node (levels, lists, nested or venue-specific nodes) is called through its own methods.

_SIMPLE = (Const, Int, Time, Str, Bool, Dec, Float, Json)


def _render_dec(value: float | None, dp: int | None) -> str:
    if dp == DP_NULL:
        return "null"
    return '"' + render_decimal(value, dp) + '"'


def _render_node(node: Node, row: Mapping[str, Any]) -> str:
    out: list[str] = []
    node.render(row, out)
    return "".join(out)


_CHECKED: dict[type[Node], tuple[str, str, str]] = {
    # node type: (test that rejects the JSON value x, what was expected, its rendering)
    Int: ("type(x) is not int or not _LO <= x < _HI", "an integer", "str({})"),
    Time: ("type(x) is not int or not _LO <= x < _HI", "an integer", "str({})"),
    Str: ("type(x) is not str", "a string", "_js({})"),
    Bool: ("type(x) is not bool", "a boolean", "('true' if {} else 'false')"),
}
"""Plain nodes whose compiled extract is one type check and one store."""


def compile_obj(
    obj: Obj,
) -> tuple[Callable[[Any], dict[str, Any]], Callable[[Mapping[str, Any]], str]]:
    """(extract, render) functions equivalent to ``obj.extract`` / ``obj.render``."""
    ns: dict[str, Any] = {
        "Mismatch": Mismatch,
        "_pd": parse_decimal,
        "_js": _json_str,
        "_rd": _render_dec,
        "_rn": _render_node,
        "_dumps": orjson.dumps,
        "_MISSING": object(),
        "_LO": -(2**63),
        "_HI": 2**63,
    }
    ex = [
        "def extract(v):",
        "    if type(v) is not dict:",
        "        raise Mismatch('expected an object')",
    ]
    ex += ["    r = {}", "    n = 0"]
    rd = ["def render(r):", "    s = []", "    a = s.append"]
    for i, k in enumerate(obj.keys):
        node = k.node
        ns[f"N{i}"] = node
        key = repr(k.json)
        ex.append(f"    x = v.get({key}, _MISSING)")
        ex.append("    if x is _MISSING:")
        if k.optional:
            cols = [f.name for f in node.columns()]
            ex.extend(f"        r[{c!r}] = None" for c in cols)
            if not cols:
                ex.append("        pass")
        else:
            ex.append(f"        raise Mismatch('missing key ' + {key})")
        ex.append("    else:")
        ex.append("        n += 1")
        t = type(node)
        if t is Const:
            ns[f"C{i}"] = node.value  # type: ignore[attr-defined]
            ex.append(f"        if x != C{i} or type(x) is not type(C{i}):")
            ex.append(f"            raise Mismatch('unexpected value of ' + {key})")
            value = repr(orjson.dumps(node.value).decode())  # type: ignore[attr-defined]
        elif t in _CHECKED:
            bad, what, text = _CHECKED[t]
            name = repr(node.name)  # type: ignore[attr-defined]
            ex.append(f"        if {bad}:")
            ex.append(f"            raise Mismatch('expected {what} for ' + {key})")
            ex.append(f"        r[{name}] = x")
            value = text.format(f"r[{name}]")
        elif t is Dec:
            name, dp = repr(node.name), repr(node.dp)  # type: ignore[attr-defined]
            ex.append(f"        r[{name}], r[{dp}] = _pd(x)")
            value = f"_rd(r[{name}], r[{dp}])"
        elif t is Float:
            name = repr(node.name)  # type: ignore[attr-defined]
            ex.append("        if type(x) is not int and type(x) is not float:")
            ex.append(f"            raise Mismatch('expected a number for ' + {key})")
            ex.append(f"        r[{name}] = float(x)")
            value = f"_dumps(r[{name}]).decode()"
        elif t is Json:
            name = repr(node.name)  # type: ignore[attr-defined]
            ex.append(f"        r[{name}] = _dumps(x).decode()")
            value = f"r[{name}]"
        else:
            ex.append(f"        N{i}.extract(x, r)")
            value = f"_rn(N{i}, r)"
        head = repr(_json_str(k.json) + ":")
        if k.optional:
            if t in _SIMPLE and t is not Const:
                cols = [f.name for f in node.columns()]
                probe = repr(cols[-1] if t is Dec else cols[0])
                rd.append(f"    if r.get({probe}) is not None:")
            else:
                rd.append(f"    if not N{i}.is_absent(r):")
            rd.append(f"        a({head} + {value})")
        else:
            rd.append(f"    a({head} + {value})")
    ex.append("    if n != len(v):")
    ex.append("        r['__extra__'] = True")
    ex.append("    return r")
    rd.append("    return '{' + ','.join(s) + '}'")
    exec(compile("\n".join([*ex, "", *rd]), f"<jsonspec {id(obj):x}>", "exec"), ns)
    return ns["extract"], ns["render"]
