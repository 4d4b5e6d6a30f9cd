"""Bybit V5 public market data: sans-IO protocol core and channel codecs.

Covers the venues ``bybit-spot``, ``bybit-linear``, ``bybit-inverse`` and ``bybit-option`` (one
venue per V5 *category*). Nothing here does I/O: like h11/wsproto, the functions turn bytes into
typed values and typed values into bytes, and the recorder's Trio code drives them.

* topics: :func:`classify`, :func:`topic_of`, :func:`validate_topic`
* codecs: one per (venue, channel), registered at import (see :mod:`recorder.venues._channels`)
* control: :func:`plan_requests`, :func:`check_connection_budget`, :func:`subscribe_request`,
  :func:`ping_request`, :func:`parse_control`
* legacy v2: :func:`detect_legacy` (such frames raise :class:`UnsupportedMessage`)
* books: :class:`BookSync`
* REST: :func:`orderbook_request`, :func:`instruments_request`, :func:`parse_instruments`,
  :func:`is_rate_limited`

Reference: ``shared/protocols/bybit-v5.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
import pyarrow as pa

from recorder.core._codec import Decoded, register
from recorder.core._errors import LocalProtocolError, RemoteProtocolError, UnsupportedMessage
from recorder.core._message import ALL_SYMBOLS, CONTROL_CHANNEL
from recorder.venues._channels import register_common
from recorder.venues._jsonspec import (
    LEVEL_TYPE,
    Bool,
    Dec,
    Int,
    Json,
    Key,
    Mismatch,
    Node,
    Obj,
    ObjList,
    Str,
    Time,
    parse_decimal,
    render_decimal,
)

__all__ = [
    "CATEGORIES",
    "VENUES",
    "BookLevels",
    "BookSync",
    "ControlReply",
    "Gap",
    "Reset",
    "Route",
    "Stale",
    "Synced",
    "TopicInfo",
    "VariantCodec",
    "WideDec",
    "category_of",
    "check_connection_budget",
    "checkpoint_payload",
    "classify",
    "detect_legacy",
    "instruments_request",
    "is_rate_limited",
    "orderbook_request",
    "parse_control",
    "parse_instruments",
    "ping_request",
    "plan_connections",
    "plan_requests",
    "route",
    "subscribe_request",
    "topic_of",
    "unsubscribe_request",
    "validate_topic",
    "ws_url",
]

CATEGORIES: Final = ("spot", "linear", "inverse", "option")
VENUES: Final = tuple(f"bybit-{c}" for c in CATEGORIES)

LEGACY_MESSAGE: Final = "Bybit v2 API (retired) is not supported"


def category_of(venue: str) -> str:
    """``bybit-linear`` -> ``linear``; raises LocalProtocolError for other venues."""
    if venue not in VENUES:
        raise LocalProtocolError(f"not a Bybit venue: {venue!r}")
    return venue[len("bybit-") :]


# --------------------------------------------------------------------------------------------
# Topics


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """What a topic is: channel name, symbol, and the orderbook depth or kline interval."""

    channel: str
    symbol: str
    depth: int | None = None
    interval: str | None = None


# Depths one may subscribe to today, per category (bybit-v5.md 4.1).
_DEPTHS: Final[Mapping[str, frozenset[int]]] = {
    "spot": frozenset({1, 50, 200, 1000}),
    "linear": frozenset({1, 50, 200, 1000}),
    "inverse": frozenset({1, 50, 200, 1000}),
    "option": frozenset({25, 100}),
}
# Depths that only occur in archives: level 500 (linear/inverse) went offline 2025-09-30.
_HISTORIC_DEPTHS: Final[Mapping[str, frozenset[int]]] = {
    "spot": frozenset(),
    "linear": frozenset({500}),
    "inverse": frozenset({500}),
    "option": frozenset(),
}
_INTERVALS: Final = frozenset(
    ["1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M"]
)
_SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9_\-]*\Z")
_CHANNELS_BY_CATEGORY: Final[Mapping[str, frozenset[str]]] = {
    "spot": frozenset({"orderbook", "publicTrade", "tickers", "kline"}),
    "linear": frozenset({"orderbook", "publicTrade", "tickers", "kline", "allLiquidation"}),
    "inverse": frozenset({"orderbook", "publicTrade", "tickers", "kline", "allLiquidation"}),
    "option": frozenset({"orderbook", "publicTrade", "tickers"}),
}
# Retired topics that still appear in archives (decoded, never subscribed).
_HISTORIC_CHANNELS: Final[Mapping[str, frozenset[str]]] = {
    "spot": frozenset(),
    "linear": frozenset({"liquidation"}),
    "inverse": frozenset({"liquidation"}),
    "option": frozenset(),
}


def _classify(category: str, topic: str, historic: bool) -> TopicInfo | None:
    parts = topic.split(".")
    name = parts[0]
    if name not in _CHANNELS_BY_CATEGORY[category] and not (
        historic and name in _HISTORIC_CHANNELS[category]
    ):
        return None
    if name in ("orderbook", "kline"):
        if len(parts) != 3 or not _SYMBOL.match(parts[2]):
            return None
        if name == "kline":
            return (
                TopicInfo("kline", parts[2], interval=parts[1]) if parts[1] in _INTERVALS else None
            )
        if not (parts[1].isascii() and parts[1].isdigit()):
            return None
        depth = int(parts[1])
        if depth in _DEPTHS[category] or (historic and depth in _HISTORIC_DEPTHS[category]):
            return TopicInfo("orderbook", parts[2], depth=depth)
        return None
    if len(parts) != 2 or not _SYMBOL.match(parts[1]):
        return None
    if name == "publicTrade" and category == "option" and not parts[1].isalnum():
        return None  # option trades are per base coin (publicTrade.BTC), not per contract
    return TopicInfo(name, parts[1])


def classify(venue: str, topic: str) -> TopicInfo | None:
    """Classify a topic received on ``venue``; None if it is not a known V5 topic there.

    Retired topics still found in archives (``orderbook.500``, ``liquidation.{symbol}``)
    are accepted here but not by :func:`validate_topic`.
    """
    if venue not in VENUES:
        return None
    return _classify(venue[len("bybit-") :], topic, historic=True)


def validate_topic(venue: str, topic: str) -> TopicInfo:
    """Classify a topic we are about to subscribe to; LocalProtocolError if invalid."""
    info = _classify(category_of(venue), topic, historic=False)
    if info is None:
        raise LocalProtocolError(f"{venue}: invalid or unsupported topic {topic!r}")
    return info


_TOPIC_KEY = b'"topic":"'
_TOPIC_LOOSE = re.compile(rb'"topic"\s*:\s*"([^"\\]*)"')


def topic_of(frame: bytes) -> str | None:
    """The ``topic`` of a frame, found by byte search (no JSON parse; hot path).

    Key order varies (option frames start with ``"id"``), so this searches the whole frame;
    only data pushes have a ``"topic"`` key, and nested objects never do.
    """
    i = frame.find(_TOPIC_KEY)
    if i >= 0:
        start = i + len(_TOPIC_KEY)
        end = frame.find(b'"', start)
        if end < 0:
            return None
        raw = frame[start:end]
        if b"\\" not in raw:
            return raw.decode("utf-8", "replace")
    if b'"topic"' not in frame:
        return None
    m = _TOPIC_LOOSE.search(frame)  # whitespace around ':' (not sent by Bybit, but legal)
    return m.group(1).decode("utf-8", "replace") if m else None


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


# --------------------------------------------------------------------------------------------
# Variant codec


def _in_order(node: Node, value: Any) -> bool:
    """True if the known keys of ``value`` appear in the spec's order (unknown keys ignored)."""
    if isinstance(node, Obj):
        if not isinstance(value, dict):
            return True  # extract reports the type error
        pos = _positions(node)
        last = -1
        for k, v in value.items():
            i = pos.get(k)
            if i is None:
                continue
            if i < last:
                return False
            last = i
            child = node.keys[i].node
            if isinstance(child, (Obj, ObjList)) and not _in_order(child, v):
                return False
        return True
    if isinstance(node, ObjList):
        if not isinstance(value, list):
            return True
        return all(_in_order(node.item, v) for v in value)
    return True


_POS_CACHE: dict[int, dict[str, int]] = {}


def _positions(obj: Obj) -> dict[str, int]:
    pos = _POS_CACHE.get(id(obj))
    if pos is None:
        pos = {k.json: i for i, k in enumerate(obj.keys)}
        _POS_CACHE[id(obj)] = pos
    return pos


# Envelopes: a line terminator after the JSON. Live frames have none, but Bybit's historical
# archive files (public.bybit.com ob500 dumps) have CRLF lines, and the corpus keeps the "\r".
_TAILS: Final[Mapping[bytes, int]] = {b"\r\n": 3, b"\r": 1, b"\n": 2}


LAYOUT: Final = "layout"
"""int8 column: index of the key-order variant a payload matched (see VariantCodec)."""


class VariantCodec:
    """A JSON channel whose payloads come in several key orders.

    Bybit's key order differs by category and depth (spot and level 1 put ``ts`` before
    ``type``; options lead with ``id``), and exact re-rendering needs the order. Each variant
    is one spec (an :class:`Obj`); the one that matched is stored in the int8 column
    ``layout``. The typed columns are the union over all variants (absent ones are null).
    Satisfies :class:`~recorder.venues._channels.ChannelCodec`.
    """

    binary = False

    def __init__(
        self, venue: str, channel: str, variants: Sequence[Obj], *, event_time: str = "event_time"
    ) -> None:
        if not variants or len(variants) > 127:
            raise ValueError("between 1 and 127 variants")
        self._venue = venue
        self._channel = channel
        self.variants = tuple(variants)
        self._event_time = event_time
        fields: dict[str, pa.Field] = {}
        for v in self.variants:
            for f in v.columns():
                old = fields.get(f.name)
                if old is not None and not old.type.equals(f.type):
                    raise ValueError(f"{venue}/{channel}: column {f.name} changes type")
                fields.setdefault(f.name, f)
        if LAYOUT in fields:
            raise ValueError(f"{venue}/{channel}: column name {LAYOUT!r} is reserved")
        self._fields = [*fields.values(), pa.field(LAYOUT, pa.int8())]
        self._names = [f.name for f in self._fields]

    @property
    def venue(self) -> str:
        return self._venue

    @property
    def channel(self) -> str:
        return self._channel

    @property
    def typed_fields(self) -> list[pa.Field]:
        return self._fields

    def _fail(self, payload: bytes, why: str) -> RemoteProtocolError:
        if detect_legacy(payload):
            return UnsupportedMessage(f"{self._venue}/{self._channel}: {LEGACY_MESSAGE}")
        return RemoteProtocolError(f"{self._venue}/{self._channel}: {why}")

    def decode(self, payload: bytes) -> Decoded:
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise RemoteProtocolError(
                f"{self._venue}/{self._channel}: invalid JSON: {exc}"
            ) from None
        decoded = self.decode_value(value, payload)
        if payload[-1:] in b"\r\n":
            tail = _TAILS.get(payload[-2:]) or _TAILS.get(payload[-1:], 0)
            if tail:
                return Decoded(decoded.fields, tail, decoded.exact)
        return decoded

    def decode_value(self, value: Any, payload: bytes = b"") -> Decoded:
        """Decode an already parsed payload (``payload`` only improves error messages)."""
        first_error = "no variant matches"
        fallback: tuple[int, dict[str, Any]] | None = None
        for i, spec in enumerate(self.variants):
            ordered = _in_order(spec, value)
            if not ordered and fallback is not None:
                continue
            row: dict[str, Any] = {}
            try:
                spec.extract(value, row)
            except Mismatch as exc:
                if i == 0:
                    first_error = str(exc)
                continue
            if ordered:
                exact = not row.pop("__extra__", False)
                return Decoded(self._complete(row, i), 0, exact)
            fallback = (i, row)
        if fallback is not None:
            # Known keys in an order no variant describes: typed row is right, bytes are kept.
            i, row = fallback
            row.pop("__extra__", None)
            return Decoded(self._complete(row, i), 0, False)
        raise self._fail(payload, first_error)

    def _complete(self, row: dict[str, Any], layout: int) -> dict[str, Any]:
        out = {n: row.get(n) for n in self._names}
        out[LAYOUT] = layout
        return out

    def render(self, fields: Mapping[str, Any], stream: str, envelope: int) -> bytes:
        tail = b""
        if envelope != 0:
            for t, env in _TAILS.items():
                if env == envelope:
                    tail = t
                    break
            else:
                raise Mismatch(f"unknown envelope {envelope}")
        layout = fields.get(LAYOUT)
        if layout is None or not 0 <= layout < len(self.variants):
            raise Mismatch(f"bad layout {layout!r}")
        out: list[str] = []
        self.variants[layout].render(fields, out)
        return "".join(out).encode() + tail

    def event_ns(self, fields: Mapping[str, Any]) -> int | None:
        v = fields.get(self._event_time)
        return None if v is None else int(v) * 1_000_000


# --------------------------------------------------------------------------------------------
# Channel specs. Column names are snake_case; ``sym`` is the data symbol (``symbol`` is a
# Hive partition of the archive).


def _pick(table: Mapping[str, Key], order: str) -> list[Key]:
    return [table[k] for k in order.split()]


def _top(data: Node, *, data_optional: bool = False) -> dict[str, Key]:
    return {
        "id": Key("id", Str("msg_id")),
        "topic": Key("topic", Str("topic")),
        "type": Key("type", Str("msg_type")),
        "ts": Key("ts", Time("event_time")),
        "cts": Key("cts", Time("match_time"), optional=True),
        "cs": Key("cs", Int("cross_seq"), optional=True),
        "data": Key("data", data, optional=data_optional),
    }


def _variants(data: Node, *orders: str) -> list[Obj]:
    table = _top(data)
    return [_Obj(*_pick(table, o)) for o in orders]


# orderbook ---------------------------------------------------------------------------------

_BOOK_DATA = _Obj(
    Key("s", Str("sym")),
    Key("b", BookLevels("bids")),
    Key("a", BookLevels("asks")),
    Key("u", Int("update_id")),
    Key("seq", Int("cross_seq"), optional=True),  # absent on options (2023)
)
# Futures depth > 1 put ``type`` before ``ts``; spot (all depths) and futures level 1 the
# reverse (bybit-v5.md 4); options lead with ``id`` and end with ``type``.
_BOOK_FUT = "topic type ts data cts"
_BOOK_SPOT = "topic ts type data cts"
_BOOK_OPT = "id topic ts data type cts"
_BOOK_ORDERS: Final[Mapping[str, tuple[str, ...]]] = {
    "spot": (_BOOK_SPOT, _BOOK_FUT),
    "linear": (_BOOK_FUT, _BOOK_SPOT),
    "inverse": (_BOOK_FUT, _BOOK_SPOT),
    "option": (_BOOK_OPT, _BOOK_SPOT, _BOOK_FUT),
}

# publicTrade -------------------------------------------------------------------------------

_TRADE_KEYS: Final[Mapping[str, Key]] = {
    "T": Key("T", Time("trade_time")),
    "s": Key("s", Str("sym")),
    "S": Key("S", Str("side")),
    "v": Key("v", Dec("qty")),
    "p": Key("p", Dec("price")),
    "L": Key("L", Str("tick_direction"), optional=True),  # perps & futures only
    "i": Key("i", Str("trade_id")),  # numeric on spot, UUID on derivatives: keep text
    "BT": Key("BT", Bool("block_trade"), optional=True),
    "RPI": Key("RPI", Bool("rpi"), optional=True),  # since ~2025
    "seq": Key("seq", Int("cross_seq"), optional=True),  # since ~2024
    "mP": Key("mP", Dec("mark_price"), optional=True),  # option only
    "iP": Key("iP", Dec("index_price"), optional=True),
    "mIv": Key("mIv", Dec("mark_iv"), optional=True),
    "iv": Key("iv", Dec("iv"), optional=True),
}
_TRADE_CANON: Final = [
    "trade_time",
    "sym",
    "side",
    "price",
    "price_dp",
    "qty",
    "qty_dp",
    "tick_direction",
    "trade_id",
    "block_trade",
    "rpi",
    "cross_seq",
    "mark_price",
    "mark_price_dp",
    "index_price",
    "index_price_dp",
    "mark_iv",
    "mark_iv_dp",
    "iv",
    "iv_dp",
]
_TRADE_DOC_ORDER: Final = "T s S v p L i BT RPI seq mP iP mIv iv"
# The live order first (from captures), then the documented example's order. Variants are
# only ever appended: an archived row's ``layout`` is an index into this list.
_TRADE_ITEM_ORDERS: Final[Mapping[str, tuple[str, ...]]] = {
    "spot": ("i T p v S seq s BT RPI L mP iP mIv iv", _TRADE_DOC_ORDER),
    "linear": (_TRADE_DOC_ORDER,),
    "inverse": (_TRADE_DOC_ORDER,),
    "option": ("p v i T BT s S mP iP mIv iv L RPI seq", _TRADE_DOC_ORDER),
}
_TRADE_ORDERS: Final[Mapping[str, tuple[str, ...]]] = {
    "spot": ("topic ts type data", "topic type ts data"),
    "linear": ("topic type ts data", "topic ts type data"),
    "inverse": ("topic type ts data", "topic ts type data"),
    "option": ("id topic ts data type", "topic ts type data", "topic type ts data"),
}


def _trade_variants(category: str) -> list[Obj]:
    out: list[Obj] = []
    for item_order in _TRADE_ITEM_ORDERS[category]:
        item = _Obj(*_pick(_TRADE_KEYS, item_order), canon=_TRADE_CANON)
        out += _variants(ObjList("trades", item), *_TRADE_ORDERS[category])
    return out


# tickers -----------------------------------------------------------------------------------

_TICKER_FIELDS: Final[Mapping[str, Node]] = {
    # linear / inverse
    "tickDirection": Str("tick_direction"),
    "price24hPcnt": Dec("price_24h_pcnt"),
    "lastPrice": Dec("last_price"),
    "prevPrice24h": Dec("prev_price_24h"),
    "highPrice24h": Dec("high_price_24h"),
    "lowPrice24h": Dec("low_price_24h"),
    "prevPrice1h": Dec("prev_price_1h"),
    "markPrice": Dec("mark_price"),
    "indexPrice": Dec("index_price"),
    "openInterest": Dec("open_interest"),
    "openInterestValue": WideDec("open_interest_value"),
    "singleOpenInterest": Dec("single_open_interest"),
    "singleOpenInterestValue": WideDec("single_open_interest_value"),
    "turnover24h": WideDec("turnover_24h"),
    "volume24h": WideDec("volume_24h"),
    "fundingIntervalHour": Dec("funding_interval_hour"),
    "fundingCap": Dec("funding_cap"),
    "nextFundingTime": Dec("next_funding_time"),  # ms as a string, "" on dated futures
    "fundingRate": Dec("funding_rate"),
    "bid1Price": Dec("bid1_price"),
    "bid1Size": Dec("bid1_size"),
    "ask1Price": Dec("ask1_price"),
    "ask1Size": Dec("ask1_size"),
    "deliveryTime": Str("delivery_time"),  # ISO text
    "basisRate": Dec("basis_rate"),
    "basis": Dec("basis"),
    "deliveryFeeRate": Dec("delivery_fee_rate"),
    "predictedDeliveryPrice": Dec("predicted_delivery_price"),
    "basisRateYear": Dec("basis_rate_year"),
    "preOpenPrice": Dec("pre_open_price"),
    "preQty": Dec("pre_qty"),
    "curPreListingPhase": Str("cur_pre_listing_phase"),
    # spot
    "usdIndexPrice": Dec("usd_index_price"),
    # option
    "bidPrice": Dec("bid_price"),
    "bidSize": Dec("bid_size"),
    "bidIv": Dec("bid_iv"),
    "askPrice": Dec("ask_price"),
    "askSize": Dec("ask_size"),
    "askIv": Dec("ask_iv"),
    "markPriceIv": Dec("mark_price_iv"),
    "underlyingPrice": Dec("underlying_price"),
    "totalVolume": WideDec("total_volume"),
    "totalTurnover": WideDec("total_turnover"),
    "delta": Dec("delta"),
    "gamma": Dec("gamma"),
    "vega": Dec("vega"),
    "theta": Dec("theta"),
    "change24h": Dec("change_24h"),
}

# Snapshot order as sent (2026 capture; dated-futures fields placed as in the docs example).
_TICKER_FUT_SNAPSHOT = (
    "tickDirection price24hPcnt lastPrice prevPrice24h highPrice24h lowPrice24h prevPrice1h "
    "markPrice indexPrice openInterest openInterestValue turnover24h volume24h "
    "fundingIntervalHour fundingCap singleOpenInterest singleOpenInterestValue "
    "deliveryTime basisRate deliveryFeeRate predictedDeliveryPrice basis basisRateYear "
    "nextFundingTime fundingRate bid1Price bid1Size ask1Price ask1Size "
    "preOpenPrice preQty curPreListingPhase"
)
# Deltas list the fields added since 2023 after ask1Size (seen in the captures).
_TICKER_FUT_DELTA = (
    "tickDirection price24hPcnt lastPrice prevPrice24h highPrice24h lowPrice24h prevPrice1h "
    "markPrice indexPrice openInterest openInterestValue turnover24h volume24h "
    "nextFundingTime fundingRate bid1Price bid1Size ask1Price ask1Size "
    "singleOpenInterest singleOpenInterestValue "
    "deliveryTime basisRate deliveryFeeRate predictedDeliveryPrice basis basisRateYear "
    "fundingIntervalHour fundingCap preOpenPrice preQty curPreListingPhase"
)
_TICKER_SPOT = (
    "lastPrice highPrice24h lowPrice24h prevPrice24h volume24h turnover24h price24hPcnt "
    "usdIndexPrice"
)
_TICKER_OPT = (
    "bidPrice bidSize bidIv askPrice askSize askIv lastPrice highPrice24h lowPrice24h "
    "markPrice indexPrice markPriceIv underlyingPrice openInterest turnover24h volume24h "
    "totalVolume totalTurnover delta gamma vega theta predictedDeliveryPrice change24h"
)


def _ticker_data(order: str) -> _Obj:
    # Every field optional: deltas carry only what changed, and fields come and go by
    # contract type (perpetual, dated future, pre-market).
    keys = [Key("symbol", Str("sym"))]
    keys += [Key(k, _TICKER_FIELDS[k], optional=True) for k in order.split()]
    return _Obj(*keys)


def _ticker_variants(category: str) -> list[Obj]:
    if category == "spot":
        return _variants(
            _ticker_data(_TICKER_SPOT), "topic ts type cs data", "topic type data cs ts"
        )
    if category == "option":
        return _variants(_ticker_data(_TICKER_OPT), "id topic ts data type", "topic ts type data")
    top = "topic type data cs ts"
    snap = _variants(_ticker_data(_TICKER_FUT_SNAPSHOT), top)
    delta = _variants(_ticker_data(_TICKER_FUT_DELTA), top)
    return [*snap, *delta]


# kline -------------------------------------------------------------------------------------

_KLINE_ITEM = _Obj(
    Key("start", Time("start_time")),
    Key("end", Time("end_time")),
    Key("interval", Str("interval")),
    Key("open", Dec("open")),
    Key("close", Dec("close")),
    Key("high", Dec("high")),
    Key("low", Dec("low")),
    Key("volume", WideDec("volume")),
    Key("turnover", WideDec("turnover")),
    Key("confirm", Bool("confirm")),
    Key("timestamp", Time("last_match_time")),
)
_KLINE_ORDERS: Final[Mapping[str, tuple[str, ...]]] = {
    "spot": ("type topic data ts", "topic data ts type"),
    "linear": ("topic data ts type", "type topic data ts"),
    "inverse": ("topic data ts type", "type topic data ts"),
}

# liquidations ------------------------------------------------------------------------------

_LIQ_ITEM = _Obj(
    Key("T", Time("update_time")),
    Key("s", Str("sym")),
    Key("S", Str("side")),  # position side: Buy = a long was liquidated
    Key("v", Dec("qty")),
    Key("p", Dec("price")),  # bankruptcy price
)
_LIQ_ORDERS = ("topic type ts data", "topic ts type data")
# Retired ``liquidation.{symbol}``: one object per message.
_OLD_LIQ_DATA = _Obj(
    Key("updatedTime", Time("update_time")),
    Key("symbol", Str("sym")),
    Key("side", Str("side")),
    Key("size", Dec("qty")),
    Key("price", Dec("price")),
)

# REST orderbook ----------------------------------------------------------------------------

_REST_BOOK = _Obj(
    Key("retCode", Int("ret_code")),
    Key("retMsg", Str("ret_msg")),
    Key(
        "result",
        _Obj(
            Key("s", Str("sym")),
            Key("a", BookLevels("asks")),
            Key("b", BookLevels("bids")),
            Key("ts", Time("event_time")),
            Key("u", Int("update_id")),
            Key("seq", Int("cross_seq"), optional=True),
            Key("cts", Time("match_time"), optional=True),
        ),
    ),
    Key("retExtInfo", Json("ret_ext_info")),
    Key("time", Time("response_time")),
)


def _book_variants(category: str) -> list[Obj]:
    return _variants(_BOOK_DATA, *_BOOK_ORDERS[category])


def _register_all() -> None:
    for venue in VENUES:
        cat = category_of(venue)
        register(VariantCodec(venue, "orderbook", _book_variants(cat)))
        # The recorder's hourly book state: an orderbook snapshot message it writes itself.
        register(VariantCodec(venue, "book_checkpoint", _book_variants(cat)))
        register(VariantCodec(venue, "orderbook_snapshot", [_REST_BOOK]))
        register(VariantCodec(venue, "publicTrade", _trade_variants(cat)))
        register(VariantCodec(venue, "tickers", _ticker_variants(cat)))
        if cat != "option":
            kl = ObjList("klines", _KLINE_ITEM)
            register(VariantCodec(venue, "kline", _variants(kl, *_KLINE_ORDERS[cat])))
        if cat in ("linear", "inverse"):
            liq = ObjList("liquidations", _LIQ_ITEM)
            register(VariantCodec(venue, "allLiquidation", _variants(liq, *_LIQ_ORDERS)))
            register(VariantCodec(venue, "liquidation", _variants(_OLD_LIQ_DATA, *_LIQ_ORDERS)))
        register_common(venue)


def checkpoint_payload(
    venue: str,
    topic: str,
    ts_ms: int,
    *,
    bids: Sequence[Sequence[str]],
    asks: Sequence[Sequence[str]],
    update_id: int,
    cross_seq: int | None = None,
    cts_ms: int | None = None,
) -> bytes:
    """A ``book_checkpoint`` payload: an orderbook snapshot message in the venue's own key
    order (price/size texts as received), so it decodes with the orderbook spec."""
    info = classify(venue, topic)
    if info is None or info.channel != "orderbook":
        raise LocalProtocolError(f"{venue}: not an orderbook topic: {topic!r}")
    data: dict[str, Any] = {
        "s": info.symbol,
        "b": [[p, q] for p, q in bids],
        "a": [[p, q] for p, q in asks],
        "u": update_id,
    }
    if cross_seq is not None:
        data["seq"] = cross_seq
    parts: dict[str, Any] = {"topic": topic, "type": "snapshot", "ts": ts_ms, "data": data}
    if cts_ms is not None:
        parts["cts"] = cts_ms
    # Options lead with an exchange message id that a checkpoint does not have: use the
    # venue's first layout without "id" instead of inventing one.
    order = next(o for o in _BOOK_ORDERS[category_of(venue)] if "id" not in o.split()).split()
    return orjson.dumps({k: parts[k] for k in order if k in parts})


# --------------------------------------------------------------------------------------------
# Legacy v2 (retired): recognise, never decode

# v2 topic names (realtime / realtime_public): trade.BTCUSD, orderBookL2_25.BTCUSD,
# orderBook_200.100ms.BTCUSD, instrument_info.100ms.BTCUSD, klineV2.1.BTCUSD, candle.1.BTCUSDT,
# insurance.BTC. (``liquidation.`` is left out: V5 had that name too.)
_LEGACY_TOPICS: Final = frozenset(
    {
        "trade",
        "orderBookL2_25",
        "orderBook_200",
        "instrument_info",
        "klineV2",
        "candle",
        "insurance",
    }
)
_LEGACY_MARKERS: Final = (b'"request":{', b'"timestamp_e6"', b'"cross_seq"', b'"transactTimeE6"')


def detect_legacy(frame: bytes) -> bool:
    """True for a frame of Bybit's retired v2 WebSocket API (data or control)."""
    topic = topic_of(frame)
    if topic is not None and topic.split(".", 1)[0] in _LEGACY_TOPICS:
        return True
    return any(m in frame for m in _LEGACY_MARKERS)


@dataclass(frozen=True, slots=True)
class Route:
    """Where a received frame goes: channel, topic (stream) and symbol partition."""

    channel: str
    topic: str | None
    symbol: str


def route(venue: str, frame: bytes) -> Route:
    """Route a received frame without parsing it (hot path).

    Data pushes go to their topic's channel; frames without a topic to ``control``. Raises
    UnsupportedMessage for legacy v2 frames and RemoteProtocolError for an unknown topic;
    the recorder keeps such frames in ``unparsed``.
    """
    topic = topic_of(frame)
    if topic is not None:
        info = classify(venue, topic)
        if info is not None:
            return Route(info.channel, topic, info.symbol)
    if detect_legacy(frame):
        raise UnsupportedMessage(f"{venue}: {LEGACY_MESSAGE}")
    if topic is None:
        return Route(CONTROL_CHANNEL, None, ALL_SYMBOLS)
    raise RemoteProtocolError(f"{venue}: unknown topic {topic!r}")


# --------------------------------------------------------------------------------------------
# Control protocol

ARGS_CHARS_PER_CONNECTION: Final = 21_000
"""Sum of topic lengths allowed in ``args`` on one public connection (all categories)."""
OPTION_ARGS_PER_CONNECTION: Final = 2_000
SPOT_ARGS_PER_REQUEST: Final = 10
DERIVATIVE_ARGS_PER_REQUEST: Final = 100
"""Not a documented limit: third-party clients batch because very large requests were seen
to close connections (unconfirmed), so keep requests modest."""


def subscribe_request(
    topics: Sequence[str], req_id: str | None = None, *, venue: str | None = None
) -> bytes:
    """``{"req_id":…,"op":"subscribe","args":[…]}`` (req_id omitted when None).

    With ``venue``, every topic is validated (LocalProtocolError if invalid there) and the
    spot limit of 10 args per request is enforced; :func:`plan_requests` does the batching.
    """
    if venue is not None:
        for t in topics:
            validate_topic(venue, t)
        if category_of(venue) == "spot" and len(topics) > SPOT_ARGS_PER_REQUEST:
            raise LocalProtocolError(
                f"{venue}: {len(topics)} args in one request, spot allows {SPOT_ARGS_PER_REQUEST}"
            )
    return _op_request("subscribe", topics, req_id)


def unsubscribe_request(topics: Sequence[str], req_id: str | None = None) -> bytes:
    return _op_request("unsubscribe", topics, req_id)


def ping_request(req_id: str | None = None) -> bytes:
    """``{"req_id":…,"op":"ping"}``."""
    msg: dict[str, Any] = {} if req_id is None else {"req_id": req_id}
    msg["op"] = "ping"
    return orjson.dumps(msg)


def _op_request(op: str, topics: Sequence[str], req_id: str | None) -> bytes:
    if not topics:
        raise LocalProtocolError(f"{op} without topics")
    msg: dict[str, Any] = {} if req_id is None else {"req_id": req_id}
    msg["op"] = op
    msg["args"] = list(topics)
    return orjson.dumps(msg)


def check_connection_budget(venue: str, topics: Sequence[str]) -> None:
    """Raise LocalProtocolError if one connection would carry more than Bybit allows."""
    cat = category_of(venue)
    # Checked first, though with real topics (>= 13 characters) the 21,000-character budget
    # is always reached before 2000 option topics.
    if cat == "option" and len(topics) > OPTION_ARGS_PER_CONNECTION:
        raise LocalProtocolError(
            f"{venue}: {len(topics)} topics, more than {OPTION_ARGS_PER_CONNECTION} per "
            "option connection"
        )
    chars = sum(len(t) for t in topics)
    if chars > ARGS_CHARS_PER_CONNECTION:
        raise LocalProtocolError(
            f"{venue}: {len(topics)} topics use {chars} characters of args, more than "
            f"{ARGS_CHARS_PER_CONNECTION} per connection; split them over connections"
        )


def _unique_valid(venue: str, topics: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for t in topics:
        validate_topic(venue, t)
        seen.setdefault(t, None)
    return list(seen)


def plan_requests(
    venue: str, topics: Iterable[str], *, per_request: int | None = None
) -> list[list[str]]:
    """Subscribe batches for ONE connection: topics validated, de-duplicated (order kept),
    checked against the connection budget, and split to the per-request limit."""
    cat = category_of(venue)
    unique = _unique_valid(venue, topics)
    check_connection_budget(venue, unique)
    limit = SPOT_ARGS_PER_REQUEST if cat == "spot" else DERIVATIVE_ARGS_PER_REQUEST
    if per_request is not None:
        if per_request < 1:
            raise LocalProtocolError("per_request must be >= 1")
        limit = min(limit, per_request) if cat == "spot" else per_request
    return [unique[i : i + limit] for i in range(0, len(unique), limit)]


def plan_connections(venue: str, topics: Iterable[str]) -> list[list[str]]:
    """Split topics over as few connections as the per-connection budget allows."""
    cat = category_of(venue)
    conns: list[list[str]] = []
    chars = 0
    for t in _unique_valid(venue, topics):
        full = conns and (
            chars + len(t) > ARGS_CHARS_PER_CONNECTION
            or (cat == "option" and len(conns[-1]) >= OPTION_ARGS_PER_CONNECTION)
        )
        if not conns or full:
            conns.append([])
            chars = 0
        conns[-1].append(t)
        chars += len(t)
    return conns


@dataclass(frozen=True, slots=True)
class ControlReply:
    """A reply to one of our requests.

    ``op`` is ``subscribe``, ``unsubscribe`` or ``pong``. ``accepted``/``refused`` list topics
    only when the reply names them (option ``COMMAND_RESP``, or the topic of a ``handler not
    found`` error); spot/linear/inverse acknowledge a whole request, matched by ``req_id``
    (use :meth:`resolve`).
    """

    op: str
    success: bool
    req_id: str | None = None
    conn_id: str | None = None
    message: str = ""
    accepted: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    server_ms: int | None = None
    per_topic: bool = False

    def resolve(self, requested: Sequence[str]) -> tuple[list[str], list[str]]:
        """(accepted, refused) among the topics of the request this reply answers.

        Bybit does not say whether the other topics of a failed request were subscribed;
        they count as refused so the caller resubscribes them (without the named culprit).
        """
        if self.per_topic:
            ok = set(self.accepted)
            return [t for t in requested if t in ok], [t for t in requested if t not in ok]
        if self.success:
            return list(requested), []
        return [], list(requested)


_NOT_FOUND = "error:handler not found"


def parse_control(frame: bytes) -> ControlReply | None:
    """Parse a subscribe/unsubscribe/ping reply of any category; None for other frames.

    Raises UnsupportedMessage for a legacy v2 reply (``"request":{…}`` echo) and
    RemoteProtocolError for invalid JSON.
    """
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise RemoteProtocolError(f"bybit: invalid JSON: {exc}") from None
    if not isinstance(msg, dict) or "topic" in msg:
        return None
    if "request" in msg:
        raise UnsupportedMessage(f"bybit: {LEGACY_MESSAGE}")
    op = msg.get("op")
    conn_id = _opt_str(msg.get("conn_id"))
    req_id = _opt_str(msg.get("req_id"))
    if op == "pong":  # option/spread and private: {"args":["<ms>"],"op":"pong"}
        args = msg.get("args")
        ms = None
        if isinstance(args, list) and args and isinstance(args[0], str) and args[0].isdigit():
            ms = int(args[0])
        return ControlReply("pong", True, req_id, conn_id, server_ms=ms)
    if msg.get("type") == "COMMAND_RESP":  # option/spread subscribe reply
        raw = msg.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        ok = tuple(t for t in data.get("successTopics") or () if isinstance(t, str))
        bad = tuple(t for t in data.get("failTopics") or () if isinstance(t, str))
        kind = op if isinstance(op, str) else "subscribe"
        return ControlReply(
            kind,
            bool(msg.get("success")) and not bad,
            req_id,
            conn_id,
            _opt_str(msg.get("ret_msg")) or "",
            ok,
            bad,
            per_topic=True,
        )
    if "success" not in msg or not isinstance(op, str):
        return None
    ret_msg = _opt_str(msg.get("ret_msg")) or ""
    success = msg.get("success") is True
    if op == "ping" and ret_msg == "pong":  # spot/linear/inverse pong echoes op "ping"
        return ControlReply("pong", success, req_id, conn_id, ret_msg)
    refused: tuple[str, ...] = ()
    if not success and ret_msg.startswith(_NOT_FOUND):
        _, sep, topic = ret_msg.partition(",topic:")
        if sep and topic:
            refused = (topic,)
    return ControlReply(op, success, req_id, conn_id, ret_msg, refused=refused)


def _opt_str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


# --------------------------------------------------------------------------------------------
# Book continuity (sans-IO)


@dataclass(frozen=True, slots=True)
class Synced:
    """The first snapshot (or the first after a gap): the book is usable from here."""

    topic: str
    update_id: int


@dataclass(frozen=True, slots=True)
class Reset:
    """A snapshot while in sync: ``u = 1`` (service restart) or unsolicited re-snapshot.
    The local book must be replaced; the recorder logs it."""

    topic: str
    update_id: int
    reason: str  # "restart" (u = 1) or "snapshot"


@dataclass(frozen=True, slots=True)
class Gap:
    """Deltas are missing: resubscribe this topic. ``expected`` is None before any snapshot."""

    topic: str
    expected: int | None
    got: int


@dataclass(frozen=True, slots=True)
class Stale:
    """A delta whose ``u`` is not newer than the last one (duplicate or reordered); ignored."""

    topic: str
    last: int
    got: int


BookEvent = Synced | Reset | Gap | Stale


class BookSync:
    """Tracks ``u``/``seq`` of one ``orderbook`` topic and reports continuity events.

    Feed every message of the topic in order (:meth:`feed` takes the orderbook codec's fields,
    :meth:`on_message` the raw values). Rules (bybit-v5.md 6): a snapshot (re)starts the
    book; a delta must follow a snapshot, and with ``strict_increment`` (default) must have
    ``u == previous u + 1`` -- the docs do not promise +1 steps, hence the switch. Level 1 is
    snapshot-only and repeats the same ``u``, so its snapshots are routine, not resets.
    After a :class:`Gap` further deltas are dropped silently until the next snapshot.
    """

    def __init__(self, topic: str, *, strict_increment: bool = True) -> None:
        self.topic = topic
        self.strict_increment = strict_increment
        parts = topic.split(".")
        self.level1 = len(parts) == 3 and parts[1] == "1"
        self.synced = False
        self.last_u: int | None = None
        self.last_seq: int | None = None
        self._gap_reported = False

    def feed(self, fields: Mapping[str, Any]) -> list[BookEvent]:
        """Events for one decoded orderbook message (columns msg_type, update_id, cross_seq)."""
        return self.on_message(fields["msg_type"], fields["update_id"], fields.get("cross_seq"))

    def on_message(self, msg_type: str, u: int, seq: int | None = None) -> list[BookEvent]:
        if msg_type == "snapshot":
            return self._snapshot(u, seq)
        if msg_type == "delta":
            return self._delta(u, seq)
        raise RemoteProtocolError(f"{self.topic}: unknown orderbook type {msg_type!r}")

    def _snapshot(self, u: int, seq: int | None) -> list[BookEvent]:
        was = self.synced
        self.synced, self._gap_reported = True, False
        self.last_u, self.last_seq = u, seq
        if not was:
            return [Synced(self.topic, u)]
        if u == 1:
            return [Reset(self.topic, u, "restart")]
        if self.level1:
            return []
        return [Reset(self.topic, u, "snapshot")]

    def _delta(self, u: int, seq: int | None) -> list[BookEvent]:
        if not self.synced or self.last_u is None:
            if self._gap_reported:
                return []
            self._gap_reported = True
            return [Gap(self.topic, None, u)]
        if u <= self.last_u:
            return [Stale(self.topic, self.last_u, u)]
        if self.strict_increment and u != self.last_u + 1:
            expected = self.last_u + 1
            self.synced, self._gap_reported = False, True
            return [Gap(self.topic, expected, u)]
        self.last_u, self.last_seq = u, seq
        return []


# --------------------------------------------------------------------------------------------
# URLs and REST

WS_HOST: Final = "wss://stream.bybit.com"
WS_TESTNET_HOST: Final = "wss://stream-testnet.bybit.com"
REST_HOST: Final = "https://api.bybit.com"
REST_TESTNET_HOST: Final = "https://api-testnet.bybit.com"
ORDERBOOK_PATH: Final = "/v5/market/orderbook"
INSTRUMENTS_PATH: Final = "/v5/market/instruments-info"
_REST_BOOK_LIMIT: Final[Mapping[str, int]] = {
    "spot": 1000,
    "linear": 1000,
    "inverse": 1000,
    "option": 25,
}


def ws_url(venue: str, *, testnet: bool = False, host: str | None = None) -> str:
    """Public stream URL of a category (``host`` overrides, e.g. a local simulator)."""
    base = host or (WS_TESTNET_HOST if testnet else WS_HOST)
    return f"{base.rstrip('/')}/v5/public/{category_of(venue)}"


def orderbook_request(
    venue: str, symbol: str, limit: int | None = None, *, host: str = REST_HOST
) -> tuple[str, dict[str, str]]:
    """(url, params) of ``GET /v5/market/orderbook``; ``limit`` None = category maximum."""
    cat = category_of(venue)
    top = _REST_BOOK_LIMIT[cat]
    if limit is None:
        limit = top
    if not 1 <= limit <= top:
        raise LocalProtocolError(f"{venue}: orderbook limit must be 1..{top}, got {limit}")
    if not _SYMBOL.match(symbol):
        raise LocalProtocolError(f"{venue}: bad symbol {symbol!r} (Bybit symbols are uppercase)")
    params = {"category": cat, "symbol": symbol, "limit": str(limit)}
    return host.rstrip("/") + ORDERBOOK_PATH, params


def instruments_request(
    venue: str,
    cursor: str | None = None,
    *,
    limit: int = 1000,
    status: str | None = None,
    host: str = REST_HOST,
) -> tuple[str, dict[str, str]]:
    """(url, params) of one page of ``GET /v5/market/instruments-info``."""
    if not 1 <= limit <= 1000:
        raise LocalProtocolError(f"instruments-info limit must be 1..1000, got {limit}")
    params = {"category": category_of(venue), "limit": str(limit)}
    if status is not None:
        params["status"] = status
    if cursor:
        params["cursor"] = cursor
    return host.rstrip("/") + INSTRUMENTS_PATH, params


def _rest_result(body: bytes) -> dict[str, Any]:
    try:
        msg = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RemoteProtocolError(f"bybit REST: invalid JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise RemoteProtocolError("bybit REST: body is not an object")
    if msg.get("retCode") != 0:
        raise RemoteProtocolError(
            f"bybit REST: retCode {msg.get('retCode')!r}: {msg.get('retMsg')!r}"
        )
    result = msg.get("result")
    if not isinstance(result, dict):
        raise RemoteProtocolError("bybit REST: no result object")
    return result


def parse_instruments(
    body: bytes, *, statuses: Iterable[str] | None = None
) -> tuple[list[str], str | None]:
    """(symbols, next cursor or None) of an instruments-info page; keeps only ``statuses``
    when given (e.g. ``{"Trading"}``)."""
    result = _rest_result(body)
    items = result.get("list")
    if not isinstance(items, list):
        raise RemoteProtocolError("bybit REST: instruments-info without a list")
    keep = None if statuses is None else set(statuses)
    symbols = [
        it["symbol"]
        for it in items
        if isinstance(it, dict)
        and isinstance(it.get("symbol"), str)
        and (keep is None or it.get("status") in keep)
    ]
    cursor = result.get("nextPageCursor")
    return symbols, (cursor if isinstance(cursor, str) and cursor else None)


RATE_LIMIT_RET_CODES: Final = frozenset({10006, 10018})
"""retCodes Bybit uses for "too many visits" / IP rate limit (outside bybit-v5.md)."""


def is_rate_limited(status: int, body: bytes = b"") -> bool:
    """True for Bybit's IP rate-limit answer: HTTP 403 "access too frequent" (wait >= 10 min),
    or a JSON body with a rate-limit retCode."""
    if status == 403:
        return not body or b"too frequent" in body.lower() or b"403" in body[:64]
    if status in (200, 429) and body[:1] == b"{":
        try:
            msg = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False
        return isinstance(msg, dict) and msg.get("retCode") in RATE_LIMIT_RET_CODES
    return status == 429


_register_all()
