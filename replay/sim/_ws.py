"""Server side of one WebSocket connection over a Trio stream (wsproto for parsing).

Outgoing data frames are built here directly (server frames are unmasked and no extension is
negotiated), so a payload costs one header + one copy. Everything written goes through one
buffer drained by :meth:`WsConn.writer`, which can hold frames (delay fault).
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from http import HTTPStatus

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

OP_TEXT = 0x1
OP_BINARY = 0x2


def frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + payload


def http_response(status: int, body: bytes, content_type: str = "text/plain") -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class Closed(Exception):
    """The peer went away."""


class WsConn:
    """Transport state of one connection; protocol logic lives in the venue handlers."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.SERVER)
        self.out = bytearray()
        self.wake = trio.Event()
        self.hold_until = 0.0
        self.close_sent = False
        self.peer_closed = trio.Event()
        self.done = trio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.bad_request = False
        self.drop_after_flush = False
        self._text_parts: list[str] = []
        self._bin_parts: list[bytes] = []

    async def read_request(self) -> Request | None:
        while True:
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return None
            if not data:
                return None
            try:
                self.ws.receive_data(bytes(data))
                for ev in self.ws.events():
                    if isinstance(ev, Request):
                        return ev
            except RemoteProtocolError:
                self.bad_request = True
                return None

    async def reject(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.stream.send_all(http_response(status, body, content_type))

    async def accept(self) -> None:
        await self.stream.send_all(self.ws.send(AcceptConnection()))

    # -- output ---------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.close_sent:
            return
        self.out += data
        self.wake.set()

    def write_and_drop(self, data: bytes) -> None:
        """Write ``data`` (e.g. half a frame), then close the TCP connection without a close."""
        if self.close_sent:
            return
        self.out += data
        self.close_sent = True
        self.drop_after_flush = True
        self.wake.set()

    def send_text(self, payload: bytes) -> None:
        self.write(frame(OP_TEXT, payload))

    def send_binary(self, payload: bytes) -> None:
        self.write(frame(OP_BINARY, payload))

    def send_ping(self, payload: bytes) -> None:
        if not self.close_sent:
            self.write(self.ws.send(Ping(payload=payload)))

    def send_close(self, code: int, reason: str) -> None:
        if self.close_sent:
            return
        try:
            data = self.ws.send(CloseConnection(code=code, reason=reason))
        except LocalProtocolError:
            data = b""
        self.out += data
        self.close_sent = True
        self.close_code, self.close_reason = code, reason
        self.wake.set()

    async def writer(self) -> None:
        """Drain the buffer; after a close frame, wait briefly for the peer's close, then stop."""
        while True:
            await self.wake.wait()
            self.wake = trio.Event()
            if self.hold_until > trio.current_time():
                await trio.sleep_until(self.hold_until)
            while self.out:
                data = bytes(self.out)
                self.out.clear()
                try:
                    await self.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self.done.set()
                    return
            if self.drop_after_flush:
                self.done.set()
                return
            if self.close_sent:
                with trio.move_on_after(2.0):
                    await self.peer_closed.wait()
                self.done.set()
                return

    # -- input ----------------------------------------------------------------------------------

    async def reader(
        self,
        on_text: Callable[[str], None],
        on_binary: Callable[[bytes], None],
        on_ping: Callable[[Ping], None],
        on_pong: Callable[[bytes], None],
    ) -> None:
        """Dispatch incoming messages until the peer closes; answers the peer's close."""
        while True:
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self.peer_closed.set()
                self.done.set()
                return
            try:
                self.ws.receive_data(bytes(data))
                events: list[Event] = list(self.ws.events())
            except RemoteProtocolError:
                self.send_close(1002, "Protocol error")
                self.peer_closed.set()
                return
            for ev in events:
                if isinstance(ev, TextMessage):
                    self._text_parts.append(ev.data)
                    if ev.message_finished:
                        text = "".join(self._text_parts)
                        self._text_parts.clear()
                        on_text(text)
                elif isinstance(ev, BytesMessage):
                    self._bin_parts.append(bytes(ev.data))
                    if ev.message_finished:
                        raw = b"".join(self._bin_parts)
                        self._bin_parts.clear()
                        on_binary(raw)
                elif isinstance(ev, Ping):
                    on_ping(ev)
                elif isinstance(ev, Pong):
                    on_pong(bytes(ev.payload))
                elif isinstance(ev, CloseConnection):
                    if not self.close_sent:
                        try:
                            reply = self.ws.send(ev.response())
                        except LocalProtocolError:
                            reply = b""
                        self.out += reply
                        self.close_sent = True
                        self.close_code, self.close_reason = ev.code, "client"
                        self.wake.set()
                    self.peer_closed.set()
                    return
                if self.close_sent:
                    break

    def pong(self, ping: Ping) -> None:
        if not self.close_sent:
            self.write(self.ws.send(ping.response()))
