"""The benchmark exchange: a separate process that speaks just enough of Binance's combined
stream protocol (HTTP upgrade, ``{"method":"SUBSCRIBE",...}`` answered with
``{"result":null,"id":N}``, pings answered) and then writes *pre-built* WebSocket frames in big
``send_all`` chunks, so the sending side costs next to nothing per message.

Run as ``python -m benchmarks._server '<json spec>'``; it prints ``PORT <n>`` once listening.
Spec keys: ``corpus`` (path), ``connections`` (how many to wait for), ``streams`` (how many
subscribed streams in total start the run), ``mode`` (``blast``: ``per_conn`` messages per
connection as fast as the socket takes them; ``paced``: ``rate`` messages/s in total for
``duration`` s), ``tls`` (``[certfile, keyfile]`` or null), ``chunk`` (bytes per ``send_all``).
Sending starts on every connection at once when all of them have subscribed everything.
"""

from __future__ import annotations

import ssl
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import trio
import wsproto
import wsproto.events as ev

from benchmarks._corpus import read, stream_of, ws_frame

_GONE = (
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    OSError,
    ssl.SSLError,
    wsproto.utilities.LocalProtocolError,
    wsproto.utilities.RemoteProtocolError,
)


class Server:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.corpus_order = [(stream_of(f), f) for f in read(Path(spec["corpus"]))]
        self.subs: dict[int, set[str]] = {}
        self.go = trio.Event()
        self.conns = 0
        self.sent_done = 0
        self._framed = 0
        self.all_framed = trio.Event()
        self.sent_u: dict[str, int] = {}
        self.ssl_ctx: ssl.SSLContext | None = None
        if spec.get("tls"):
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(*spec["tls"])
            self.ssl_ctx = ctx

    def _check_go(self) -> None:
        total = sum(len(s) for s in self.subs.values())
        if len(self.subs) >= self.spec["connections"] and total >= self.spec["streams"]:
            self.go.set()

    def units_for(self, cid: int) -> list[tuple[bytes, dict[str, int], int]]:
        """The connection's pre-framed bytes, cut into send units at frame boundaries:
        (bytes, the U of the last diff-depth event per symbol in it, frames). Blast: units of
        ``chunk`` bytes; paced: ``rate / connections / 100`` frames (one 10 ms tick) each."""
        subs = self.subs[cid]
        mine = [(s, f) for s, f in self.corpus_order if s in subs]
        if not mine:
            return []
        n = int(self.spec.get("per_conn") or len(mine))
        paced = self.spec["mode"] == "paced"
        per_unit = max(1, round(self.spec.get("rate", 0) / max(1, len(self.subs)) * 0.01))
        chunk = int(self.spec.get("chunk", 256 * 1024))
        units: list[tuple[bytes, dict[str, int], int]] = []
        parts: list[bytes] = []
        last_u: dict[str, int] = {}
        size = 0
        for i in range(n):
            s, f = mine[i % len(mine)]
            fr = ws_frame(f)
            parts.append(fr)
            size += len(fr)
            if "@depth" in s:
                last_u[s.split("@", 1)[0].upper()] = int(orjson.loads(f)["data"]["U"])
            if (paced and len(parts) >= per_unit) or (not paced and size >= chunk):
                units.append((b"".join(parts), last_u, len(parts)))
                parts, last_u, size = [], {}, 0
        if parts:
            units.append((b"".join(parts), last_u, len(parts)))
        return units

    async def handle(self, stream: trio.abc.Stream) -> None:
        cid = id(stream)
        if self.ssl_ctx is not None:
            stream = trio.SSLStream(stream, self.ssl_ctx, server_side=True)
        ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        lock = trio.StrictFIFOLock()

        async def send(data: bytes) -> None:
            async with lock:
                await stream.send_all(data)

        async def reader() -> None:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                ws.receive_data(bytes(data))
                for e in ws.events():
                    if isinstance(e, ev.Request):
                        await send(ws.send(ev.AcceptConnection()))
                        self.conns += 1
                        self.subs.setdefault(cid, set())
                    elif isinstance(e, ev.TextMessage):
                        req = orjson.loads(e.data)
                        if req.get("method") == "SUBSCRIBE":
                            self.subs.setdefault(cid, set()).update(req.get("params", []))
                        reply = orjson.dumps({"result": None, "id": req.get("id")})
                        await send(ws.send(ev.TextMessage(data=reply.decode())))
                        self._check_go()
                    elif isinstance(e, ev.Ping):
                        await send(ws.send(e.response()))
                    elif isinstance(e, ev.CloseConnection):
                        await send(ws.send(e.response()))
                        return

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await self.go.wait()
                units = self.units_for(cid)
                self._framed += 1
                if self._framed >= len(self.subs):
                    self.all_framed.set()
                await self.all_framed.wait()
                if self.spec["mode"] == "blast":
                    for data, last_u, _ in units:
                        await send(data)
                        self.sent_u.update(last_u)
                else:
                    await self.paced(send, units)
                self.sent_done += 1
                await trio.sleep_forever()
        except* _GONE:
            pass  # the client went away: that is how every run ends

    async def paced(self, send: Any, units: list[tuple[bytes, dict[str, int], int]]) -> None:
        """One unit every 10 ms for ``duration`` s, cycling unless ``per_conn`` is given."""
        tick = 0.01
        t0 = trio.current_time()
        deadline = t0 + float(self.spec["duration"])
        cycle = not self.spec.get("per_conn")
        step = 0
        while trio.current_time() < deadline and (cycle or step < len(units)):
            data, last_u, _ = units[step % len(units)]
            await send(data)
            self.sent_u.update(last_u)
            step += 1
            await trio.sleep_until(t0 + step * tick)

    def first_update_ids(self) -> dict[str, int]:
        """Per symbol, the ``U`` of its first diff-depth event in the corpus."""
        out: dict[str, int] = {}
        for s, f in self.corpus_order:
            if "@depth" in s:
                sym = s.split("@", 1)[0].upper()
                if sym not in out:
                    out[sym] = int(orjson.loads(f)["data"]["U"])
        return out

    async def rest(self, stream: trio.SocketStream) -> None:
        """``GET /api/v3/depth``: a snapshot that the last diff event sent follows (its
        ``lastUpdateId`` is that event's ``U - 1``), so the recorder's book keeper syncs."""
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
                query = dict(
                    kv.split("=", 1) for kv in target.partition("?")[2].split("&") if "=" in kv
                )
                sym = query.get("symbol", "")
                if target.startswith("/api/v3/depth") and sym in self.first_u:
                    body = orjson.dumps(
                        {
                            "lastUpdateId": self.sent_u.get(sym, self.first_u[sym]) - 1,
                            "bids": [["1.00000000", "1.00000000"]],
                            "asks": [["100000.00000000", "1.00000000"]],
                        }
                    )
                    status = b"200 OK"
                else:
                    body, status = b'{"code":-1121,"msg":"Invalid symbol."}', b"400 Bad Request"
                await stream.send_all(
                    b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                    b"x-mbx-used-weight-1m: 1\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
        except* _GONE:
            pass

    async def main(self) -> None:
        self.first_u = self.first_update_ids()
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        rest = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        rest_port = rest[0].socket.getsockname()[1]
        print(f"PORT {port} {rest_port}", flush=True)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, self.handle, listeners)
            nursery.start_soon(trio.serve_listeners, self.rest, rest)
            await self.go.wait()
            print(f"GO {time.time_ns()}", flush=True)


def main() -> None:
    spec = orjson.loads(sys.argv[1])
    trio.run(Server(spec).main)


if __name__ == "__main__":
    main()
