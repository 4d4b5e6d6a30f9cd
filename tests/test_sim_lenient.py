"""The simulator accepts what real clients send where the real servers are more lenient than the
documentation (issue #16): unknown names in the URL, UUID request ids, the undocumented USDⓈ-M
``@trade`` route, and TLS (``wss://`` / ``https://``) as on the real endpoints."""

from __future__ import annotations

import ssl
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio
import trustme
from trio_websocket import open_websocket_url

from recorder import Recorder, RecorderConfig, VenueJob
from replay import open_archive
from replay.sim import SimConfig, VenueConfig
from tests.simrec import FAST
from tests.test_sim_support import collect, config, recv_reply, request, running

SPOT, USDM = "binance-spot", "binance-usdm"


async def _silent(ws: Any, seconds: float = 0.5) -> bool:
    with trio.move_on_after(seconds) as cs:
        await ws.get_message()
    return cs.cancelled_caught


@pytest.mark.parametrize(
    ("venue", "path"), [(SPOT, "/ws/12345"), (SPOT, "/ws/BTCUSDT@trade"), (USDM, "/public/ws/7")]
)
async def test_unknown_stream_in_url_opens_a_silent_connection(venue: str, path: str) -> None:
    """README (Binance Spot 1): an unknown or mis-cased name in the URL path does not fail the
    handshake; the connection opens, sends nothing, and takes SUBSCRIBE later (ccxt `/ws/<n>`)."""
    async with running(config(venue, rate=500)) as (_sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws(venue)}{path}") as ws:
            assert await _silent(ws)
            assert await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1}) == {
                "result": [],
                "id": 1,
            }
            sub = {"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 2}
            assert await request(ws, sub) == {"result": None, "id": 2}
            assert orjson.loads((await collect(ws, 1))[0])["s"] == "BTCUSDT"


async def test_valid_names_next_to_unknown_ones_are_served() -> None:
    """`/stream?streams=good/bad` and `/ws/good/bad`: the valid streams still deliver."""
    async with running(config(SPOT, rate=500)) as (_sim, urls):
        url = f"{urls.ws(SPOT)}/stream?streams=nosuch@trade/btcusdt@bookTicker/xyz"
        async with open_websocket_url(url) as ws:
            msgs = [orjson.loads(m) for m in await collect(ws, 20)]
            assert {m["stream"] for m in msgs} == {"btcusdt@bookTicker"}
            lst = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3})
            assert lst == {"result": ["btcusdt@bookTicker"], "id": 3}
        async with open_websocket_url(f"{urls.ws(SPOT)}/ws/bad/btcusdt@bookTicker") as ws:
            assert orjson.loads((await collect(ws, 1))[0])["s"] == "BTCUSDT"


@pytest.mark.parametrize("venue", [SPOT, USDM])
async def test_uuid_request_ids_are_echoed(venue: str) -> None:
    """binance-spot.md §5: the official SDKs send UUID strings (36 chars with hyphens) as `id`;
    they are echoed as sent. USDⓈ-M accepts them too by default (U, ``usdm_strict_ids``)."""
    path = "/ws" if venue == SPOT else "/public/ws"
    async with running(config(venue)) as (_sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws(venue)}{path}") as ws:
            rid = str(uuid.uuid4())
            assert len(rid) == 36
            sub = {"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": rid}
            assert await request(ws, sub) == {"result": None, "id": rid}
            lst = {"method": "LIST_SUBSCRIPTIONS", "id": "req-7"}
            assert await request(ws, lst) == {"result": ["btcusdt@bookTicker"], "id": "req-7"}
            await ws.send_message(
                orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": rid + "x"}).decode()
            )
            assert (await recv_reply(ws))["error"] == {
                "code": 2,
                "msg": "Invalid request: request ID must be an unsigned integer",
            }


async def test_usdm_strict_ids_rejects_strings() -> None:
    """``VenueConfig(usdm_strict_ids=True)``: the documented rule, unsigned integers only."""
    async with running(config(USDM, usdm_strict_ids=True)) as (_sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws(USDM)}/public/ws") as ws:
            await ws.send_message(
                orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": "abc"}).decode()
            )
            assert (await recv_reply(ws))["error"]["code"] == 2
            assert await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 2**64 - 1}) == {
                "result": [],
                "id": 2**64 - 1,
            }


@pytest.mark.parametrize("route", ["market", "public"])
async def test_usdm_trade_route_is_configurable(route: str) -> None:
    """The route of the undocumented USDⓈ-M `@trade` is (U): served on /market by default, on
    /public with ``usdm_trade_route="public"``; silent on the other route."""
    vcfg: dict[str, Any] = {} if route == "market" else {"usdm_trade_route": "public"}
    other = "public" if route == "market" else "market"
    async with running(config(USDM, rate=1000, **vcfg)) as (_sim, urls):
        async with open_websocket_url(f"{urls.ws(USDM)}/{route}/ws/btcusdt@trade") as ws:
            msg = orjson.loads((await collect(ws, 1))[0])
            assert msg["e"] == "trade" and msg["X"] == "MARKET"
        async with open_websocket_url(f"{urls.ws(USDM)}/{other}/ws/btcusdt@trade") as ws:
            assert await _silent(ws)


def _tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


async def test_recorder_records_the_simulator_over_wss(tmp_path: Path) -> None:
    """``SimConfig(ssl_context=…)`` serves wss:// and https://; the recorder's client with a
    trust store for the test CA records trades byte-exact from it."""
    server_ctx, client_ctx = _tls()
    cfg = SimConfig(venues=(SPOT,), rate=400, ssl_context=server_ctx, ledger_path=None)
    async with running(cfg) as (sim, urls):
        assert urls.ws(SPOT).startswith("wss://") and urls.rest(SPOT).startswith("https://")
        rec = Recorder(
            RecorderConfig(
                root=str(tmp_path),
                jobs=(
                    VenueJob(
                        SPOT,
                        ("btcusdt@trade",),
                        ws_url=urls.ws(SPOT),
                        rest_url=urls.rest(SPOT),
                    ),
                ),
                flush_interval=0.2,
                fsync=False,
                timing=FAST,
                ssl_context=client_ctx,
            )
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rec.run)
            with trio.fail_after(30):  # the recorder is subscribed and trades flow over TLS
                while sim.statistics().messages_sent < 50:
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    trades = [m for m in open_archive(str(tmp_path)) if m.channel == "trade"]
    assert trades and all(orjson.loads(m.payload)["data"]["e"] == "trade" for m in trades)


async def test_rest_over_https_and_per_venue_tls() -> None:
    """``VenueConfig.ssl_context`` turns TLS on for one venue only; REST answers over https."""
    server_ctx, client_ctx = _tls()
    cfg = SimConfig(venues=(SPOT, USDM), venue_config={USDM: VenueConfig(ssl_context=server_ctx)})
    async with running(cfg) as (_sim, urls):
        assert urls.ws(SPOT).startswith("ws://") and urls.ws(USDM).startswith("wss://")
        async with httpx.AsyncClient(verify=client_ctx) as client:
            r = await client.get(f"{urls.rest(USDM)}/fapi/v1/depth?symbol=BTCUSDT&limit=5")
        assert r.status_code == 200 and len(r.json()["bids"]) == 5
        async with open_websocket_url(
            f"{urls.ws(USDM)}/public/ws/btcusdt@bookTicker", ssl_context=client_ctx
        ) as ws:
            assert orjson.loads((await collect(ws, 1))[0])["e"] == "bookTicker"
