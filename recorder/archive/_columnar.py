"""Batch encoding: many JSON payloads of one channel into its typed Arrow columns at once.

The archive's per-row path (``JsonChannel.decode``, then ``render`` and compare, see
:mod:`recorder.venues._channels`) costs about 12 µs per message in Python: more than receiving it.
For channels whose payload is a plain object of simple values, :class:`ColumnarEncoder` does
the same job for a whole batch:

* orjson parses each payload (the one unavoidable Python step per row), then one list
  comprehension per key collects that key's values;
* Arrow converts each key's values to the column type in C. Decimals keep their text, which
  must be in the canonical form that ``float64`` plus fraction digits re-renders exactly
  (``-?(0|[1-9][0-9]*)(\\.[0-9]+)?`` with at most 15 significant digits);
* every row is rendered back from those values with Arrow string kernels and compared with its
  payload, byte for byte. That one comparison catches unknown keys, key order, whitespace,
  escapes, duplicate keys and number formats, without a rule for each.

A row that fails any check is reported as not ``ok``; the writer runs the per-row path for it,
so the archive holds the same rows and columns whichever path a row took (a test compares the
two on the corpus and on generated payloads).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from recorder.core._codec import ChannelCodec
from recorder.venues._channels import NO_ENVELOPE, JsonChannel, TextWrapper
from recorder.venues._jsonspec import (
    LEVEL_TYPE,
    Bool,
    Const,
    Dec,
    Int,
    Levels,
    Node,
    Obj,
    Str,
    Time,
)

__all__ = ["ColumnarEncoder", "EncodedBatch", "binary_array", "encoder_for"]

_CANONICAL: Final = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$"
_MAX_SIGNIFICANT: Final = 15  # DBL_DIG: decimal -> float64 -> decimal is exact up to here
_MAX_DP: Final = 100  # fraction digits are stored as int8
_CHUNK: Final = 8192  # rows encoded at once

Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class EncodedBatch:
    """The typed columns of a batch (in ``typed_fields`` order, full length), the envelope
    column, and which rows they hold exactly; rows not ``ok`` hold arbitrary values."""

    columns: list[pa.Array]
    envelope: pa.Array
    ok: Mask


@dataclass(frozen=True)
class _Piece:
    """A key's share of the work: columns, rendered text (inside quotes if ``quoted``) and
    which rows passed."""

    columns: list[pa.Array]
    text: pa.Array
    ok: Mask
    quoted: bool = False


def _ok(arr: pa.Array) -> Mask:
    """A boolean Arrow array as a numpy mask, nulls counting as False."""
    filled = pc.fill_null(arr, False)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.bool_)


def _convert(values: list[Any], typ: pa.DataType, keep: Callable[[Any], bool]) -> pa.Array:
    """``values`` as an Arrow array of ``typ``; values of the wrong Python type become null
    (only looked at when the fast conversion refuses the whole list)."""
    try:
        return pa.array(values, typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.array([v if keep(v) else None for v in values], typ)


def _is_int64(v: Any) -> bool:
    return type(v) is int and -(2**63) <= v < 2**63


def _is_str(v: Any) -> bool:
    return type(v) is str


def _is_bool(v: Any) -> bool:
    return type(v) is bool


def _is_levels(v: Any) -> bool:
    return type(v) is list and all(type(lv) is list and all(type(x) is str for x in lv) for lv in v)


_LEVELS_TEXT: Final = pa.list_(pa.list_(pa.string()))


def _decimals(text: pa.Array) -> tuple[pa.Array, pa.Array, Mask]:
    """(float64 values, int8 fraction digits, ok) of decimal strings; see the module doc."""
    ok = _ok(pc.match_substring_regex(text, _CANONICAL))
    length = np.asarray(pc.fill_null(pc.binary_length(text), 0).to_numpy(), dtype=np.int64)
    if length.max(initial=0) > _MAX_SIGNIFICANT:  # else no text can have too many digits
        digits = pc.utf8_ltrim(pc.replace_substring(text, ".", ""), "-0")
        ok &= _ok(pc.less_equal(pc.binary_length(digits), _MAX_SIGNIFICANT))
    dot = np.asarray(pc.fill_null(pc.find_substring(text, "."), -1).to_numpy(), dtype=np.int64)
    dp = np.where(dot >= 0, length - dot - 1, 0)
    ok &= dp <= _MAX_DP
    safe = pc.if_else(pa.array(ok), text, "0")
    values = pc.cast(safe, pa.float64())
    return values, pa.array(np.where(ok, dp, 0).astype(np.int8)), ok


def _levels_piece(values: list[Any]) -> _Piece:
    """Book levels ``[["p","q"],...]``: ``list<struct<price, qty>>`` plus the fraction digits
    every price (and every qty) of the row shares; non-uniform rows are not ok."""
    arr = _convert(values, _LEVELS_TEXT, _is_levels)
    n = len(arr)
    row_ok = _ok(arr.is_valid())
    row_off = np.asarray(arr.offsets.to_numpy(), dtype=np.int64)
    levels = arr.values  # list<string>, one per level
    lv_off = np.asarray(levels.offsets.to_numpy(), dtype=np.int64)
    strings = levels.values
    n_levels = len(levels)
    # Text: ["p","q"] per level, joined by commas per row, in brackets.
    level_text = pc.binary_join_element_wise('["', pc.binary_join(levels, '","'), '"]', "")
    joined = pc.binary_join(
        pa.ListArray.from_arrays(pa.array(row_off, pa.int32()), level_text), ","
    )
    text = pc.binary_join_element_wise("[", joined, "]", "")
    # Values: exactly two decimals per level.
    values_f, dps, elem_ok = _decimals(strings)
    pair = (lv_off[1:] - lv_off[:-1]) == 2
    first = np.minimum(lv_off[:-1], max(len(strings) - 1, 0))
    second = np.minimum(first + 1, max(len(strings) - 1, 0))
    if len(strings):
        level_ok = pair & elem_ok[first] & elem_ok[second]
        dp_np = np.asarray(dps.to_numpy(), dtype=np.int8)
        price_dp, qty_dp = dp_np[first], dp_np[second]
        price = pc.take(values_f, pa.array(first))
        qty = pc.take(values_f, pa.array(second))
    else:
        level_ok = np.zeros(n_levels, dtype=np.bool_)
        price_dp = qty_dp = np.zeros(n_levels, dtype=np.int8)
        price = qty = pa.array([], pa.float64())
    # A row is ok when all its levels are, with one price and one qty digit count per row.
    counts = row_off[1:] - row_off[:-1]
    has = counts > 0
    head = np.minimum(row_off[:-1], max(n_levels - 1, 0))
    row_pdp = np.where(has, price_dp[head] if n_levels else 0, 0).astype(np.int8)
    row_qdp = np.where(has, qty_dp[head] if n_levels else 0, 0).astype(np.int8)
    parent = np.repeat(np.arange(n), counts)
    bad = ~level_ok | (price_dp != row_pdp[parent]) | (qty_dp != row_qdp[parent])
    cum = np.concatenate(([0], np.cumsum(bad, dtype=np.int64)))
    row_ok &= (cum[row_off[1:]] - cum[row_off[:-1]]) == 0
    struct = pa.StructArray.from_arrays([price, qty], fields=list(LEVEL_TYPE.value_type))
    column = pa.ListArray.from_arrays(pa.array(row_off, pa.int32()), struct, type=LEVEL_TYPE)
    return _Piece([column, pa.array(row_pdp), pa.array(row_qdp)], text, row_ok)


def _piece(node: Node, values: list[Any]) -> _Piece:
    if type(node) in (Int, Time):
        arr = _convert(values, pa.int64(), _is_int64)
        text = pc.cast(arr, pa.string())
        if type(node) is Time:
            arr = arr.cast(pa.timestamp(node.unit, tz="UTC"))
        return _Piece([arr], text, _ok(arr.is_valid()))
    if type(node) is Str:
        arr = _convert(values, pa.string(), _is_str)
        return _Piece([arr], arr, _ok(arr.is_valid()), quoted=True)
    if type(node) is Bool:
        arr = _convert(values, pa.bool_(), _is_bool)
        return _Piece([arr], pc.if_else(arr, "true", "false"), _ok(arr.is_valid()))
    if type(node) is Dec:
        arr = _convert(values, pa.string(), _is_str)
        value, dp, ok = _decimals(arr)
        return _Piece([value, dp], arr, ok, quoted=True)
    if type(node) is Levels:
        return _levels_piece(values)
    raise AssertionError(f"unsupported node {node!r}")  # excluded by encoder_for


_SUPPORTED: Final = (Const, Int, Time, Str, Bool, Dec, Levels)
_EMPTY: Final[dict[str, Any]] = {}


class ColumnarEncoder:
    """Encodes batches of one plain-object JSON channel; build it with :func:`encoder_for`."""

    def __init__(self, obj: Obj, wrapper: TextWrapper | None) -> None:
        self._keys = obj.keys
        self._wrapper = wrapper

    def encode(self, payloads: Sequence[bytes], streams: Sequence[str]) -> EncodedBatch:
        """Typed columns of ``payloads`` (frames as received, with ``streams`` their stream
        names for the combined wrapper) and which rows they reproduce exactly."""
        # Parsing allocates a few containers per payload, which sets off the cyclic garbage
        # collector over and over (each pass visiting every live object: measured 2.5x the
        # cost of depth messages). Parsed JSON has no cycles; reference counting frees it.
        enabled = gc.isenabled()
        gc.disable()
        try:
            if len(payloads) <= _CHUNK:
                return self._encode(payloads, streams)
            # In chunks: the parsed JSON of a whole batch would set the writer's peak memory.
            parts = [
                self._encode(payloads[i : i + _CHUNK], streams[i : i + _CHUNK])
                for i in range(0, len(payloads), _CHUNK)
            ]
        finally:
            if enabled:
                gc.enable()
        return EncodedBatch(
            [
                pa.concat_arrays(list(cols))
                for cols in zip(*(p.columns for p in parts), strict=True)
            ],
            pa.concat_arrays([p.envelope for p in parts]),
            np.concatenate([p.ok for p in parts]),
        )

    def _encode(self, payloads: Sequence[bytes], streams: Sequence[str]) -> EncodedBatch:
        n = len(payloads)
        raw = binary_array(payloads)
        wrapper = self._wrapper
        if wrapper is not None:
            wrapped = _ok(pc.starts_with(raw, wrapper.prefix))
        else:
            wrapped = np.zeros(n, dtype=np.bool_)
        inner = _objects(payloads, wrapped, wrapper.data_key if wrapper is not None else "")
        parts: list[Any] = []
        columns: list[pa.Array] = []
        ok = np.ones(n, dtype=np.bool_)
        literal = "{"
        for i, key in enumerate(self._keys):
            head = ("," if i else "") + orjson.dumps(key.json).decode() + ":"
            node = key.node
            if type(node) is Const:
                literal += head + orjson.dumps(node.value).decode()
                # The constant is only checked through the comparison of the rendered text.
                continue
            values, absent = _column(inner, key.json)
            piece = _piece(node, values)
            columns.extend(piece.columns)
            q = '"' if piece.quoted else ""
            if key.optional:
                # Absent keys are left out of the text and null in every column, as the
                # per-row path does; a key that is there must hold a valid value.
                present = pc.is_valid(piece.text)
                parts.append(literal)
                parts.append(
                    pc.if_else(
                        present, pc.binary_join_element_wise(head + q, piece.text, q, ""), ""
                    )
                )
                literal = ""
                columns[-len(piece.columns) :] = [
                    pc.if_else(present, c, pa.scalar(None, c.type)) for c in piece.columns
                ]
                if absent is None:
                    absent = np.zeros(n, dtype=np.bool_)
                ok &= np.where(_ok(present), piece.ok, absent)
            else:
                parts.append(literal + head + q)
                parts.append(piece.text)
                literal = q
                ok &= piece.ok
        parts.append(literal + "}")
        text = pc.binary_join_element_wise(*parts, "")
        if wrapper is not None:
            stream = pa.array(streams, pa.string())
            outer = pc.binary_join_element_wise(
                wrapper.prefix, stream, wrapper.infix, text, wrapper.suffix, ""
            )
            text = pc.if_else(pa.array(wrapped), outer, text)
            envelope = pa.array(wrapped.astype(np.int8) * np.int8(wrapper.envelope))
        else:
            envelope = pa.array(np.zeros(n, np.int8))
        ok &= _ok(pc.equal(text.cast(pa.binary()), raw))
        return EncodedBatch(columns, envelope, ok)


def binary_array(values: Sequence[bytes]) -> pa.Array:
    """``pa.array(values, pa.binary())``, built from one joined buffer: several times faster
    than converting each ``bytes`` object."""
    n = len(values)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=n), out=offsets[1:])
    if offsets[-1] >= 2**31:
        return pa.array(values, pa.binary())
    data = pa.py_buffer(b"".join(values))
    return pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets.astype(np.int32)), data]
    )


def _objects(payloads: Sequence[bytes], wrapped: Mask, data_key: str) -> list[Any]:
    """The parsed payload objects (inside the wrapper where there is one); rows that do not
    parse, or are not objects, become an empty dict (so every key lookup finds nothing)."""
    loads = orjson.loads
    try:
        values = [loads(p) for p in payloads]
    except orjson.JSONDecodeError:
        values = [_loads_or_none(p) for p in payloads]
    if wrapped.all():
        try:
            values = [v[data_key] for v in values]
        except (KeyError, TypeError):
            values = [v.get(data_key) if type(v) is dict else None for v in values]
    elif wrapped.any():
        values = [
            (v.get(data_key) if type(v) is dict else None) if w else v
            for v, w in zip(values, wrapped.tolist(), strict=True)
        ]
    return [v if type(v) is dict else _EMPTY for v in values]


def _loads_or_none(p: bytes) -> Any:
    try:
        return orjson.loads(p)
    except orjson.JSONDecodeError:
        return None


def _column(objects: list[dict[str, Any]], key: str) -> tuple[list[Any], Mask | None]:
    """The values of ``key`` (None where absent) and where it is absent (None: nowhere)."""
    try:
        return [o[key] for o in objects], None
    except KeyError:
        absent = np.array([key not in o for o in objects], dtype=np.bool_)
        return [o.get(key) for o in objects], absent


def encoder_for(codec: ChannelCodec) -> ColumnarEncoder | None:
    """A batch encoder for ``codec``, or None when its payloads need the per-row path (specs
    other than a plain object of simple values, other envelopes, binary payloads)."""
    if type(codec) is not JsonChannel or codec.binary:
        return None
    root = codec.payload.root
    if type(root) is not Obj or not root.keys or root.keys[0].optional:
        return None
    if any(type(k.node) not in _SUPPORTED for k in root.keys):
        return None
    if any(k.optional and type(k.node) is Const for k in root.keys):
        return None
    if codec.envelope.wrapper is not None:
        return ColumnarEncoder(root, codec.envelope.wrapper)
    if codec.envelope is NO_ENVELOPE:
        return ColumnarEncoder(root, None)
    return None
