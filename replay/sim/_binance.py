"""Binance WebSocket protocol (spot JSON, USDⓈ-M futures, spot SBE): URLs and control messages.

References: ``binance-spot.md`` §2-§5, ``binance-usdm-futures.md`` §1-§4, ``binance-sbe.md`` §1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from replay.sim._binance_streams import FLAVORS, Parsed, parse_stream
from replay.sim._runtime import Conn
from replay.sim._types import MarketSource, VenueConfig

METHODS = "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"
# the docs say "alphanumeric, at most 36"; the official SDKs' UUIDs (with hyphens) work too
MAX_ID_CHARS = 36
_METHOD_VALUE = re.compile(r'"method"\s*:\s*"((?:[^"\\]|\\.)*)"')

DEFAULTS = {
    # venue: (ping s, pong timeout s, msg rate, max streams, conn attempts / 5 min)
    "binance-spot": (20.0, 60.0, 5, 1024, 300),
    "binance-sbe": (20.0, 60.0, 5, 1024, 300),
    "binance-usdm": (180.0, 600.0, 10, 1024, 0),
    # COIN-M: not in the reference; USDⓈ-M's limits (same futures stream servers)
    "binance-coinm": (180.0, 600.0, 10, 1024, 0),
}


def _err(code: int, msg: str, req_id: Any = None, with_id: bool = True) -> bytes:
    if with_id:
        return orjson.dumps({"error": {"code": code, "msg": msg}, "id": req_id})
    return orjson.dumps({"error": {"code": code, "msg": msg}})


class BinanceHandler:
    """Handler for ``binance-spot``, ``binance-usdm``, ``binance-coinm`` and ``binance-sbe``.

    COIN-M speaks the USDⓈ-M protocol (routes, ids, invalid JSON closes, limits)."""

    server_pings = True

    def __init__(self, name: str, cfg: VenueConfig, source: MarketSource) -> None:
        self.name = name
        self.cfg = cfg
        self.flavor = FLAVORS[name]
        self.futures = self.flavor in ("usdm", "coinm")
        # COIN-M without the route split: every stream delivers on every path
        self.routed = self.flavor == "usdm" or (self.flavor == "coinm" and cfg.coinm_route_split)
        ping, pong, rate, streams, attempts = DEFAULTS[name]
        self.ping_interval = cfg.ping_interval if cfg.ping_interval is not None else ping
        self.pong_timeout = cfg.pong_timeout if cfg.pong_timeout is not None else pong
        self.msg_rate = cfg.msg_rate_limit if cfg.msg_rate_limit is not None else rate
        self.max_streams = cfg.max_streams if cfg.max_streams is not None else streams
        self.conn_attempts = (
            cfg.conn_attempt_limit if cfg.conn_attempt_limit is not None else attempts
        )
        self.max_age: float | None = (
            cfg.max_connection_age if cfg.max_connection_age is not None else 86_400.0
        )
        self._symbols: Collection[str] = {s.symbol for s in source.instruments()}

    # -- streams -------------------------------------------------------------------------------

    def parse(self, name: str) -> Parsed | None:
        return parse_stream(self.flavor, name, self._symbols)

    def delivers(self, conn: Conn, parsed: Parsed) -> bool:
        """USDⓈ-M: a stream on the wrong route (or a /market stream on a legacy URL) is silent."""
        if not self.routed:
            return True
        route = parsed.usdm_route
        if parsed.kind == "trade":
            route = self.cfg.usdm_trade_route
        if conn.route is None:
            return route == "public"
        return conn.route == route

    # -- handshake -----------------------------------------------------------------------------

    def handshake(self, conn: Conn, target: str, headers: dict[str, str]) -> tuple[int, str] | None:
        cfg = self.cfg
        if self.flavor == "sbe":
            key = headers.get("x-mbx-apikey")
            if key is None:
                return 400, "No X-MBX-APIKEY header"
            if cfg.sbe_api_keys is not None and key not in cfg.sbe_api_keys:
                return cfg.sbe_bad_key
        parts = urlsplit(target)
        path = unquote(parts.path)
        query = parts.query
        if self.futures:
            for route in ("public", "market", "private"):
                prefix = f"/{route}"
                if path == prefix or path.startswith(prefix + "/"):
                    conn.route = route
                    path = path[len(prefix) :]
                    break
            if path == "/ws" and query:
                return 400, "Invalid request: stream name in query"  # `/ws?<stream>` (U text)
        params = dict(parse_qsl(query, keep_blank_values=True))
        if self.flavor == "spot" and "timeUnit" in params:
            unit = params["timeUnit"]
            if unit in ("MICROSECOND", "microsecond"):
                conn.micro = True
            elif unit not in ("MILLISECOND", "millisecond"):
                return 400, "Invalid timeUnit"
        streams: list[str]
        if path == "/ws":
            streams = []
        elif path.startswith("/ws/"):
            streams = [s for s in path[4:].split("/") if s]
        elif path == "/stream":
            conn.combined = True
            raw = params.get("streams", "")
            streams = [s for s in raw.split("/") if s]
        else:
            return 404, "Not Found"
        if len(streams) > self.max_streams:
            return 400, "Too many streams"
        for s in streams:
            p = self.parse(s)
            # an unknown name in the URL does not fail the handshake: the real server opens the
            # connection and sends nothing for it (ccxt opens `/ws/<n>` and subscribes later)
            if p is not None:
                conn.subscribe(s, self.delivers(conn, p))
        return None

    # -- control messages ----------------------------------------------------------------------

    def on_binary(self, conn: Conn, data: bytes) -> None:
        return None  # (U) binary frames from the client: ignored

    def on_op_ping_muted(self) -> None:
        return None

    def on_text(self, conn: Conn, text: str) -> None:
        usdm = self.futures
        try:
            req = json.loads(text)
        except json.JSONDecodeError as exc:
            conn.send_control(
                _err(
                    3,
                    f"Invalid JSON: expected value at line {exc.lineno} column {exc.colno}",
                    with_id=False,
                )
            )
            if usdm:
                code, reason = self.cfg.invalid_json_close
                conn.close(code, reason, "invalid json")
            return
        if not isinstance(req, dict):
            conn.send_control(
                _err(2, "Invalid request: expected a JSON object at line 1 column 1", None)
            )
            return
        line_col = f"at line 1 column {len(text)}"
        if "method" not in req:
            conn.send_control(_err(2, f"Invalid request: missing field `method` {line_col}", None))
            return
        method = req["method"]
        known = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
        if method not in known:
            m = _METHOD_VALUE.search(text)
            col = m.end() if m else len(text)
            shown = f"`{method}`" if isinstance(method, str) else str(method)
            conn.send_control(
                _err(
                    2,
                    f"Invalid request: unknown variant {shown}, expected one of {METHODS} "
                    f"at line 1 column {col}",
                    None,
                )
            )
            return
        req_id = req.get("id", _MISSING)
        if not self._valid_id(req_id):
            conn.send_control(
                _err(2, "Invalid request: request ID must be an unsigned integer", None)
            )
            return
        params = req.get("params", [])
        if params is None:
            params = []
        if not isinstance(params, list):
            conn.send_control(_err(2, "Invalid request: params must be an array", req_id))
            return
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            self._subscribe(conn, method == "SUBSCRIBE", params, req_id)
        elif method == "LIST_SUBSCRIPTIONS":
            if params:
                conn.send_control(_err(2, "Invalid request: too many parameters", req_id))
                return
            conn.send_control(orjson.dumps({"result": list(conn.subs), "id": req_id}))
        elif method == "SET_PROPERTY":
            if len(params) > 2:
                conn.send_control(_err(2, "Invalid request: too many parameters", req_id))
            elif not params or not isinstance(params[0], str):
                conn.send_control(
                    _err(2, "Invalid request: property name must be a string", req_id)
                )
            elif params[0] != "combined":
                conn.send_control(_err(0, "Unknown property", req_id))
            elif len(params) < 2 or not isinstance(params[1], bool):
                conn.send_control(_err(1, "Invalid value type: expected Boolean", req_id))
            else:
                conn.combined = params[1]
                conn.send_control(orjson.dumps({"result": None, "id": req_id}))
        elif len(params) > 1:  # GET_PROPERTY from here on
            conn.send_control(_err(2, "Invalid request: too many parameters", req_id))
        elif not params or not isinstance(params[0], str):
            conn.send_control(_err(2, "Invalid request: property name must be a string", req_id))
        elif params[0] != "combined":
            conn.send_control(_err(0, "Unknown property", req_id))
        else:
            conn.send_control(orjson.dumps({"result": conn.combined, "id": req_id}))

    def _valid_id(self, req_id: Any) -> bool:
        """Spot: int64, a string of at most 36 chars, or null. USDⓈ-M: an unsigned integer, and
        (unless ``usdm_strict_ids``) a string of at most 36 chars."""
        if req_id is _MISSING or isinstance(req_id, bool):
            return False
        if isinstance(req_id, str):
            ok = not self.futures or not self.cfg.usdm_strict_ids
            return ok and 0 < len(req_id) <= MAX_ID_CHARS
        if self.futures:
            return isinstance(req_id, int) and 0 <= req_id < 2**64
        if req_id is None:
            return True
        return isinstance(req_id, int) and -(2**63) <= req_id < 2**63

    def _subscribe(self, conn: Conn, sub: bool, params: list[Any], req_id: Any) -> None:
        names: list[str] = []
        for p in params:
            if not isinstance(p, str):
                conn.send_control(_err(2, "Invalid request: invalid stream", req_id))
                return
            names.append(p)
        if sub:
            parsed: list[tuple[str, Parsed]] = []
            for n in names:
                pr = self.parse(n)
                if pr is None:
                    conn.send_control(_err(2, "Invalid request: invalid stream", req_id))
                    return
                parsed.append((n, pr))
            new = {n for n, _ in parsed if n not in conn.subs}
            if len(conn.subs) + len(new) > self.max_streams:
                code, msg = self.cfg.too_many_subscriptions
                conn.send_control(_err(code, msg, req_id))
                return
            for n, pr in parsed:
                conn.subscribe(n, self.delivers(conn, pr))
        else:
            for n in names:
                conn.unsubscribe(n)
        conn.send_control(orjson.dumps({"result": None, "id": req_id}))

    def shutdown_message(self, conn: Conn, now_ns: int) -> bytes | None:
        t = now_ns // 1000 if conn.micro else now_ns // 1_000_000
        payload = f'{{"e":"serverShutdown","E":{t}}}'.encode()
        if conn.combined and self.flavor != "sbe":
            return b'{"stream":"!serverShutdown","data":' + payload + b"}"
        return payload


class _Missing:
    pass


_MISSING: Any = _Missing()
