"""A minimal WebSocket client on wsproto + Trio, built for capture.

Why not trio-websocket's client here: the recorder needs the receive time of each frame taken
when the socket handed over the bytes that completed it, before anything is parsed, and it
wants no extra task and channel hop per message on its hot path. This client reads the socket
in the caller's task, stamps ``time.time_ns()`` right after each read, and cuts the bytes into
frames: the common data frames in :mod:`recorder.net._wsframes`, everything else (control frames,
fragmented messages, protocol errors) in wsproto. Pings are answered immediately with the
same payload.

Every transport failure is translated here, at one boundary, into :class:`ConnectionLost`,
:class:`HandshakeRejected` or :class:`ClosedByPeer`, so the connection task handles one
family of exceptions. Their text comes partly from the server (an error page, a close
reason), which may echo our request: it is redacted here, as it enters, so that no API key
reaches a log line, a session event or the status (the values of the headers passed to
:func:`connect` are treated as secrets).
"""

from __future__ import annotations

import ssl
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit

import trio
import wsproto
import wsproto.events as ev
import wsproto.utilities
from wsproto.connection import ConnectionState

from recorder.core._errors import RemoteProtocolError
from recorder.core._frame import Frame
from recorder.core._secrets import redact_secrets, remember_secret
from recorder.net._wsframes import FrameSplitter

__all__ = [
    "ClosedByPeer",
    "ConnectionLost",
    "Frame",
    "HandshakeRejected",
    "TransportError",
    "WsClient",
    "connect",
]


class TransportError(Exception):
    """Base of the connection-level failures the recorder reacts to."""

    reason: str

    def __init__(self, reason: str) -> None:
        reason = redact_secrets(reason)
        super().__init__(reason)
        self.reason = reason


class ConnectionLost(TransportError):
    """The TCP/TLS connection failed or ended without a close frame."""


class HandshakeRejected(TransportError):
    """The server answered the upgrade request with something other than 101."""

    def __init__(self, status: int, body: bytes) -> None:
        # Redacted whole before it is cut short, so no part of a secret survives the cut.
        text = redact_secrets(body.decode("utf-8", "replace"))[:200]
        super().__init__(f"handshake rejected: HTTP {status} {text}".strip())
        self.status = status
        # Byte for byte but for the secrets (which are ASCII): latin-1 maps bytes 1:1.
        self.body = redact_secrets(body.decode("latin-1")).encode("latin-1")


class ClosedByPeer(TransportError):
    """The server sent a close frame."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed by server: {code} {reason}".strip())
        self.code = code
        self.close_reason = redact_secrets(reason)


def _describe(exc: BaseException) -> str:
    """A reason an operator can act on: Trio wraps TLS and socket errors, so name the cause."""
    text = f"{type(exc).__name__}: {exc}".rstrip(": ")
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause):
        text += f" ({type(cause).__name__}: {cause})"
    return text


@contextmanager
def _translate() -> Iterator[None]:
    try:
        yield
    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError) as exc:
        raise ConnectionLost(_describe(exc)) from exc
    except wsproto.utilities.RemoteProtocolError as exc:
        raise ConnectionLost(f"protocol error from server: {exc}") from exc
    except wsproto.utilities.LocalProtocolError as exc:
        raise ConnectionLost(f"local protocol error: {exc}") from exc


class WsClient:
    """One client WebSocket connection. Use :func:`connect`; close with :meth:`aclose`."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        max_message_size: int,
        receive_buffer: int,
        on_control_sent: Callable[[], None] | None = None,
    ) -> None:
        self._stream = stream
        self._ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self._ready: deque[Frame] = deque()
        self._splitter = FrameSplitter(max_message_size)
        # Receive time of the read that completed the handshake, while the frames that came
        # with it wait for the first receive().
        self._early_ns = 0
        self._parts: list[str | bytes] = []
        self._parts_len = 0
        self._max = max_message_size
        self._bufsize = receive_buffer
        self._send_lock = trio.StrictFIFOLock()
        self._closed: ClosedByPeer | None = None
        self._on_control_sent = on_control_sent
        self.bytes_received = 0
        self.pings_answered = 0
        self.last_activity = trio.current_time()

    async def _handshake(self, host: str, target: str, headers: Sequence[tuple[str, str]]) -> None:
        # No extensions offered (permessage-deflate would set RSV1 on compressed frames): the
        # splitter takes only frames with the reserved bits clear and hands a frame with any
        # of them set to wsproto, which then fails the connection.
        req = ev.Request(
            host=host,
            target=target,
            extra_headers=[(k.encode(), v.encode()) for k, v in headers],
        )
        with _translate():
            await self._stream.send_all(self._ws.send(req))
            status: int | None = None
            body = bytearray()
            # The response up to the end of its header block. wsproto gets no byte past it
            # until it has answered: frames that arrive with the 101 go to the splitter, which
            # must see every frame from the first.
            head: bytearray | None = bytearray()
            while True:
                data = bytes(await self._stream.receive_some(self._bufsize))
                recv_ns = time.time_ns()
                if not data:
                    if status is not None:
                        raise HandshakeRejected(status, bytes(body))
                    raise ConnectionLost("connection closed during the handshake")
                rest = b""
                if head is not None:
                    start = max(0, len(head) - 3)
                    head += data
                    end = head.find(b"\r\n\r\n", start)
                    if end >= 0:
                        cut = end + 4 - (len(head) - len(data))
                        data, rest = data[:cut], data[cut:]
                        head = None
                for part in (data, rest):
                    if not part:
                        continue
                    self._ws.receive_data(part)
                    for e in self._ws.events():
                        if isinstance(e, ev.AcceptConnection):
                            if part is data:
                                self._splitter.feed(rest)
                            else:
                                # Not seen from wsproto 1.3: it took frame bytes along with
                                # the response. They are its now, and so is the stream.
                                self._splitter.to_wsproto()
                            # Frames that came with the 101 are parsed by the first receive(),
                            # so that anything wrong with them is raised there, as from any
                            # later read.
                            self._early_ns = recv_ns
                            return
                        if isinstance(e, ev.RejectConnection):
                            status = e.status_code
                            if not e.has_body:
                                raise HandshakeRejected(status, b"")
                        elif isinstance(e, ev.RejectData):
                            body += e.data
                            if e.body_finished:
                                raise HandshakeRejected(status or 0, bytes(body))

    async def receive(self) -> Frame:
        """The next complete message. Raises a :class:`TransportError` when the connection ends."""
        while not self._ready:
            if self._closed is not None:
                raise self._closed
            if self._early_ns:
                out = self._absorb(self._early_ns)
                if self._splitter.passthrough:
                    # Whatever wsproto may hold from the handshake.
                    out += self._handle_events(self._early_ns)
                self._early_ns = 0
                if out:
                    await self._send_raw(out)
                continue
            with _translate():
                data = await self._stream.receive_some(self._bufsize)
            recv_ns = time.time_ns()
            self.last_activity = trio.current_time()
            if not data:
                self._ws.receive_data(None)
                raise ConnectionLost("connection closed by server without a close frame")
            self.bytes_received += len(data)
            self._splitter.feed(bytes(data))
            out = self._absorb(recv_ns)
            if out:
                await self._send_raw(out)
        return self._ready.popleft()

    def _absorb(self, recv_ns: int) -> bytes:
        """Turn the bytes fed to the splitter into messages, in stream order: the frames it
        takes itself, then each piece it hands to wsproto. Returns the bytes to send back."""
        out = b""
        splitter = self._splitter
        ready = self._ready
        while (chunk := splitter.next(recv_ns, ready)) is not None:
            with _translate():
                self._ws.receive_data(chunk)
            out += self._handle_events(recv_ns)
            if self._closed is not None:
                # wsproto parses nothing after a close frame or a protocol error.
                break
        return out

    def _handle_events(self, recv_ns: int) -> bytes:
        out = b""
        for e in self._ws.events():
            if isinstance(e, ev.Message):
                self._parts.append(e.data)
                self._parts_len += len(e.data)
                if self._parts_len > self._max:
                    raise RemoteProtocolError(f"message larger than {self._max} bytes")
                if e.message_finished:
                    if isinstance(e, ev.TextMessage):
                        payload = "".join(p for p in self._parts if isinstance(p, str)).encode()
                        self._ready.append(Frame(recv_ns, payload, True))
                    else:
                        payload = b"".join(p for p in self._parts if isinstance(p, bytes))
                        self._ready.append(Frame(recv_ns, payload, False))
                    self._parts.clear()
                    self._parts_len = 0
            elif isinstance(e, ev.Ping):
                out += self._ws.send(e.response())
                self.pings_answered += 1
                if self._on_control_sent is not None:
                    self._on_control_sent()
            elif isinstance(e, ev.CloseConnection):
                self._closed = ClosedByPeer(e.code, e.reason or "")
                if self._ws.state == ConnectionState.REMOTE_CLOSING:
                    out += self._ws.send(e.response())
        return out

    async def _send_raw(self, data: bytes) -> None:
        async with self._send_lock:
            with _translate():
                await self._stream.send_all(data)

    async def send_text(self, text: str) -> None:
        if self._closed is not None:
            raise self._closed
        with _translate():
            data = self._ws.send(ev.TextMessage(data=text))
        await self._send_raw(data)

    async def ping(self, payload: bytes = b"") -> None:
        with _translate():
            data = self._ws.send(ev.Ping(payload=payload))
        await self._send_raw(data)

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame if still open, then close the transport (never raises)."""
        with trio.CancelScope(shield=True):
            try:
                if self._ws.state == ConnectionState.OPEN:
                    data = self._ws.send(ev.CloseConnection(code=code, reason=reason))
                    with trio.move_on_after(1):
                        await self._send_raw(data)
            except (TransportError, wsproto.utilities.LocalProtocolError):
                pass
            with suppress(OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                await self._stream.aclose()


async def connect(
    url: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    ssl_context: ssl.SSLContext | None = None,
    max_message_size: int = 16 * 1024 * 1024,
    receive_buffer: int = 256 * 1024,
    on_control_sent: Callable[[], None] | None = None,
) -> WsClient:
    """Open a WebSocket connection (``ws://`` or ``wss://``) and complete the handshake.

    The caller bounds the time this may take with its own cancel scope. The values of
    ``headers`` are credentials (an API key): they are masked in every error text from now on.
    """
    remember_secret(*(v for _, v in headers))
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URL: {url!r}")
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    with _translate():
        if parts.scheme == "wss":
            ctx = ssl_context or ssl.create_default_context()
            stream: trio.abc.Stream = await trio.open_ssl_over_tcp_stream(
                host, port, ssl_context=ctx, https_compatible=True
            )
        else:
            stream = await trio.open_tcp_stream(host, port)
    client = WsClient(
        stream,
        max_message_size=max_message_size,
        receive_buffer=receive_buffer,
        on_control_sent=on_control_sent,
    )
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    try:
        await client._handshake(host_header, target, headers)
    except BaseException:
        with (
            trio.CancelScope(shield=True),
            suppress(OSError, trio.BrokenResourceError, trio.ClosedResourceError),
        ):
            await stream.aclose()
        raise
    return client
