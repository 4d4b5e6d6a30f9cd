"""Partition values from config or the wire can never escape the root or make odd paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recorder.archive._layout import (
    MAX_COMPONENT,
    PartitionKey,
    decode_value,
    encode_value,
    parse_relpath,
)

HOSTILE = [
    "../x",
    "..",
    ".",
    ".hidden",
    "a/b",
    "a\\b",
    "nul\x00byte",
    "x" * 10_000,
    "BTC-USDT",
    "ΑΒΓ€",
    "😀",
    "",
    "%2F",
    "a b",
    "con",
    "~tilde",
    "/abs",
    "\n",
]


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v[:20]))
def test_hostile_values_make_one_plain_component(value: str, tmp_path: Path) -> None:
    enc = encode_value(value)
    assert enc and "/" not in enc and "\\" not in enc and "\x00" not in enc
    assert not enc.startswith(".")
    assert enc.isascii() and enc.isprintable()
    assert len(enc) <= MAX_COMPONENT
    # The component really is a single directory inside the root.
    d = tmp_path / enc
    d.mkdir()
    assert d.resolve().parent == tmp_path.resolve()
    assert os.listdir(tmp_path) == [enc]


@pytest.mark.parametrize("value", [v for v in HOSTILE if len(v) < 40])
def test_short_values_round_trip(value: str) -> None:
    assert decode_value(encode_value(value)) == value


def test_long_values_are_cut_with_a_digest_and_stay_distinct() -> None:
    a, b = "x" * 10_000, "x" * 9_999 + "y"
    ea, eb = encode_value(a), encode_value(b)
    assert ea != eb
    assert decode_value(ea) is None  # readers take the symbol from the rows instead


@given(st.text(max_size=60))
def test_any_text_round_trips_or_is_marked(value: str) -> None:
    enc = encode_value(value)
    assert "/" not in enc and not enc.startswith(".") and len(enc) <= MAX_COMPONENT
    dec = decode_value(enc)
    assert dec is None or dec == value


def test_plain_symbols_stay_readable() -> None:
    assert encode_value("BTCUSDT") == "BTCUSDT"
    assert encode_value("BTC-27MAR26-70000-C") == "BTC-27MAR26-70000-C"
    assert encode_value("binance-spot") == "binance-spot"


def test_partition_relpath_round_trips() -> None:
    key = PartitionKey("binance-spot", "trade", "../evil", "2026-11-21", 5)
    rel = key.relpath()
    assert rel == "venue=binance-spot/channel=trade/symbol=%2E%2E%2Fevil/date=2026-11-21/hour=05"
    assert parse_relpath(rel) == key
    assert key.hour_end_ns - key.hour_start_ns == 3_600_000_000_000
