"""Helpers for the simulator conformance tests (``tests/test_sim_*.py``); holds no tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import orjson
import trio
from trio_websocket import WebSocketConnection
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from replay.sim import SimConfig, Simulator, SimUrls, VenueConfig


def config(venue: str, *, rate: float = 300.0, tick: float = 0.01, **vcfg: Any) -> SimConfig:
    """A one-venue configuration with VenueConfig overrides."""
    extra = {k: vcfg.pop(k) for k in ("ledger_path", "faults", "seed", "clock") if k in vcfg}
    return SimConfig(
        venues=(venue,), rate=rate, tick=tick, venue_config={venue: VenueConfig(**vcfg)}, **extra
    )


@asynccontextmanager
async def running(cfg: SimConfig) -> AsyncIterator[tuple[Simulator, SimUrls]]:
    sim = Simulator(cfg)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(sim.run)
        try:
            yield sim, urls
        finally:
            nursery.cancel_scope.cancel()


async def recv_json(ws: WebSocketConnection, timeout: float = 5.0) -> Any:
    with trio.fail_after(timeout):
        return orjson.loads(await ws.get_message())


async def recv_reply(ws: WebSocketConnection, timeout: float = 5.0) -> Any:
    """Skip market data until a control reply (an object with ``id``, ``result`` or ``error``)."""
    with trio.fail_after(timeout):
        while True:
            msg = orjson.loads(await ws.get_message())
            if isinstance(msg, dict) and ("id" in msg or "error" in msg or "result" in msg):
                return msg


async def request(ws: WebSocketConnection, obj: Any) -> Any:
    await ws.send_message(obj if isinstance(obj, str) else orjson.dumps(obj).decode())
    return await recv_reply(ws)


async def collect(
    ws: WebSocketConnection, n: int, timeout: float = 10.0, pred: Any = None
) -> list[str | bytes]:
    out: list[str | bytes] = []
    with trio.fail_after(timeout):
        while len(out) < n:
            m = await ws.get_message()
            if pred is None or pred(m):
                out.append(m)
    return out


class RawClient:
    """A WebSocket client that does *not* answer pings on its own (wsproto over TCP)."""

    def __init__(self) -> None:
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.stream: trio.SocketStream | None = None
        self.events: list[Event] = []
        self.status: int | None = None
        self.body = b""
        self.raw_response = b""

    async def connect(self, url: str, headers: list[tuple[str, str]] | None = None) -> bool:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        self.stream = await trio.open_tcp_stream(parts.hostname, parts.port)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        req = Request(
            host=f"{parts.hostname}:{parts.port}",
            target=target or "/",
            extra_headers=[(k.encode(), v.encode()) for k, v in (headers or [])],
        )
        await self.stream.send_all(self.ws.send(req))
        while True:
            data = await self.stream.receive_some(65536)
            self.raw_response += data
            if not data:
                return False
            self.ws.receive_data(data)
            for ev in self.ws.events():
                if isinstance(ev, AcceptConnection):
                    self.status = 101
                    return True
                if isinstance(ev, RejectConnection):
                    self.status = ev.status_code
                    if not ev.has_body:
                        return False
                elif isinstance(ev, RejectData):
                    self.body += ev.data
                    if ev.body_finished:
                        return False
                else:
                    self.events.append(ev)

    async def next_event(self, timeout: float = 5.0) -> Event | None:
        """Next WebSocket event; None when the TCP connection ends."""
        assert self.stream is not None
        with trio.fail_after(timeout):
            while not self.events:
                data = await self.stream.receive_some(65536)
                if not data:
                    return None
                self.ws.receive_data(data)
                self.events.extend(self.ws.events())
        return self.events.pop(0)

    async def send(self, event: Event) -> None:
        assert self.stream is not None
        await self.stream.send_all(self.ws.send(event))

    async def send_text(self, text: str) -> None:
        await self.send(TextMessage(data=text))

    async def pong(self, payload: bytes) -> None:
        await self.send(Pong(payload=payload))

    async def ping(self, payload: bytes = b"") -> None:
        await self.send(Ping(payload=payload))

    async def until_close(self, timeout: float = 5.0) -> tuple[CloseConnection | None, float]:
        """Read until the server's close frame (or EOF); returns it and trio time it came."""
        while True:
            ev = await self.next_event(timeout)
            if ev is None or isinstance(ev, CloseConnection):
                return ev, trio.current_time()

    async def aclose(self) -> None:
        if self.stream is not None:
            await self.stream.aclose()


__all__ = [
    "BytesMessage",
    "CloseConnection",
    "Ping",
    "RawClient",
    "TextMessage",
    "collect",
    "config",
    "recv_json",
    "recv_reply",
    "request",
    "running",
]
