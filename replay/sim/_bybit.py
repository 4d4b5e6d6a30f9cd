"""Bybit V5 public WebSocket protocol: ``op`` subscribe/unsubscribe/ping per category.

Reference: ``bybit-v5.md`` §1-§3 (acks, pongs, args limits, observed failure texts).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
import trio

from replay.sim._runtime import Conn
from replay.sim._types import MarketSource, VenueConfig


class BybitHandler:
    """Handler for ``bybit-spot``, ``bybit-linear``, ``bybit-inverse``, ``bybit-option``."""

    server_pings = False

    def __init__(
        self, name: str, cfg: VenueConfig, source: MarketSource, clock: Callable[[], int]
    ) -> None:
        self.cfg = cfg
        self.source = source
        self.clock = clock
        self.category = name.split("-", 1)[1]
        self.ping_interval = cfg.ping_interval or 0.0
        self.pong_timeout = cfg.pong_timeout or 0.0
        self.server_pings = cfg.ping_interval is not None
        self.msg_rate = cfg.msg_rate_limit or 0
        self.max_streams = cfg.max_streams or 0
        self.conn_attempts = cfg.conn_attempt_limit if cfg.conn_attempt_limit is not None else 500
        self.max_age: float | None = cfg.max_connection_age
        self._n = 0

    def handshake(self, conn: Conn, target: str, headers: dict[str, str]) -> tuple[int, str] | None:
        path = urlsplit(target).path
        if path != f"/v5/public/{self.category}":
            return 404, "Not Found"
        self._n += 1
        if self.category in ("option",):
            conn.conn_id = (
                f"{uuid.UUID(int=conn.id * 7919 + self._n).hex[:16]}-{conn.id:08x}-"
                f"{self._n:08x}-{uuid.UUID(int=conn.id).hex[:16]}-00e1c172"
            )
        else:
            conn.conn_id = str(uuid.UUID(int=(conn.id << 64) | (self._n * 2654435761)))
        return None

    def on_binary(self, conn: Conn, data: bytes) -> None:
        return None

    def on_op_ping_muted(self) -> None:
        return None

    def shutdown_message(self, conn: Conn, now_ns: int) -> bytes | None:
        return None

    def _send(self, conn: Conn, obj: dict[str, Any]) -> None:
        conn.send_control(orjson.dumps(obj))

    def on_text(self, conn: Conn, text: str) -> None:
        try:
            req = json.loads(text)
        except json.JSONDecodeError:
            req = None
        if not isinstance(req, dict):
            self._send(
                conn,
                {"success": False, "ret_msg": "error:invalid request", "conn_id": conn.conn_id,
                 "op": ""},
            )  # fmt: skip
            return
        op = req.get("op")
        req_id = req.get("req_id")
        if op == "ping":
            if conn.mute_pongs_until > trio.current_time():
                return
            self._pong(conn, req_id)
            return
        if op not in ("subscribe", "unsubscribe"):
            self._send(
                conn,
                {"success": False, "ret_msg": f"error:unknown op {op}", "conn_id": conn.conn_id,
                 "op": op if isinstance(op, str) else ""},
            )  # fmt: skip
            return
        args = req.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            self._fail(conn, op, req_id, "error:args must be an array of strings")
            return
        if op == "subscribe":
            self._subscribe(conn, req_id, args)
        else:
            for a in args:
                if a in conn.subs:
                    conn.arg_chars -= len(a)
                conn.unsubscribe(a)
            self._ok(conn, "unsubscribe", req_id, args, [])

    def _pong(self, conn: Conn, req_id: Any) -> None:
        if self.category == "option":
            ms = self.clock() // 1_000_000
            self._send(conn, {"args": [str(ms)], "op": "pong"})
        elif self.category == "spot":
            obj: dict[str, Any] = {"success": True, "ret_msg": "pong", "conn_id": conn.conn_id}
            if req_id is not None:
                obj["req_id"] = req_id
            obj["op"] = "ping"
            self._send(conn, obj)
        else:
            self._send(
                conn,
                {"success": True, "ret_msg": "pong", "conn_id": conn.conn_id,
                 "req_id": req_id if req_id is not None else "", "op": "ping"},
            )  # fmt: skip

    def _fail(
        self, conn: Conn, op: str, req_id: Any, msg: str, topics: list[str] | None = None
    ) -> None:
        if self.category == "option":
            self._send(
                conn,
                {"success": False, "ret_msg": msg, "conn_id": conn.conn_id,
                 "data": {"failTopics": topics or [], "successTopics": []},
                 "type": "COMMAND_RESP"},
            )  # fmt: skip
            return
        obj: dict[str, Any] = {"success": False, "ret_msg": msg, "conn_id": conn.conn_id}
        if req_id is not None:
            obj["req_id"] = req_id
        obj["op"] = op
        self._send(conn, obj)

    def _ok(self, conn: Conn, op: str, req_id: Any, ok: list[str], failed: list[str]) -> None:
        if self.category == "option":
            self._send(
                conn,
                {"success": not failed, "conn_id": conn.conn_id,
                 "data": {"failTopics": failed, "successTopics": ok}, "type": "COMMAND_RESP"},
            )  # fmt: skip
        elif self.category == "spot":
            obj: dict[str, Any] = {"success": True, "ret_msg": op, "conn_id": conn.conn_id}
            if req_id is not None:
                obj["req_id"] = req_id
            obj["op"] = op
            self._send(conn, obj)
        else:
            self._send(
                conn,
                {"success": True, "ret_msg": "", "conn_id": conn.conn_id,
                 "req_id": req_id if req_id is not None else "", "op": op},
            )  # fmt: skip

    def _subscribe(self, conn: Conn, req_id: Any, args: list[str]) -> None:
        cfg = self.cfg
        source: Any = self.source
        if self.category == "spot" and len(args) > 10:
            self._fail(conn, "subscribe", req_id, "args size >10")
            return
        new = [a for a in dict.fromkeys(args) if a not in conn.subs]
        valid = getattr(source, "valid_topic", None)
        bad = [a for a in new if valid is not None and not valid(a)]
        if bad and self.category != "option":
            self._fail(conn, "subscribe", req_id, f"error:handler not found,topic:{bad[0]}")
            return
        good = [a for a in new if a not in bad]
        if conn.arg_chars + sum(len(a) for a in good) > cfg.bybit_args_chars:
            self._fail(conn, "subscribe", req_id, cfg.bybit_args_chars_msg, good)
            return
        if self.category == "option" and len(conn.subs) + len(good) > cfg.bybit_option_args:
            self._fail(conn, "subscribe", req_id, cfg.bybit_option_args_msg, good)
            return
        for a in good:
            conn.subscribe(a, True)
            conn.arg_chars += len(a)
        ok_list = [a for a in args if a not in bad]
        self._ok(conn, "subscribe", req_id, ok_list, bad)
        now_ns = self.clock()
        for a in good:
            for ev in source.on_subscribe(a, now_ns):
                conn.deliver(ev)
