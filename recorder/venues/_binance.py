"""Binance Spot and USDⓈ-M futures (JSON streams): sans-IO protocol core and channel codecs.

Plain synchronous code in the style of h11 / wsproto: functions build request bytes and URLs,
parse replies and classify stream names; :class:`DepthSync` says what to do with each depth
event. Nothing here does I/O. Importing the module registers every channel codec of the
venues ``binance-spot`` and ``binance-usdm``.

References: ``shared/protocols/binance-spot.md`` and ``binance-usdm-futures.md`` (section
numbers below refer to them).
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

import orjson
import pyarrow as pa

from recorder.core._codec import register
from recorder.core._errors import LocalProtocolError, RemoteProtocolError
from recorder.core._message import ALL_SYMBOLS, CONTROL_CHANNEL
from recorder.venues._channels import JsonChannel, register_common
from recorder.venues._jsonspec import (
    Bool,
    Const,
    Dec,
    Int,
    Json,
    Key,
    Levels,
    Mismatch,
    Node,
    Obj,
    ObjList,
    Payload,
    Str,
    Time,
)

SPOT: Final = "binance-spot"
USDM: Final = "binance-usdm"
VENUES: Final = (SPOT, USDM)

Route = Literal["public", "market"]

# --------------------------------------------------------------------------------------------
# Combined-stream envelope
# --------------------------------------------------------------------------------------------

ENVELOPE_NONE: Final = 0
ENVELOPE_COMBINED: Final = 1
ENVELOPE_REFORMATTED: Final = 2
"""A combined wrapper in non-compact JSON: decodable, but never re-rendered."""

_STREAM_PREFIX: Final = b'{"stream":"'
_DATA_INFIX: Final = b'","data":'


def stream_of(frame: bytes) -> str | None:
    """The stream name of a combined-stream frame, sliced out without parsing JSON.

    None if the frame is not ``{"stream":"<name>","data":...}`` (bare frames, control replies).
    Stream names never contain ``"`` or ``\\``, so the first quote ends the name.
    """
    if not frame.startswith(_STREAM_PREFIX):
        return None
    end = frame.find(b'"', 11)
    if end < 0 or frame[end : end + 9] != _DATA_INFIX or b"\\" in frame[11:end]:
        return None
    try:
        return frame[11:end].decode()
    except UnicodeDecodeError:
        return None


class CombinedEnvelope:
    """Binance's ``{"stream":"<name>","data":<payload>}`` wrapper (envelope id 1)."""

    def split(self, frame: bytes) -> tuple[int, bytes]:
        if frame.startswith(_STREAM_PREFIX) and frame.endswith(b"}"):
            end = frame.find(b'"', 11)
            if end > 0 and frame[end : end + 9] == _DATA_INFIX:
                return ENVELOPE_COMBINED, frame[end + 9 : -1]
        if (frame[:1] == b"{" and frame[1:2] != b'"') or frame[:1] in (b" ", b"\n", b"\r", b"\t"):
            # Not Binance's compact text (e.g. a pretty-printed fixture): parse to unwrap.
            try:
                value = orjson.loads(frame)
            except orjson.JSONDecodeError:
                return ENVELOPE_NONE, frame
            if isinstance(value, dict) and value.keys() == {"stream", "data"}:
                return ENVELOPE_REFORMATTED, orjson.dumps(value["data"])
        return ENVELOPE_NONE, frame

    def join(self, envelope: int, stream: str, inner: bytes) -> bytes:
        if envelope == ENVELOPE_NONE:
            return inner
        if envelope == ENVELOPE_COMBINED:
            return _STREAM_PREFIX + stream.encode() + _DATA_INFIX + inner + b"}"
        if envelope == ENVELOPE_REFORMATTED:
            raise Mismatch("the wrapper was not compact JSON; only the raw bytes are exact")
        raise Mismatch(f"unknown envelope {envelope}")


COMBINED: Final = CombinedEnvelope()

# --------------------------------------------------------------------------------------------
# Stream names
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a stream name means: its channel, symbol partition and (USDⓈ-M) URL route."""

    channel: str
    symbol: str
    route: Route | None = None


_SPOT_INTERVALS = "1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M"
_USDM_INTERVALS = "1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M"
_CONTRACT_TYPES = ("perpetual", "current_quarter", "next_quarter", "tradifi_perpetual")

# (suffix after "<symbol>@", channel, route); full-match regexes.
_SPOT_SYMBOL_STREAMS: Final[list[tuple[str, str, Route | None]]] = [
    (r"trade", "trade", None),
    (r"aggTrade", "aggTrade", None),
    (rf"kline_(?:{_SPOT_INTERVALS})(?:@\+08:00)?", "kline", None),
    (r"miniTicker", "miniTicker", None),
    (r"ticker", "ticker", None),
    (r"ticker_(?:1h|4h|1d)", "ticker_window", None),
    (r"bookTicker", "bookTicker", None),
    (r"avgPrice", "avgPrice", None),
    (r"depth(?:5|10|20)(?:@100ms)?", "depthPartial", None),
    (r"depth(?:@100ms)?", "depth", None),
    (r"referencePrice", "referencePrice", None),
    (r"blockTrade", "blockTrade", None),
]
_SPOT_ALL_STREAMS: Final[dict[str, str]] = {
    "!miniTicker@arr": "miniTicker_arr",
    "!ticker@arr": "ticker_arr",
    "!ticker_1h@arr": "ticker_window_arr",
    "!ticker_4h@arr": "ticker_window_arr",
    "!ticker_1d@arr": "ticker_window_arr",
}
_SPOT_RETIRED: Final = {"!ticker@arr": "retired on 2026-03-26 (use <symbol>@ticker)"}

_USDM_SYMBOL_STREAMS: Final[list[tuple[str, str, Route | None]]] = [
    (r"aggTrade", "aggTrade", "market"),
    # Undocumented (seen in captures); route not in the table, /market is our best guess.
    (r"trade", "trade", "market"),
    (r"markPrice(?:@1s)?", "markPrice", "market"),
    (rf"kline_(?:{_USDM_INTERVALS})", "kline", "market"),
    (r"miniTicker", "miniTicker", "market"),
    (r"ticker", "ticker", "market"),
    (r"bookTicker", "bookTicker", "public"),
    (r"forceOrder", "forceOrder", "market"),
    (r"depth(?:5|10|20)(?:@500ms|@100ms)?", "depthPartial", "public"),
    (r"depth(?:@500ms|@100ms|@0ms)?", "depth", "public"),
    (r"rpiDepth@500ms", "rpiDepth", "public"),
    (r"compositeIndex", "compositeIndex", "market"),
    (r"assetIndex", "assetIndex", "market"),
]
_USDM_CONTINUOUS = re.compile(rf"continuousKline_(?:1s|{_USDM_INTERVALS})")
_USDM_ALL_STREAMS: Final[dict[str, tuple[str, Route]]] = {
    "!markPrice@arr": ("markPrice_arr", "market"),
    "!markPrice@arr@1s": ("markPrice_arr", "market"),
    "!miniTicker@arr": ("miniTicker_arr", "market"),
    "!ticker@arr": ("ticker_arr", "market"),
    "!bookTicker": ("bookTicker", "public"),
    "!forceOrder@arr": ("forceOrder", "market"),
    "!contractInfo": ("contractInfo", "market"),
    "!assetIndex@arr": ("assetIndex_arr", "market"),
    "tradingSession": ("tradingSession", "market"),
}

_SERVER_SHUTDOWN_STREAM: Final = "!serverShutdown"

_COMPILED: Final[dict[str, list[tuple[re.Pattern[str], str, Route | None]]]] = {
    SPOT: [(re.compile(p), c, r) for p, c, r in _SPOT_SYMBOL_STREAMS],
    USDM: [(re.compile(p), c, r) for p, c, r in _USDM_SYMBOL_STREAMS],
}


def _valid_symbol(sym: str) -> bool:
    # Lowercase ASCII letters/digits, '_' (USDⓈ-M delivery contracts such as btcusdt_210129),
    # and non-ASCII letters (Spot lists a few symbols with CJK characters).
    if not sym:
        return False
    for ch in sym:
        if ch.isascii():
            if not (ch.islower() or ch.isdigit() or ch == "_"):
                return False
        elif not ch.isalnum() or ch.isupper():
            return False
    return True


def _check_venue(venue: str) -> None:
    if venue not in VENUES:
        raise LocalProtocolError(f"unknown Binance venue {venue!r} (expected one of {VENUES})")


def _parse(venue: str, stream: str) -> StreamInfo | str:
    """StreamInfo, or the reason the name is not a valid stream of ``venue``."""
    if venue == SPOT:
        if stream in _SPOT_ALL_STREAMS:
            return StreamInfo(_SPOT_ALL_STREAMS[stream], ALL_SYMBOLS)
    elif venue == USDM:
        if stream in _USDM_ALL_STREAMS:
            channel, all_route = _USDM_ALL_STREAMS[stream]
            return StreamInfo(channel, ALL_SYMBOLS, all_route)
    else:
        return f"unknown venue {venue!r}"
    sym, at, suffix = stream.partition("@")
    if not at or not suffix:
        return "expected <symbol>@<stream> or one of the all-market stream names"
    if not _valid_symbol(sym):
        return "the symbol part must be lowercase letters and digits"
    if venue == USDM and _USDM_CONTINUOUS.fullmatch(suffix):
        for ct in _CONTRACT_TYPES:
            pair = sym.removesuffix("_" + ct)
            if pair != sym and pair and "_" not in pair:
                return StreamInfo("continuousKline", sym.upper(), "market")
        return f"continuousKline needs <pair>_<contractType> with contractType in {_CONTRACT_TYPES}"
    for pattern, channel, route in _COMPILED[venue]:
        if pattern.fullmatch(suffix):
            if venue == SPOT and "_" in sym:
                return "Spot symbols have no '_'"
            return StreamInfo(channel, sym.upper(), route)
    return f"unknown stream type {suffix!r}"


@functools.lru_cache(maxsize=65536)
def classify(venue: str, stream: str) -> StreamInfo | None:
    """Channel, symbol and route of a received stream name; None if it is not a known stream.

    ``!serverShutdown`` (the combined-stream name of the shutdown notice) is the control
    channel. Cached, because the recorder calls this for every frame.
    """
    if stream == _SERVER_SHUTDOWN_STREAM:
        return StreamInfo(CONTROL_CHANNEL, ALL_SYMBOLS)
    info = _parse(venue, stream)
    return info if isinstance(info, StreamInfo) else None


def parse_stream_name(venue: str, stream: str) -> StreamInfo:
    """Validate a stream name we are about to subscribe to; raises LocalProtocolError."""
    _check_venue(venue)
    if not isinstance(stream, str) or not stream:
        raise LocalProtocolError(f"{venue}: empty or non-string stream name {stream!r}")
    if stream != stream.strip() or any(c in stream for c in '/"\\?&# '):
        raise LocalProtocolError(f"{venue}: stream name {stream!r} contains a forbidden character")
    if venue == SPOT and stream in _SPOT_RETIRED:
        raise LocalProtocolError(f"{venue}: stream {stream!r} was {_SPOT_RETIRED[stream]}")
    info = _parse(venue, stream)
    if isinstance(info, str):
        raise LocalProtocolError(f"{venue}: invalid stream name {stream!r}: {info}")
    return info


# --------------------------------------------------------------------------------------------
# Control protocol (§5 Spot, §4 USDⓈ-M)
# --------------------------------------------------------------------------------------------

MAX_STREAMS_PER_CONNECTION: Final = 1024
_ID_STRING = re.compile(r"[A-Za-z0-9]{1,36}\Z")

RequestId: TypeAlias = int | str | None


def _check_id(venue: str, request_id: RequestId) -> None:
    if venue == USDM:
        # USDⓈ-M documents the id as an unsigned integer only.
        if type(request_id) is not int or not 0 <= request_id < 2**64:
            raise LocalProtocolError(f"{venue}: request id must be an unsigned integer")
        return
    if request_id is None:
        return
    if type(request_id) is int:
        if not -(2**63) <= request_id < 2**63:
            raise LocalProtocolError(f"{venue}: request id {request_id} is not an int64")
        return
    if isinstance(request_id, str) and _ID_STRING.match(request_id):
        return
    raise LocalProtocolError(
        f"{venue}: request id must be an int64, an alphanumeric string of at most 36 "
        f"characters or None, got {request_id!r}"
    )


def _stream_params(venue: str, streams: Iterable[str]) -> list[str]:
    params = list(streams)
    if not params:
        raise LocalProtocolError(f"{venue}: no streams given")
    if len(params) > MAX_STREAMS_PER_CONNECTION:
        raise LocalProtocolError(
            f"{venue}: {len(params)} streams exceed {MAX_STREAMS_PER_CONNECTION} per connection"
        )
    for s in params:
        parse_stream_name(venue, s)
    return params


def subscribe(venue: str, streams: Iterable[str], request_id: RequestId) -> bytes:
    """A ``SUBSCRIBE`` request; raises LocalProtocolError for invalid names or ids."""
    _check_venue(venue)
    params = _stream_params(venue, streams)
    _check_id(venue, request_id)
    return orjson.dumps({"method": "SUBSCRIBE", "params": params, "id": request_id})


def unsubscribe(venue: str, streams: Iterable[str], request_id: RequestId) -> bytes:
    """An ``UNSUBSCRIBE`` request."""
    _check_venue(venue)
    params = _stream_params(venue, streams)
    _check_id(venue, request_id)
    return orjson.dumps({"method": "UNSUBSCRIBE", "params": params, "id": request_id})


def list_subscriptions(venue: str, request_id: RequestId) -> bytes:
    """A ``LIST_SUBSCRIPTIONS`` request."""
    _check_venue(venue)
    _check_id(venue, request_id)
    return orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": request_id})


@dataclass(frozen=True, slots=True)
class CommandResult:
    """``{"result":...,"id":...}``: success (``result`` None) or a query's answer."""

    id: RequestId
    result: Any


@dataclass(frozen=True, slots=True)
class CommandError:
    """``{"error":{"code":...,"msg":...},"id":...}``; ``id`` is None when the server omits it."""

    id: RequestId
    code: int
    msg: str


@dataclass(frozen=True, slots=True)
class ServerShutdown:
    """The ``serverShutdown`` notice: reconnect soon. ``event_time`` in ms."""

    event_time: int


ControlReply: TypeAlias = CommandResult | CommandError | ServerShutdown

_CONTROL_PREFIXES: Final = (b'{"result"', b'{"error"', b'{"id"', b'{"e":"serverShutdown"')
_SHUTDOWN_COMBINED: Final = b'{"stream":"!serverShutdown","data":'


def _loads(frame: bytes) -> Any:
    try:
        return orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise RemoteProtocolError(f"invalid JSON in control frame: {exc}") from None


def _reply_id(value: Any) -> RequestId:
    rid = value.get("id")
    if rid is None or type(rid) is int or isinstance(rid, str):
        return rid
    raise RemoteProtocolError(f"control reply id of unexpected type: {rid!r}")


def _control_from(value: Any) -> ControlReply | None:
    if not isinstance(value, dict):
        return None
    if value.get("e") == "serverShutdown":
        et = value.get("E")
        if type(et) is not int:
            raise RemoteProtocolError("serverShutdown without an integer E")
        return ServerShutdown(et)
    if "error" in value:
        err = value["error"]
        if (
            not isinstance(err, dict)
            or type(err.get("code")) is not int
            or not isinstance(err.get("msg"), str)
        ):
            raise RemoteProtocolError(f"malformed error reply: {value!r:.200}")
        return CommandError(_reply_id(value), err["code"], err["msg"])
    if "result" in value:
        return CommandResult(_reply_id(value), value["result"])
    return None


def parse_control(frame: bytes) -> ControlReply | None:
    """The control reply in ``frame``, or None for a data frame.

    Data frames are recognised by their first bytes and never parsed; control frames are
    rare and small. Raises RemoteProtocolError for a control frame that is malformed.
    """
    if frame.startswith(_STREAM_PREFIX):
        if not frame.startswith(_SHUTDOWN_COMBINED):
            return None
        value = _loads(frame)
        inner = value.get("data") if isinstance(value, dict) else None
        reply = _control_from(inner)
        if not isinstance(reply, ServerShutdown):
            raise RemoteProtocolError(f"malformed !serverShutdown frame: {frame[:200]!r}")
        return reply
    if frame.startswith(_CONTROL_PREFIXES):
        reply = _control_from(_loads(frame))
        if reply is None:
            raise RemoteProtocolError(f"unrecognised control frame: {frame[:200]!r}")
        return reply
    if frame[:1] == b"{" and frame[1:2] != b'"':
        # Not Binance's compact form (whitespace after '{'): rare, so parse it.
        return _control_from(_loads(frame))
    return None


# --------------------------------------------------------------------------------------------
# URLs and REST
# --------------------------------------------------------------------------------------------

SPOT_WS_BASE: Final = "wss://stream.binance.com:9443"
SPOT_WS_DATA_BASE: Final = "wss://data-stream.binance.vision"
"""Market-data-only Spot host (same stream catalogue, no user data)."""
USDM_WS_BASE: Final = "wss://fstream.binance.com"
SPOT_REST_BASE: Final = "https://api.binance.com"
SPOT_REST_DATA_BASE: Final = "https://data-api.binance.vision"
USDM_REST_BASE: Final = "https://fapi.binance.com"

SPOT_WEIGHT_LIMIT_1M: Final = 6000
USDM_WEIGHT_LIMIT_1M: Final = 2400
USED_WEIGHT_HEADER: Final = "X-MBX-USED-WEIGHT-1M"


def route_of(venue: str, streams: Iterable[str]) -> Route | None:
    """The one route all ``streams`` belong to (None on Spot); raises if they need several."""
    _check_venue(venue)
    routes = {parse_stream_name(venue, s).route for s in streams}
    if len(routes) > 1:
        raise LocalProtocolError(
            f"{venue}: streams of routes {sorted(str(r) for r in routes)} cannot share a "
            "connection (a stream on the wrong route silently delivers nothing)"
        )
    return routes.pop() if routes else None


def ws_url(
    venue: str, base: str | None = None, streams: Sequence[str] = (), route: Route | None = None
) -> str:
    """Combined-stream URL ``<base>[/<route>]/stream?streams=a/b``.

    ``base`` defaults to the venue's main host. USDⓈ-M needs a route; it is derived from
    ``streams`` when not given and must match them.
    """
    _check_venue(venue)
    streams = list(streams)
    if len(streams) > MAX_STREAMS_PER_CONNECTION:
        raise LocalProtocolError(f"{venue}: more than {MAX_STREAMS_PER_CONNECTION} streams")
    needed = route_of(venue, streams)
    if venue == SPOT:
        if route is not None:
            raise LocalProtocolError(f"{venue}: Spot has no routes, got {route!r}")
        root = (base or SPOT_WS_BASE).rstrip("/")
    else:
        if route is None:
            route = needed
        if route not in ("public", "market"):
            raise LocalProtocolError(f"{venue}: route must be 'public' or 'market', got {route!r}")
        if needed is not None and needed != route:
            raise LocalProtocolError(f"{venue}: streams belong to route {needed!r}, not {route!r}")
        root = (base or USDM_WS_BASE).rstrip("/") + "/" + route
    if not streams:
        return root + "/stream"
    return root + "/stream?streams=" + "/".join(streams)


def depth_path(venue: str, symbol: str, limit: int | None = None) -> str:
    """Path and query of the REST depth snapshot (``/api/v3/depth`` or ``/fapi/v1/depth``)."""
    _check_venue(venue)
    if not symbol or symbol != symbol.upper():
        raise LocalProtocolError(f"{venue}: REST symbols are uppercase, got {symbol!r}")
    path = "/api/v3/depth" if venue == SPOT else "/fapi/v1/depth"
    query = "?symbol=" + urllib.parse.quote(symbol, safe="")
    if limit is not None:
        depth_weight(venue, limit)  # validates
        query += f"&limit={limit}"
    return path + query


def exchange_info_path(venue: str) -> str:
    _check_venue(venue)
    return "/api/v3/exchangeInfo" if venue == SPOT else "/fapi/v1/exchangeInfo"


_USDM_DEPTH_WEIGHTS: Final = {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10, 1000: 20}


def depth_weight(venue: str, limit: int | None = None) -> int:
    """Request weight of a depth snapshot of ``limit`` levels (None = the default limit)."""
    _check_venue(venue)
    if venue == SPOT:
        limit = 100 if limit is None else limit
        if type(limit) is not int or limit < 1:
            raise LocalProtocolError(f"{venue}: depth limit must be a positive int, got {limit!r}")
        # Limits above 5000 are served as 5000 (§7.1).
        for top, weight in ((100, 5), (500, 25), (1000, 50)):
            if limit <= top:
                return weight
        return 250
    limit = 500 if limit is None else limit
    try:
        return _USDM_DEPTH_WEIGHTS[limit]
    except (KeyError, TypeError):
        raise LocalProtocolError(
            f"{venue}: depth limit must be one of {sorted(_USDM_DEPTH_WEIGHTS)}, got {limit!r}"
        ) from None


def used_weight(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> int | None:
    """``X-MBX-USED-WEIGHT-1M`` from response headers (case-insensitive); None if absent."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if name.lower() == "x-mbx-used-weight-1m":
            text = value.strip()
            if not text.isdigit():
                raise RemoteProtocolError(f"bad {USED_WEIGHT_HEADER} header: {value!r}")
            return int(text)
    return None


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    symbol: str
    status: str
    base: str
    quote: str


def parse_exchange_info(body: bytes) -> list[SymbolInfo]:
    """The symbols of an ``exchangeInfo`` response body (Spot or USDⓈ-M)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RemoteProtocolError(f"exchangeInfo: invalid JSON: {exc}") from None
    if not isinstance(value, dict) or not isinstance(value.get("symbols"), list):
        raise RemoteProtocolError("exchangeInfo: no 'symbols' array")
    out = []
    for s in value["symbols"]:
        try:
            info = SymbolInfo(s["symbol"], s["status"], s["baseAsset"], s["quoteAsset"])
        except (KeyError, TypeError):
            raise RemoteProtocolError(f"exchangeInfo: malformed symbol entry {s!r:.200}") from None
        if not all(isinstance(x, str) for x in (info.symbol, info.status, info.base, info.quote)):
            raise RemoteProtocolError(f"exchangeInfo: non-string field in {s!r:.200}")
        out.append(info)
    return out


# --------------------------------------------------------------------------------------------
# Depth continuity (Spot §8, USDⓈ-M §7)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NeedSnapshot:
    """Buffer this event and fetch a REST snapshot (first event after a (re)start)."""


@dataclass(frozen=True, slots=True)
class Buffer:
    """Buffer this event; a snapshot is already needed."""


@dataclass(frozen=True, slots=True)
class UseSnapshot:
    """Load the snapshot as the book, then feed the buffered events again, in order."""


@dataclass(frozen=True, slots=True)
class SnapshotTooOld:
    """The snapshot predates the first buffered event: fetch another, keep buffering."""

    last_update_id: int
    first_update_id: int


@dataclass(frozen=True, slots=True)
class Discard:
    """The event is already contained in the book: drop it."""


@dataclass(frozen=True, slots=True)
class Apply:
    """Apply the event to the book."""


@dataclass(frozen=True, slots=True)
class Gap:
    """Updates were lost: throw the book away, buffer this event and fetch a new snapshot.

    ``expected``/``got``: Spot compares ``U`` with book id + 1, USDⓈ-M ``pu`` with the previous
    ``u`` (or, for the first event after a snapshot, ``U`` with ``lastUpdateId``).
    """

    expected: int
    got: int


DepthAction: TypeAlias = (
    NeedSnapshot | Buffer | UseSnapshot | SnapshotTooOld | Discard | Apply | Gap
)

_WAIT_EVENT: Final = "wait_event"  # nothing buffered, no snapshot
_BUFFERING: Final = "buffering"  # events buffered, waiting for a snapshot
_FIRST: Final = "first"  # snapshot loaded, no event applied yet
_LIVE: Final = "live"  # at least one event applied


class DepthSync:
    """Per-symbol diff-depth continuity, exactly as the venue's local-book procedure says.

    Feed every diff event with :meth:`event` (``U``, ``u`` and, on USDⓈ-M, ``pu``) and every
    snapshot's ``lastUpdateId`` with :meth:`snapshot`; each returns the action to take. After
    :class:`UseSnapshot`, feed the buffered events again; they come back as
    :class:`Discard`, :class:`Apply` or :class:`Gap` (after which the rest are buffered anew).
    """

    def __init__(self, venue: str) -> None:
        _check_venue(venue)
        self.venue = venue
        self.state = _WAIT_EVENT
        self.first_update_id: int | None = None
        self.book_id: int | None = None
        """Update id the book is at (snapshot lastUpdateId, then each applied event's u)."""

    def reset(self) -> None:
        self.state = _WAIT_EVENT
        self.first_update_id = None
        self.book_id = None

    def _restart(self, first: int) -> None:
        self.state = _BUFFERING
        self.first_update_id = first
        self.book_id = None

    def event(self, first: int, final: int, prev_final: int | None = None) -> DepthAction:
        usdm = self.venue == USDM
        if usdm and prev_final is None:
            raise LocalProtocolError("binance-usdm depth events need pu")
        if final < first:
            raise RemoteProtocolError(f"depth event with u {final} < U {first}")
        if self.state == _WAIT_EVENT:
            self._restart(first)
            return NeedSnapshot()
        if self.state == _BUFFERING:
            return Buffer()
        book = self.book_id
        assert book is not None
        if self.state == _FIRST:
            if usdm:
                # §7.4-5: drop u < lastUpdateId; the first applied event has U <= id <= u.
                if final < book:
                    return Discard()
                if first > book:
                    self._restart(first)
                    return Gap(book, first)
            else:
                # §8.5/8.7: drop u <= lastUpdateId; U == lastUpdateId + 1 continues the book.
                if final <= book:
                    return Discard()
                if first > book + 1:
                    self._restart(first)
                    return Gap(book + 1, first)
            self.state = _LIVE
            self.book_id = final
            return Apply()
        if usdm:
            assert prev_final is not None
            if prev_final != book:
                self._restart(first)
                return Gap(book, prev_final)
        else:
            if final < book:
                return Discard()
            if first > book + 1:
                self._restart(first)
                return Gap(book + 1, first)
        self.book_id = final
        return Apply()

    def snapshot(self, last_update_id: int) -> DepthAction:
        first = self.first_update_id
        if self.state == _BUFFERING and first is not None and last_update_id < first:
            # Spot §8.4; on USDⓈ-M no buffered event could satisfy U <= lastUpdateId either.
            return SnapshotTooOld(last_update_id, first)
        self.state = _FIRST
        self.book_id = last_update_id
        return UseSnapshot()


# --------------------------------------------------------------------------------------------
# Payload specs
# --------------------------------------------------------------------------------------------


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


def _e(event: str) -> Key:
    return Key("e", Const(event))


def _opt(json: str, node: Node) -> Key:
    return Key(json, node, optional=True)


_E = Key("E", Time("event_time"))
_S = Key("s", Str("sym"))
_T_TRADE = Key("T", Time("trade_time"))
_T_TX = Key("T", Time("transaction_time"))
_M_MAKER = Key("m", Bool("buyer_is_maker"))
_PS = _opt("ps", Str("pair"))  # [connector] CM-UM fields; position of ps as on COIN-M
_ST = _opt("st", Int("symbol_type"))  # position unknown: last
LAYOUT: Final = "layout"
"""int8 column of :class:`Reordered` objects: which key order a payload used (as Bybit's)."""


def _payload(root: Node, *, event_time: str | None = "event_time", sym: bool = True) -> Payload:
    return Payload(root, event_time=event_time, event_time_unit="ms", symbol="sym" if sym else None)


@dataclass(frozen=True)
class ArrayPayload(Payload):
    """An all-market array: its event time is the latest ``event_time`` of its items."""

    def event_ns(self, row: Mapping[str, Any]) -> int | None:
        assert isinstance(self.root, ObjList)
        times = [item.get("event_time") for item in row.get(self.root.name) or ()]
        known = [t for t in times if t is not None]
        return max(known) * 1_000_000 if known else None


def _array(column: str, item: Obj) -> Payload:
    return ArrayPayload(ObjList(column, item), event_time_unit="ms")


def _kline(*, symbol: bool, ids: str) -> Obj:
    keys = [
        Key("t", Time("open_time")),
        Key("T", Time("close_time")),
        *([Key("s", Str("kline_sym"))] if symbol else []),
        Key("i", Str("interval")),
        Key("f", Int(f"first_{ids}_id")),
        Key("L", Int(f"last_{ids}_id")),
        Key("o", Dec("open")),
        Key("c", Dec("close")),
        Key("h", Dec("high")),
        Key("l", Dec("low")),
        Key("v", Dec("volume")),
        Key("n", Int("trade_count")),
        Key("x", Bool("is_closed")),
        Key("q", Dec("quote_volume")),
        Key("V", Dec("taker_buy_volume")),
        Key("Q", Dec("taker_buy_quote_volume")),
        Key("B", Dec("ignore")),
    ]
    return Obj(*keys)


_LEVELS = (Key("b", Levels("bids")), Key("a", Levels("asks")))
_BOOK_SNAPSHOT = Obj(
    Key("lastUpdateId", Int("last_update_id")),
    Key("bids", Levels("bids")),
    Key("asks", Levels("asks")),
)


def _mini_ticker(usdm: bool) -> Obj:
    return Obj(
        _e("24hrMiniTicker"),
        _E,
        _S,
        *([_PS] if usdm else []),
        Key("c", Dec("last_price")),
        Key("o", Dec("open")),
        Key("h", Dec("high")),
        Key("l", Dec("low")),
        Key("v", Dec("volume")),
        Key("q", Dec("quote_volume")),
        *([_ST] if usdm else []),
    )


def _ticker(usdm: bool) -> Obj:
    spot_only = not usdm
    return Obj(
        _e("24hrTicker"),
        _E,
        _S,
        *([_PS] if usdm else []),
        Key("p", Dec("price_change")),
        Key("P", Dec("price_change_pct")),
        Key("w", Dec("weighted_avg_price")),
        *([Key("x", Dec("prev_close_price"))] if spot_only else []),
        Key("c", Dec("last_price")),
        Key("Q", Dec("last_qty")),
        *(
            [
                Key("b", Dec("bid_price")),
                Key("B", Dec("bid_qty")),
                Key("a", Dec("ask_price")),
                Key("A", Dec("ask_qty")),
            ]
            if spot_only
            else []
        ),
        Key("o", Dec("open")),
        Key("h", Dec("high")),
        Key("l", Dec("low")),
        Key("v", Dec("volume")),
        Key("q", Dec("quote_volume")),
        Key("O", Time("open_time")),
        Key("C", Time("close_time")),
        Key("F", Int("first_trade_id")),
        Key("L", Int("last_trade_id")),
        Key("n", Int("trade_count")),
        *([_ST] if usdm else []),
    )


_TICKER_WINDOW = Obj(
    Key("e", Str("event_type")),  # "1hTicker" / "4hTicker" / "1dTicker"
    _E,
    _S,
    Key("p", Dec("price_change")),
    Key("P", Dec("price_change_pct")),
    Key("o", Dec("open")),
    Key("h", Dec("high")),
    Key("l", Dec("low")),
    Key("c", Dec("last_price")),
    Key("w", Dec("weighted_avg_price")),
    Key("v", Dec("volume")),
    Key("q", Dec("quote_volume")),
    Key("O", Time("open_time")),
    Key("C", Time("close_time")),
    Key("F", Int("first_trade_id")),
    Key("L", Int("last_trade_id")),
    Key("n", Int("trade_count")),
)

_SPOT_SPECS: Final[dict[str, Payload]] = {
    "trade": _payload(
        Obj(
            _e("trade"),
            _E,
            _S,
            Key("t", Int("trade_id")),
            Key("p", Dec("price")),
            Key("q", Dec("qty")),
            _opt("b", Int("buyer_order_id")),  # removed 2024-06-18
            _opt("a", Int("seller_order_id")),
            _T_TRADE,
            _M_MAKER,
            Key("M", Bool("best_match")),  # documented as "ignore"
        )
    ),
    "aggTrade": _payload(
        Obj(
            _e("aggTrade"),
            _E,
            _S,
            Key("a", Int("agg_trade_id")),
            Key("p", Dec("price")),
            Key("q", Dec("qty")),
            Key("f", Int("first_trade_id")),
            Key("l", Int("last_trade_id")),
            _T_TRADE,
            _M_MAKER,
            Key("M", Bool("best_match")),
        )
    ),
    "kline": _payload(Obj(_e("kline"), _E, _S, Key("k", _kline(symbol=True, ids="trade")))),
    "miniTicker": _payload(_mini_ticker(False)),
    "miniTicker_arr": _array("tickers", _mini_ticker(False)),
    "ticker": _payload(_ticker(False)),
    "ticker_arr": _array("tickers", _ticker(False)),
    "ticker_window": _payload(_TICKER_WINDOW),
    "ticker_window_arr": _array("tickers", _TICKER_WINDOW),
    "bookTicker": _payload(
        Obj(
            Key("u", Int("update_id")),
            _S,
            Key("b", Dec("bid_price")),
            Key("B", Dec("bid_qty")),
            Key("a", Dec("ask_price")),
            Key("A", Dec("ask_qty")),
        ),
        event_time=None,
    ),
    "avgPrice": _payload(
        Obj(
            _e("avgPrice"),
            _E,
            _S,
            Key("i", Str("interval")),
            Key("w", Dec("avg_price")),
            Key("T", Time("last_trade_time")),
        )
    ),
    "depthPartial": _payload(_BOOK_SNAPSHOT, event_time=None, sym=False),
    "depth": _payload(
        Obj(
            _e("depthUpdate"),
            _E,
            _S,
            Key("U", Int("first_update_id")),
            Key("u", Int("final_update_id")),
            *_LEVELS,
        )
    ),
    "referencePrice": _payload(
        Obj(
            _e("referencePrice"),
            _S,
            Key("r", Dec("reference_price")),  # may be null
            Key("t", Time("engine_time")),
        ),
        event_time="engine_time",
    ),
    "blockTrade": _payload(
        Obj(
            _e("blockTrade"),
            _E,
            _S,
            Key("t", Int("trade_id")),
            Key("p", Dec("price")),
            Key("q", Dec("qty")),
            _T_TRADE,
            _M_MAKER,
        )
    ),
    "depth_snapshot": _payload(_BOOK_SNAPSHOT, event_time=None, sym=False),
    "book_checkpoint": _payload(_BOOK_SNAPSHOT, event_time=None, sym=False),
}


def _usdm_depth() -> Obj:
    return Obj(
        _e("depthUpdate"),
        _E,
        _T_TX,
        _S,
        _PS,
        Key("U", Int("first_update_id")),
        Key("u", Int("final_update_id")),
        Key("pu", Int("prev_final_update_id")),
        *_LEVELS,
        _ST,
    )


# Documented order first; the captured 2019-2024 wire order as the alternative (layout 1).
_USDM_MARK_PRICE = Reordered(
    _e("markPriceUpdate"),
    _E,
    _S,
    Key("p", Dec("mark_price")),
    _opt("ap", Dec("mark_price_avg")),  # 2026-03
    _opt("i", Dec("index_price")),  # 2020
    _opt("P", Dec("est_settle_price")),  # 2021
    Key("r", Dec("funding_rate")),
    Key("T", Time("next_funding_time")),
    _ST,
    column=LAYOUT,
    alternatives=[("e", "E", "s", "p", "ap", "P", "i", "r", "T", "st")],
)
_USDM_BOOK_TICKER = Reordered(
    _e("bookTicker"),
    Key("u", Int("update_id")),
    _E,
    _T_TX,
    _S,
    _PS,
    Key("b", Dec("bid_price")),
    Key("B", Dec("bid_qty")),
    Key("a", Dec("ask_price")),
    Key("A", Dec("ask_qty")),
    _ST,
    column=LAYOUT,
    alternatives=[("e", "u", "s", "ps", "b", "B", "a", "A", "T", "E", "st")],
)
_USDM_ASSET_INDEX = Obj(
    _e("assetIndexUpdate"),
    _E,
    _S,
    Key("i", Dec("index_price")),
    Key("b", Dec("bid_buffer")),
    Key("a", Dec("ask_buffer")),
    Key("B", Dec("bid_rate")),
    Key("A", Dec("ask_rate")),
    Key("q", Dec("auto_exchange_bid_buffer")),
    Key("g", Dec("auto_exchange_ask_buffer")),
    Key("Q", Dec("auto_exchange_bid_rate")),
    Key("G", Dec("auto_exchange_ask_rate")),
)

_USDM_SPECS: Final[dict[str, Payload]] = {
    "aggTrade": _payload(
        Reordered(
            _e("aggTrade"),
            _E,
            _S,
            _opt("a", Int("agg_trade_id")),  # absent in 2019
            Key("p", Dec("price")),
            Key("q", Dec("qty")),
            _opt("nq", Dec("normal_qty")),  # 2025-12
            Key("f", Int("first_trade_id")),
            Key("l", Int("last_trade_id")),
            _T_TRADE,
            _M_MAKER,
            _ST,
            column=LAYOUT,
            alternatives=[("e", "E", "a", "s", "p", "q", "nq", "f", "l", "T", "m", "st")],
        )
    ),
    # Undocumented; fields as captured 2020-2024.
    "trade": _payload(
        Obj(
            _e("trade"),
            _E,
            _T_TRADE,
            _S,
            Key("t", Int("trade_id")),
            Key("p", Dec("price")),
            Key("q", Dec("qty")),
            _opt("X", Str("trade_type")),  # MARKET, INSURANCE_FUND, ...
            _M_MAKER,
        )
    ),
    "markPrice": _payload(_USDM_MARK_PRICE),
    "markPrice_arr": _array("mark_prices", _USDM_MARK_PRICE),
    "kline": _payload(Obj(_e("kline"), _E, _S, Key("k", _kline(symbol=True, ids="trade")))),
    "continuousKline": _payload(
        Obj(
            _e("continuous_kline"),
            _E,
            Key("ps", Str("pair")),
            Key("ct", Str("contract_type")),
            Key("k", _kline(symbol=False, ids="update")),
        ),
        sym=False,
    ),
    "miniTicker": _payload(_mini_ticker(True)),
    "miniTicker_arr": _array("tickers", _mini_ticker(True)),
    "ticker": _payload(_ticker(True)),
    "ticker_arr": _array("tickers", _ticker(True)),
    "bookTicker": _payload(_USDM_BOOK_TICKER),
    "forceOrder": _payload(
        Obj(
            _e("forceOrder"),
            _E,
            Key(
                "o",
                Obj(
                    _S,
                    Key("S", Str("side")),
                    Key("o", Str("order_type")),
                    Key("f", Str("time_in_force")),
                    Key("q", Dec("orig_qty")),
                    Key("p", Dec("price")),
                    Key("ap", Dec("avg_price")),
                    Key("X", Str("order_status")),
                    Key("l", Dec("last_filled_qty")),
                    Key("z", Dec("filled_qty")),
                    _T_TRADE,
                ),
            ),
            _PS,  # [connector] !forceOrder@arr only; position unknown
            _ST,
        )
    ),
    "depthPartial": _payload(_usdm_depth()),
    "depth": _payload(_usdm_depth()),
    "rpiDepth": _payload(_usdm_depth()),
    "compositeIndex": _payload(
        Obj(
            _e("compositeIndex"),
            _E,
            _S,
            Key("p", Dec("index_price")),
            Key("C", Str("base_asset_category")),
            Key(
                "c",
                ObjList(
                    "components",
                    Obj(
                        Key("b", Str("base_asset")),
                        Key("q", Str("quote_asset")),
                        Key("w", Dec("weight_qty")),
                        Key("W", Dec("weight_pct")),
                        Key("i", Dec("index_price")),
                    ),
                ),
            ),
        )
    ),
    "contractInfo": _payload(
        Obj(
            _e("contractInfo"),
            _E,
            _S,
            _opt("ps", Str("pair")),  # dropped after the CM migration
            Key("ct", Str("contract_type")),
            Key("dt", Time("delivery_time")),
            Key("ot", Time("onboard_time")),
            Key("cs", Str("contract_status")),
            # Brackets mix integer and fractional numbers and change rarely: keep them as text.
            _opt("bks", Json("brackets")),
            _ST,
        )
    ),
    "assetIndex": _payload(_USDM_ASSET_INDEX),
    "assetIndex_arr": _array("asset_indexes", _USDM_ASSET_INDEX),
    "tradingSession": _payload(
        Obj(
            Key("e", Str("event_type")),  # EquityUpdate, CommodityUpdate, ...
            _E,
            Key("t", Time("session_start")),
            Key("T", Time("session_end")),
            Key("S", Str("session_type")),
        ),
        sym=False,
    ),
    "depth_snapshot": _payload(
        Obj(
            Key("lastUpdateId", Int("last_update_id")),
            _E,
            _T_TX,
            Key("bids", Levels("bids")),
            Key("asks", Levels("asks")),
        ),
        sym=False,
    ),
    "book_checkpoint": _payload(_BOOK_SNAPSHOT, event_time=None, sym=False),
}

SPECS: Final[dict[str, dict[str, Payload]]] = {SPOT: _SPOT_SPECS, USDM: _USDM_SPECS}
"""Every channel's payload spec, per venue."""

_FORBIDDEN_COLUMNS: Final = frozenset({"venue", "channel", "symbol", "date", "hour"})


def _register_all() -> None:
    for venue, specs in SPECS.items():
        register_common(venue)
        for channel, payload in specs.items():
            names = [f.name for f in payload.schema_fields()]
            bad = _FORBIDDEN_COLUMNS.intersection(n.lower() for n in names)
            if bad or len({n.lower() for n in names}) != len(names):
                raise ValueError(f"{venue}/{channel}: bad column names {sorted(bad) or names}")
            register(JsonChannel(venue, channel, payload, envelope=COMBINED))


_register_all()

__all__ = [
    "COMBINED",
    "ENVELOPE_COMBINED",
    "ENVELOPE_NONE",
    "ENVELOPE_REFORMATTED",
    "LAYOUT",
    "MAX_STREAMS_PER_CONNECTION",
    "SPECS",
    "SPOT",
    "SPOT_REST_BASE",
    "SPOT_REST_DATA_BASE",
    "SPOT_WEIGHT_LIMIT_1M",
    "SPOT_WS_BASE",
    "SPOT_WS_DATA_BASE",
    "USDM",
    "USDM_REST_BASE",
    "USDM_WEIGHT_LIMIT_1M",
    "USDM_WS_BASE",
    "USED_WEIGHT_HEADER",
    "VENUES",
    "Apply",
    "ArrayPayload",
    "Buffer",
    "CombinedEnvelope",
    "CommandError",
    "CommandResult",
    "ControlReply",
    "DepthAction",
    "DepthSync",
    "Discard",
    "Gap",
    "NeedSnapshot",
    "Reordered",
    "RequestId",
    "Route",
    "ServerShutdown",
    "SnapshotTooOld",
    "StreamInfo",
    "SymbolInfo",
    "UseSnapshot",
    "classify",
    "depth_path",
    "depth_weight",
    "exchange_info_path",
    "list_subscriptions",
    "parse_control",
    "parse_exchange_info",
    "parse_stream_name",
    "route_of",
    "stream_of",
    "subscribe",
    "unsubscribe",
    "used_weight",
    "ws_url",
]
