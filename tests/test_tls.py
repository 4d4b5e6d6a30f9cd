"""The recorder records over wss:// (the real endpoints are TLS) with a custom trust store."""

from __future__ import annotations

import ssl
from pathlib import Path

import orjson
import trio
import trustme
from trio_websocket import WebSocketRequest, serve_websocket

from recorder import Recorder, RecorderConfig, VenueJob
from replay import open_archive
from tests.simrec import FAST

TRADE = (
    b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":%d,'
    b'"p":"1.00000000","q":"2.00000000","T":1,"m":true,"M":true}}'
)


async def test_recording_over_tls_with_a_local_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        req = orjson.loads(await ws.get_message())
        assert req["method"] == "SUBSCRIBE" and req["params"] == ["btcusdt@trade"]
        await ws.send_message(orjson.dumps({"result": None, "id": req["id"]}).decode())
        for i in range(50):
            await ws.send_message((TRADE % i).decode())
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, server_ctx)
        port = server.port
        cfg = RecorderConfig(
            root=str(tmp_path),
            jobs=(VenueJob("binance-spot", ("btcusdt@trade",), ws_url=f"wss://127.0.0.1:{port}"),),
            flush_interval=0.5,
            fsync=False,
            timing=FAST,
            ssl_context=client_ctx,
        )
        rec = Recorder(cfg)
        with trio.move_on_after(1.5):
            await rec.run()
        nursery.cancel_scope.cancel()
    trades = [m for m in open_archive(str(tmp_path)) if m.channel == "trade"]
    assert [m.payload for m in trades] == [TRADE % i for i in range(50)]


async def test_an_untrusted_certificate_is_refused(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)

    async def handler(request: WebSocketRequest) -> None:
        await request.accept()

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, server_ctx)
        cfg = RecorderConfig(
            root=str(tmp_path),
            jobs=(
                VenueJob(
                    "binance-spot", ("btcusdt@trade",), ws_url=f"wss://127.0.0.1:{server.port}"
                ),
            ),
            flush_interval=0.5,
            fsync=False,
            timing=FAST,
        )
        rec = Recorder(cfg)
        async with trio.open_nursery() as rn:
            await rn.start(rec.run)
            # Until the refusal has been seen (not a fixed time: a busy machine is slow).
            with trio.fail_after(60):
                while not any(
                    s.last_error and "CERTIFICATE_VERIFY_FAILED" in s.last_error
                    for s in rec.statistics().shards
                ):
                    await trio.sleep(0.05)
            rn.cancel_scope.cancel()
        nursery.cancel_scope.cancel()
    events = [orjson.loads(m.payload) for m in open_archive(str(tmp_path))]
    reasons = [e["reason"] for e in events if e["event"] == "disconnected"]
    assert reasons and all("CERTIFICATE_VERIFY_FAILED" in r for r in reasons)
