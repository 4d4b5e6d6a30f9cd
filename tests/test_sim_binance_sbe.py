"""Conformance of the simulator's Binance spot SBE venue (``shared/protocols/binance-sbe.md``)."""

from __future__ import annotations

import itertools
import struct

import httpx
import orjson
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from replay.sim import Fault
from tests.test_sim_support import RawClient, config, request, running

V = "binance-sbe"
KEY = [(b"X-MBX-APIKEY", b"test-ed25519-key")]


def header(frame: bytes) -> tuple[int, int, int, int]:
    return struct.unpack_from("<HHHH", frame, 0)


async def test_handshake_requires_api_key() -> None:
    """binance-sbe.md §1: without `X-MBX-APIKEY` the upgrade is refused with
    `HTTP/1.1 400 Bad Request` and `No X-MBX-APIKEY header` [observed]; unknown keys (U)."""
    async with running(config(V)) as (sim, urls):
        client = RawClient()
        assert not await client.connect(f"{urls.ws(V)}/ws/btcusdt@trade")
        assert client.raw_response.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert client.status == 400 and client.body == b"No X-MBX-APIKEY header"
        await client.aclose()
        assert sim.statistics().handshakes_refused == 1
    async with running(config(V, sbe_api_keys=frozenset({"good"}))) as (_sim, urls):
        with pytest.raises(ConnectionRejected) as exc:
            async with open_websocket_url(
                f"{urls.ws(V)}/ws", extra_headers=[(b"X-MBX-APIKEY", b"bad")]
            ):
                pass
        assert exc.value.status_code == 401
        async with open_websocket_url(
            f"{urls.ws(V)}/ws", extra_headers=[(b"X-MBX-APIKEY", b"good")]
        ):
            pass


async def test_market_events_are_binary_sbe_frames() -> None:
    """binance-sbe.md §1 frame types (binary = one SBE message) and §2 header/template ids
    (10000 trade, 10001 bestBidAsk, 10002 depth20, 10003 depth), schema 1 version 0."""
    async with running(config(V, rate=500)) as (_sim, urls):
        names = "btcusdt@trade/btcusdt@bestBidAsk/btcusdt@depth20/btcusdt@depth"
        url = f"{urls.ws(V)}/stream?streams={names}"
        async with open_websocket_url(url, extra_headers=KEY) as ws:
            templates: dict[int, bytes] = {}
            with trio.fail_after(10):
                while len(templates) < 4:
                    frame = await ws.get_message()
                    assert isinstance(frame, bytes)
                    block, template, schema, version = header(frame)
                    assert (schema, version) == (1, 0)
                    assert block == {10000: 18, 10001: 50, 10002: 18, 10003: 26}[template]
                    assert frame.endswith(b"\x07BTCUSDT")
                    templates.setdefault(template, frame)
        trade = templates[10000]
        event_us, transact_us = struct.unpack_from("<qq", trade, 8)
        assert len(str(event_us)) == 16 and transact_us <= event_us
        assert struct.unpack_from("<bb", trade, 24) == (-2, -5)


async def test_control_messages_are_json_text() -> None:
    """binance-sbe.md §1: control requests and replies are JSON text frames, same results and
    errors as the JSON streams; serverShutdown is JSON text."""
    async with running(config(V, rate=0)) as (sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws(V)}/ws", extra_headers=KEY) as ws:
            sub = {
                "method": "SUBSCRIBE",
                "params": ["btcusdt@depth", "btcusdt@bestBidAsk"],
                "id": 1,
            }
            assert await request(ws, sub) == {"result": None, "id": 1}
            bad = {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 2}
            assert await request(ws, bad) == {
                "error": {"code": 2, "msg": "Invalid request: invalid stream"},
                "id": 2,
            }
            lst = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3})
            assert lst == {"result": ["btcusdt@depth", "btcusdt@bestBidAsk"], "id": 3}
            sim.inject(Fault("server_shutdown"))
            with trio.fail_after(5):
                msg = await ws.get_message()
            assert isinstance(msg, str)
            assert orjson.loads(msg)["e"] == "serverShutdown"


async def test_depth_diff_chain_and_rest_snapshot() -> None:
    """binance-sbe.md §1 `@depth` follows the JSON book procedure (firstBookUpdateId = U,
    lastBookUpdateId = u, U = previous u + 1) against `GET /api/v3/depth`."""
    async with running(config(V, rate=500)) as (_sim, urls):
        async with open_websocket_url(f"{urls.ws(V)}/ws/btcusdt@depth", extra_headers=KEY) as ws:
            async with httpx.AsyncClient() as http:
                frame = await ws.get_message()
                assert isinstance(frame, bytes)
                first_u = struct.unpack_from("<qq", frame, 16)
                r = await http.get(f"{urls.rest(V)}/api/v3/depth", params={"symbol": "BTCUSDT"})
                last = r.json()["lastUpdateId"]
                assert last >= first_u[0]
            prev = first_u[1]
            found = False
            with trio.fail_after(10):
                for _ in range(30):
                    frame = await ws.get_message()
                    assert isinstance(frame, bytes)
                    U, u = struct.unpack_from("<qq", frame, 16)
                    assert prev + 1 == U
                    prev = u
                    if U <= last + 1 <= u:
                        found = True
        assert found


async def test_best_bid_ask_culling_keeps_newest() -> None:
    """binance-sbe.md §1 bestBidAsk auto-culling: per tick only the newest event per symbol is
    sent, so bookUpdateId may skip (configurable)."""
    async with running(config(V, rate=3000, tick=0.05)) as (_sim, urls):
        url = f"{urls.ws(V)}/ws/btcusdt@bestBidAsk"
        async with open_websocket_url(url, extra_headers=KEY) as ws:
            ids: list[int] = []
            with trio.fail_after(10):
                while len(ids) < 10:
                    frame = await ws.get_message()
                    assert isinstance(frame, bytes)
                    ids.append(struct.unpack_from("<q", frame, 16)[0])
        assert ids == sorted(ids)
        assert any(b - a > 1 for a, b in itertools.pairwise(ids))
