"""Rows of an archive table back into exact payload bytes, a batch at a time.

The per-row path (:meth:`recorder.venues._channels.ChannelCodec.render` on a dict of fields) costs
several microseconds per message in Python, far more than reading the row. For channels whose
payload spec is a plain :class:`~recorder.venues._jsonspec.Obj` of simple nodes, wrapped in no
envelope or in a :class:`~recorder.venues._channels.TextWrapper` (Binance's combined-stream
wrapper), :func:`fast_payloads` builds the whole
payload column with numpy and Arrow string kernels instead:

* integers and times are cast to text; strings that need no JSON escaping are quoted;
* a decimal (``float64`` plus ``<name>_dp`` fraction digits, which Python renders as
  ``f"{value:.{dp}f}"``) becomes its mantissa ``m = round(value * 10**dp)``, printed, padded
  with zeros to ``dp + 1`` digits and given a ``.`` before its last ``dp`` digits;
* a column with one value in the whole batch (the stream, the symbol, the envelope: a file
  holds one partition) is rendered once, in Python, and joined in as literal text.

Each Arrow call costs microseconds whatever its size, so the numbers of all columns of a
batch (every integer column, every decimal, every book level) are formatted together, in one
pass each, and the payload is assembled with one join.

A decimal row is only rendered this way when the result is provably what Python prints: the
mantissa is below 2**50 and ``m / 10**dp`` gives ``value`` back, so ``value`` is the double
nearest to that decimal, and that decimal is then the correctly rounded ``dp``-digit form of
``value``. Every other row (nulls, non-finite values, strings to escape, unknown envelopes...)
comes out null, and :func:`payloads` renders it with the codec instead: correctness never
depends on this module covering a case. Rows that kept their ``raw`` bytes use those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from recorder.archive._schema import unit_cast_schema
from recorder.core._codec import ChannelCodec
from recorder.venues._channels import NOT_WRAPPED, JsonChannel, NoEnvelope, TextWrapper
from recorder.venues._jsonspec import (
    DP_EMPTY,
    DP_NULL,
    Bool,
    Const,
    Dec,
    Int,
    Json,
    Key,
    Levels,
    Node,
    Obj,
    Payload,
    Str,
    Time,
    _json_str,
)
from recorder.venues._reordered import Reordered

__all__ = ["fast_payloads", "payloads", "typed_rows"]

_MAX_DP: Final = 18  # 10**dp fits int64 and is an exact double
_MANTISSA_LIMIT: Final = 2.0**50
_POW10: Final = np.array([10.0**k for k in range(_MAX_DP + 1)])
# Printable ASCII but '"' and '\\': the strings _json_str quotes without escaping.
_PLAIN_RE: Final = r"\A[ !#-\[\]-~]*\z"
_NULL_STR: Final = pa.scalar(None, pa.string())
_EMPTY: Final = pa.scalar("", pa.string())

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Text: TypeAlias = pa.Array | str
"""A piece of a payload: a string array (null where not rendered) or literal text."""


def _join(*parts: Text) -> pa.Array:
    """Element-wise concatenation; null wherever any part is null."""
    return pc.binary_join_element_wise(*parts, _EMPTY)


def _plain(arr: pa.Array) -> pa.Array:
    """Dictionary-encoded strings (as replay reads them) decoded."""
    if pa.types.is_dictionary(arr.type):
        return arr.dictionary_decode()
    return arr


def _constant(arr: pa.Array) -> Any:
    """The one value of a non-empty array without nulls, else None (not constant)."""
    if len(arr) == 0 or arr.null_count:
        return None
    if pa.types.is_dictionary(arr.type):
        if len(arr.dictionary) == 1:
            return arr.dictionary[0].as_py()
        lo, hi = pc.min_max(arr.indices).values()
        return arr.dictionary[lo.as_py()].as_py() if lo == hi else None
    arr = _plain(arr)
    first = arr[0]
    if len(arr) > 1 and not pc.all(pc.equal(arr, first)).as_py():
        return None
    return first.as_py()


def _unescaped(values: pa.Array) -> pa.Array:
    """Strings that JSON quotes as they are; null for the others (they need escaping)."""
    if pa.types.is_dictionary(values.type):  # test each distinct string once
        dictionary = _unescaped(values.dictionary)
        if dictionary.null_count == 0:
            return values.dictionary_decode()
        return dictionary.take(values.indices)
    plain = pc.match_substring_regex(values, _PLAIN_RE)
    if pc.all(plain).as_py():
        return values
    return pc.if_else(plain, values, _NULL_STR)


def _floats(arr: pa.Array) -> Floats:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)  # null -> nan


def _digit_counts(arr: pa.Array) -> Ints:
    """Fraction digit counts; null (a key that was absent) as -1: not rendered."""
    if arr.null_count:
        arr = pc.fill_null(arr, -1)
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.int64)


def decimal_text(values: Floats, dp: Ints) -> pa.Array:
    """``f"{value:.{dp}f}"`` per row where provably exact (see the module doc), else null.

    Prices repeat a lot (a few hundred distinct among thousands of rows), quantities less:
    with one digit count, each distinct value (by its bits: -0.0 is not 0.0) is formatted
    once and the texts are gathered."""
    if len(values) >= 256 and len(dp) and dp.min() == dp.max():
        encoded = pc.dictionary_encode(pa.array(values.view(np.int64)))
        distinct = np.asarray(encoded.dictionary.to_numpy(), np.int64).view(np.float64)
        if len(distinct) <= 0.6 * len(values):
            text = _decimal_text(distinct, np.full(len(distinct), dp[0], np.int64))
            return text.take(encoded.indices)
    return _decimal_text(values, dp)


def _decimal_text(values: Floats, dp: Ints) -> pa.Array:
    ok = (dp >= 0) & (dp <= _MAX_DP) & np.isfinite(values)
    d = np.where(ok, dp, 0)
    scale = _POW10[d]
    with np.errstate(all="ignore"):
        m = np.rint(values * scale)  # half to even; no row at a tie passes the check below
        ok &= (np.abs(m) < _MANTISSA_LIMIT) & (m / scale == values)
    text = pa.array(np.where(ok, np.abs(m), 0.0).astype(np.int64), mask=~ok).cast(pa.string())
    if not ok.all():  # rows left null can take any digit count: the first rendered one's
        d = np.where(ok, d, d[ok][0] if ok.any() else 0)
    lo, hi = (int(d.min()), int(d.max())) if len(d) else (0, 0)
    if lo == hi:
        text = _point(text, lo)
    else:  # padding and the point need a fixed width: one pass per digit count
        order = np.argsort(d, kind="stable")
        bounds = np.searchsorted(d[order], np.arange(_MAX_DP + 2))
        parts = [
            _point(text.take(pa.array(order[bounds[k] : bounds[k + 1]])), k)
            for k in range(_MAX_DP + 1)
            if bounds[k + 1] > bounds[k]
        ]
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        text = pa.concat_arrays(parts).take(pa.array(inverse))
    # The sign bit, not m < 0: Python prints -0.0 (the only exact zero with it) as "-0.00".
    negative = np.signbit(values) & ok
    if negative.any():
        text = pc.if_else(pa.array(negative), _join("-", text), text)
    return text


def _point(digits: pa.Array, dp: int) -> pa.Array:
    """Mantissa digits as a decimal with ``dp`` fraction digits."""
    if dp == 0:
        return digits
    padded = pc.ascii_lpad(digits, dp + 1, "0")
    return pc.binary_replace_slice(padded, -dp, -dp, ".")


class _Numbers:
    """Numbers of a whole batch, formatted together: each Arrow call costs microseconds
    whatever its size, so one pass over all integer columns and one over all decimals."""

    def __init__(self) -> None:
        self._ints: list[pa.Array] = []
        self._values: list[Floats] = []
        self._dps: list[Ints] = []
        self._int_text: pa.Array | None = None
        self._dec_text: pa.Array | None = None

    def add_int(self, arr: pa.Array) -> tuple[str, int, int]:
        start = sum(len(a) for a in self._ints)
        self._ints.append(arr.cast(pa.int64()) if arr.type != pa.int64() else arr)
        return ("i", start, len(arr))

    def add_dec(self, values: Floats, dp: Ints) -> tuple[str, int, int]:
        start = sum(len(a) for a in self._values)
        self._values.append(values)
        self._dps.append(dp)
        return ("d", start, len(values))

    def run(self) -> None:
        if self._ints:
            ints = self._ints[0] if len(self._ints) == 1 else pa.concat_arrays(self._ints)
            self._int_text = ints.cast(pa.string())
        if self._values:
            self._dec_text = decimal_text(np.concatenate(self._values), np.concatenate(self._dps))

    def text(self, ticket: tuple[str, int, int]) -> pa.Array:
        kind, start, length = ticket
        arr = self._int_text if kind == "i" else self._dec_text
        assert arr is not None
        return arr.slice(start, length)


@dataclass
class _Value:
    """A key's rendered value: literal text, or an array (null where not rendered) that goes
    between the literals ``before`` and ``after`` (quotes, brackets)."""

    text: Text
    before: str = ""
    after: str = ""

    def parts(self) -> list[Text]:
        if isinstance(self.text, str):
            return [self.before + self.text + self.after]
        return [self.before, self.text, self.after]

    def joined(self) -> Text:
        if isinstance(self.text, str):
            return self.before + self.text + self.after
        return _join(self.before, self.text, self.after)


class _Levels:
    """Every book-levels key of a batch: ``[["p","q"],...]`` per row, a row with any level
    not rendered null. Prices and quantities go through the batch's decimal pass."""

    def __init__(self, numbers: _Numbers) -> None:
        self.numbers = numbers
        self.keys: list[tuple[pa.Array, Ints]] = []
        self.prices: list[tuple[str, int, int]] = []
        self.qtys: list[tuple[str, int, int]] = []
        self.texts: list[_Value] = []

    def add(self, levels: pa.Array, price_dp: pa.Array, qty_dp: pa.Array) -> int:
        lengths = pc.fill_null(pc.list_value_length(levels), 0)
        counts = np.asarray(lengths.to_numpy(), dtype=np.int64)
        flat = pc.list_flatten(levels)
        parents = np.repeat(np.arange(len(levels)), counts)
        pdp, qdp = _digit_counts(price_dp)[parents], _digit_counts(qty_dp)[parents]
        if flat.null_count:  # a null level must not pass for the text of its fields
            pdp = np.where(np.asarray(flat.is_valid().to_numpy(zero_copy_only=False)), pdp, -1)
        self.prices.append(self.numbers.add_dec(_floats(flat.field("price")), pdp))
        self.qtys.append(self.numbers.add_dec(_floats(flat.field("qty")), qdp))
        self.keys.append((levels, counts))
        return len(self.keys) - 1

    def run(self) -> None:
        if not self.keys:
            return
        texts = [self.numbers.text(t) for t in self.prices + self.qtys]
        k = len(self.keys)
        price = pa.concat_arrays(texts[:k]) if k > 1 else texts[0]
        qty = pa.concat_arrays(texts[k:]) if k > 1 else texts[k]
        pairs = pc.binary_join_element_wise(price, qty, '","')
        sizes = [len(levels) for levels, _ in self.keys]
        counts = np.concatenate([c for _, c in self.keys])
        offsets = np.zeros(len(counts) + 1, dtype=np.int32)
        np.cumsum(counts, out=offsets[1:])
        mask = np.concatenate(
            [levels.is_null().to_numpy(zero_copy_only=False) for levels, _ in self.keys]
        )
        rows = pa.ListArray.from_arrays(pa.array(offsets), pairs, mask=pa.array(mask))
        inner = pc.binary_join(rows, '"],["')
        if not counts.all():
            inner = pc.if_else(pa.array(counts > 0), _join('[["', inner, '"]]'), "[]")
        start = 0
        for size in sizes:
            part = inner.slice(start, size)
            start += size
            self.texts.append(_Value(part, '[["', '"]]') if counts.all() else _Value(part))


_SUPPORTED: Final = (Const, Int, Time, Str, Bool, Json, Dec, Levels)


@dataclass(frozen=True)
class _Plan:
    orders: tuple[tuple[Key, ...], ...]  # the key orders, chosen by ``layout`` if several
    layout: str | None
    wrapper: TextWrapper | None


_PLANS: dict[int, tuple[ChannelCodec, _Plan | None]] = {}


def _plan(codec: ChannelCodec) -> _Plan | None:
    """How to render ``codec``'s payloads in batches, or None if only the codec can."""
    cached = _PLANS.get(id(codec))
    if cached is not None and cached[0] is codec:
        return cached[1]
    plan = _make_plan(codec)
    _PLANS[id(codec)] = (codec, plan)
    return plan


def _make_plan(codec: ChannelCodec) -> _Plan | None:
    if type(codec) is not JsonChannel:
        return None
    payload = codec.payload
    root = payload.root
    if type(payload).render is not Payload.render:
        return None
    orders: tuple[tuple[Key, ...], ...]
    if type(root) is Obj:
        orders, layout = (root.keys,), None
    elif type(root) is Reordered:  # Reordered.render: the variant its layout column names
        orders, layout = tuple(v.keys for v in root.variants), root.column
    else:
        return None
    for keys in orders:
        if not keys or keys[0].optional:  # the first present key decides the commas
            return None
        if not all(type(k.node) in _SUPPORTED for k in keys):
            return None
    wrapper = codec.envelope.wrapper
    if wrapper is None and type(codec.envelope) is not NoEnvelope:
        return None  # an envelope only its codec can join
    return _Plan(orders, layout, wrapper)


def _column(batch: pa.RecordBatch | pa.Table, name: str) -> pa.Array:
    """One column as one array, timestamps as int64."""
    arr = batch.column(name)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_timestamp(arr.type):
        arr = arr.view(pa.int64())
    return arr


def _present(node: Node, batch: pa.RecordBatch | pa.Table) -> pa.Array | bool:
    """Where an optional key is rendered (the compiled renderer's test): True or False for
    every row, or a boolean array."""
    if type(node) is Const:
        return True
    names = [f.name for f in node.columns()]
    if type(node) is Dec:
        names = names[-1:]  # the fraction digit count says whether the key was there
    elif type(node) is not Levels:  # Node.is_absent: absent only when every column is null
        names = names[:1]
    cols = [_column(batch, n) for n in names]
    if all(c.null_count == 0 for c in cols):
        return True
    if len(names) == 1 and cols[0].null_count == len(cols[0]):
        return False
    present = cols[0].is_valid()
    for c in cols[1:]:
        present = pc.or_(present, c.is_valid())
    return present


def fast_payloads(
    codec: ChannelCodec, batch: pa.RecordBatch | pa.Table, runs: Sequence[int] | None = None
) -> pa.Array | None:
    """Payload bytes of every row rendered from the typed columns in batch (binary, null
    where that is not provably exact), or None if the codec is not supported at all.

    ``runs`` splits the batch into consecutive runs of rows (the files it was read from):
    numbers are formatted for the whole batch, but values that are constant within a run
    (its stream, its symbol) are then joined in as literal text, one run at a time.
    ``raw`` is not looked at: :func:`payloads` prefers it.
    """
    plan = _plan(codec)
    if plan is None:
        return None
    numbers = _Numbers()
    levels = _Levels(numbers)
    # First pass: what every key needs; numbers are only registered.
    prepared: dict[str, tuple[Any, pa.Array | bool]] = {}
    for key in plan.orders[0]:
        present = _present(key.node, batch) if key.optional else True
        if present is not False:
            prepared[key.json] = (_prepare(key.node, batch, numbers, levels), present)
    numbers.run()
    levels.run()
    values = {j: (_finish(v, numbers, levels), present) for j, (v, present) in prepared.items()}
    env = _column(batch, "envelope")
    stream = _column(batch, "stream")
    layout = None if plan.layout is None else _column(batch, plan.layout)
    texts = []
    start = 0
    for size in runs if runs is not None else [batch.num_rows]:
        order = 0
        if layout is not None:  # a run that mixes key orders is left to the codec
            order = _constant(pc.fill_null(layout.slice(start, size), 0))
            if order is None or not 0 <= order < len(plan.orders):
                texts.append(pa.nulls(size, pa.string()))
                start += size
                continue
        keys = plan.orders[order]
        texts.append(_assemble(plan.wrapper, keys, values, env, stream, start, size))
        start += size
    text = texts[0] if len(texts) == 1 else pa.concat_arrays(texts)
    return text.view(pa.binary())


def _assemble(
    wrapper: TextWrapper | None,
    keys: tuple[Key, ...],
    values: dict[str, tuple[_Value | pa.Array, pa.Array | bool]],
    env: pa.Array,
    stream: pa.Array,
    start: int,
    n: int,
) -> pa.Array:
    """The payloads of rows ``start`` to ``start + n``: one join of literals and slices."""
    pieces: list[Text] = []

    def add(*parts: Text) -> None:
        for p in parts:
            if isinstance(p, str):
                if not p:
                    continue
                if pieces and isinstance(pieces[-1], str):
                    pieces[-1] += p
                    continue
            pieces.append(p)

    def cut(value: _Value | pa.Array) -> _Value:
        if isinstance(value, _Value):
            if isinstance(value.text, str):
                return value
            return _Value(value.text.slice(start, n), value.before, value.after)
        strings = value.slice(start, n)  # a string column: constant in a run, or quoted
        const = _constant(strings)
        if const is not None:
            return _Value(_json_str(const))
        return _Value(_unescaped(strings), '"', '"')

    env = env.slice(start, n)
    envelope = _constant(env)
    # A run of rows all in the wrapper gets it as literal text around the payload.
    outside = wrapper if wrapper is not None and envelope == wrapper.envelope else None
    if outside is not None:
        names = stream.slice(start, n)
        name = _constant(names)
        # The stream name goes in as-is, as the envelope's join does.
        add(outside.prefix, _plain(names) if name is None else name, outside.infix)
    add("{")
    for i, key in enumerate(keys):
        if key.json not in values:  # absent from every row
            continue
        value, present = values[key.json]
        head = ("," if i else "") + _json_str(key.json) + ":"
        part = cut(value)
        if present is True:
            add(head, *part.parts())
        else:
            assert not isinstance(present, bool)
            add(pc.if_else(present.slice(start, n), _join(head, part.joined()), _EMPTY))
    add("}" + outside.suffix if outside is not None else "}")
    if not any(isinstance(p, pa.Array) for p in pieces):
        text = pa.array(["".join(p for p in pieces if isinstance(p, str))] * n, pa.string())
    else:
        text = _join(*pieces)
    if outside is None and envelope != NOT_WRAPPED:  # mixed, or another envelope
        text = pc.if_else(pc.equal(env, NOT_WRAPPED), text, _NULL_STR)
        if wrapper is not None:
            names = _plain(stream.slice(start, n))
            outer = _join(wrapper.prefix, names, wrapper.infix, text, wrapper.suffix)
            text = pc.if_else(pc.equal(env, wrapper.envelope), outer, text)
    return text


def _prepare(
    node: Node, batch: pa.RecordBatch | pa.Table, numbers: _Numbers, levels: _Levels
) -> Any:
    """A key's value, or what to look up once the number passes have run."""
    t = type(node)
    if t is Const:
        assert isinstance(node, Const)
        return _Value(orjson.dumps(node.value).decode())
    if t is Int or t is Time:
        assert isinstance(node, Int | Time)
        return ("num", numbers.add_int(_column(batch, node.name)), "", "")
    if t is Str:
        assert isinstance(node, Str)
        return ("str", _column(batch, node.name))
    if t is Bool:
        assert isinstance(node, Bool)
        values = _column(batch, node.name)
        const = _constant(values)
        if const is not None:
            return _Value("true" if const else "false")
        return _Value(pc.if_else(values, "true", "false"))
    if t is Json:
        assert isinstance(node, Json)
        return _Value(_plain(_column(batch, node.name)))
    if t is Dec:
        assert isinstance(node, Dec)
        dp = _column(batch, node.dp)
        ticket = numbers.add_dec(_floats(_column(batch, node.name)), _digit_counts(dp))
        least = pc.min(dp).as_py()
        if least is not None and least >= 0:
            return ("num", ticket, '"', '"')
        return ("dec", ticket, dp)
    assert isinstance(node, Levels)
    n = node.name
    col = _column
    return (
        "levels",
        levels.add(col(batch, n), col(batch, n + "_price_dp"), col(batch, n + "_qty_dp")),
    )


def _finish(prepared: Any, numbers: _Numbers, levels: _Levels) -> _Value | pa.Array:
    if isinstance(prepared, _Value):
        return prepared
    kind = prepared[0]
    if kind == "str":
        strings: pa.Array = prepared[1]
        return strings
    if kind == "num":
        _, ticket, before, after = prepared
        return _Value(numbers.text(ticket), before, after)
    if kind == "dec":  # some rows are empty strings or JSON nulls
        _, ticket, dp = prepared
        quoted = _join('"', numbers.text(ticket), '"')
        quoted = pc.if_else(pc.equal(dp, DP_EMPTY), '""', quoted)
        return _Value(pc.if_else(pc.equal(dp, DP_NULL), "null", quoted))
    value: _Value = levels.texts[prepared[1]]
    return value


def typed_rows(
    codec: ChannelCodec, batch: pa.RecordBatch | pa.Table, rows: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """The typed fields of some rows (all if ``rows`` is None), as the codec has them:
    timestamps as integers in their unit."""
    names = [f.name for f in codec.typed_fields]
    count = batch.num_rows if rows is None else len(rows)
    if not names:
        return [{} for _ in range(count)]
    idx = None if rows is None else pa.array(rows, pa.int64())
    values: list[list[Any]] = []
    for n in names:
        arr = _column(batch, n)
        if idx is not None:
            arr = arr.take(idx)
        values.append(_nested_ints(arr).to_pylist())
    return [dict(zip(names, v, strict=True)) for v in zip(*values, strict=True)]


def _nested_ints(arr: pa.Array) -> pa.Array:
    """Timestamps inside lists or structs as int64 too (top-level ones already are)."""
    typ = arr.type
    if not (pa.types.is_list(typ) or pa.types.is_struct(typ)):
        return arr
    target = unit_cast_schema(pa.schema([pa.field("x", typ)])).field("x").type
    return arr if target == typ else arr.cast(target)


def payloads(
    codec: ChannelCodec, batch: pa.RecordBatch | pa.Table, runs: Sequence[int] | None = None
) -> pa.Array:
    """The exact payload bytes of every row of an archive batch (binary, no nulls); ``runs``
    as for :func:`fast_payloads`.

    ``raw`` where the writer kept it, else the batch rendering, else ``codec.render`` row by
    row (which raises, as it always did, for a row that nothing can render).
    """
    raw = _column(batch, "raw")
    if raw.null_count == 0:
        return raw
    fast = fast_payloads(codec, batch, runs)
    out = raw if fast is None else pc.coalesce(raw, fast) if raw.null_count < len(raw) else fast
    if out.null_count == 0:
        return out
    missing = np.flatnonzero(out.is_null().to_numpy(zero_copy_only=False))
    idx = pa.array(missing)
    fields = typed_rows(codec, batch, missing.tolist())
    streams = _column(batch, "stream").take(idx).to_pylist()
    envs = _column(batch, "envelope").take(idx).to_pylist()
    rendered = [codec.render(f, s, e) for f, s, e in zip(fields, streams, envs, strict=True)]
    return pc.replace_with_mask(out, out.is_null(), pa.array(rendered, pa.binary()))
