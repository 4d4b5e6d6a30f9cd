"""The REST server (GET only, h11), one port per venue, and what every venue's endpoints share.

A venue's endpoints are a :data:`RestApp` (``_binance_rest``, ``_bybit_rest``) chosen from the
venue table; it gets the :class:`VenueRuntime` of its venue and returns a :data:`Response`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import h11
import orjson
import trio

from replay.sim._runtime import VenueRuntime
from replay.sim._types import DepthSnapshot

Response = tuple[int, list[tuple[str, str]], bytes]
RestApp = Callable[[VenueRuntime, str, dict[str, str]], Response]
"""A venue's GET endpoints: (venue, path, query parameters) -> response."""


async def serve_rest(rt: VenueRuntime, app: RestApp, stream: trio.abc.Stream) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = await _next_event(conn, stream)
            if not isinstance(event, h11.Request):
                return
            while not isinstance(await _next_event(conn, stream), h11.EndOfMessage | None):
                pass
            status, headers, body = handle(rt, app, event.method.decode(), event.target.decode())
            hdrs = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            hdrs += headers
            await stream.send_all(conn.send(h11.Response(status_code=status, headers=hdrs)) or b"")
            await stream.send_all(conn.send(h11.Data(data=body)) or b"")
            await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
        return
    finally:
        with trio.CancelScope(shield=True), suppress(trio.BrokenResourceError):
            await stream.aclose()


async def _next_event(conn: h11.Connection, stream: trio.abc.Stream) -> Any:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            conn.receive_data(bytes(data))
            if not data and conn.their_state is not h11.DONE:
                return None
            continue
        return event


def json_response(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return status, headers or [], orjson.dumps(obj)


def handle(rt: VenueRuntime, app: RestApp, method: str, target: str) -> Response:
    rt.counters.rest_requests += 1
    if method not in ("GET", "HEAD"):
        return json_response(405, {"code": -1000, "msg": "Method not allowed"})
    parts = urlsplit(target)
    return app(rt, parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)))


def snapshot(rt: VenueRuntime, symbol: str, limit: int) -> DepthSnapshot | None:
    """The live snapshot, or a remembered older one while a stale_snapshot fault is pending."""
    if rt.stale:
        age = rt.stale.pop(0)
        target = trio.current_time() - age
        chosen: DepthSnapshot | None = None
        for t, snaps in rt.snap_history:
            snap = snaps.get(symbol)
            if isinstance(snap, DepthSnapshot) and (chosen is None or t <= target):
                chosen = snap
        if chosen is not None:
            return DepthSnapshot(
                chosen.last_update_id, chosen.bids[:limit], chosen.asks[:limit],
                chosen.time_ms, chosen.seq, chosen.cts_ms,
            )  # fmt: skip
    return rt.source.depth_snapshot(symbol, limit, rt.clock())


def dec(value: int, decimals: int) -> str:
    if decimals <= 0:
        return str(value)
    s = str(value).rjust(decimals + 1, "0")
    return f"{s[:-decimals]}.{s[-decimals:]}"
