"""The simulator's Binance COIN-M futures venue (``binance-coinm``: real ``dstream.binance.com``
and ``dapi.binance.com``), served like USDⓈ-M (``binance-usdm-futures.md``) with the COIN-M
differences: contract symbols (``BTCUSD_PERP``, ``BTCUSD_251226``), a ``ps`` (pair) field,
quantities in contracts, base-asset volumes, ``/dapi/v1`` REST."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import httpx
import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from tests.test_sim_support import collect, config, recv_reply, request, running

V = "binance-coinm"

STREAMS = (
    "btcusd_perp@aggTrade",
    "btcusd_perp@markPrice@1s",
    "btcusd_perp@bookTicker",
    "btcusd_perp@depth@100ms",
    "btcusd_perp@depth@500ms",
    "btcusd_perp@forceOrder",
    "btcusd_perp@kline_1m",
)


async def _first_per_stream(ws: Any, want: set[str], timeout: float = 10.0) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    with trio.fail_after(timeout):
        while not want <= set(seen):
            m = orjson.loads(await ws.get_message())
            seen.setdefault(m["stream"], m["data"])
    return seen


async def test_stream_payload_shapes() -> None:
    """USDⓈ-M shapes plus `ps` (pair) in bookTicker, depth and forceOrder; aggTrade without the
    USDⓈ-M-only `nq`; quantities are whole contracts; markPrice has no `ap`."""
    async with running(config(V, rate=1500)) as (_sim, urls):
        url = f"{urls.ws(V)}/stream?streams={'/'.join(STREAMS)}"
        async with open_websocket_url(url) as ws:
            seen = await _first_per_stream(ws, set(STREAMS))
    agg = seen["btcusd_perp@aggTrade"]
    assert list(agg) == ["e", "E", "s", "a", "p", "q", "f", "l", "T", "m"]
    assert agg["s"] == "BTCUSD_PERP" and agg["q"].isdigit()
    mark = seen["btcusd_perp@markPrice@1s"]
    assert list(mark) == ["e", "E", "s", "p", "P", "i", "r", "T"] and mark["T"] > mark["E"]
    book = seen["btcusd_perp@bookTicker"]
    assert list(book) == ["e", "u", "E", "T", "s", "ps", "b", "B", "a", "A"]
    assert book["ps"] == "BTCUSD" and book["B"].isdigit()
    for name in ("btcusd_perp@depth@100ms", "btcusd_perp@depth@500ms"):
        depth = seen[name]
        assert list(depth) == ["e", "E", "T", "s", "ps", "U", "u", "pu", "b", "a"]
        assert all(q.isdigit() for _, q in depth["b"] + depth["a"])
    force = seen["btcusd_perp@forceOrder"]
    assert force["e"] == "forceOrder" and force["o"]["s"] == "BTCUSD_PERP"
    assert force["o"]["ps"] == "BTCUSD"
    k = seen["btcusd_perp@kline_1m"]["k"]
    assert k["s"] == "BTCUSD_PERP" and k["i"] == "1m" and k["v"].isdigit()
    # `q` is the base-asset volume: contracts x 100 USD / price, about v x 100 / 65000 BTC
    assert float(k["q"]) == pytest.approx(int(k["v"]) * 100 / float(k["c"]), rel=0.01)


async def test_delivery_contract_and_funding_fields_switch() -> None:
    """A quarterly (`BTCUSD_251226`) markPrice has `"r":""`, `"T":0`; with
    ``coinm_funding_fields=False`` neither funding field is sent (U)."""
    async with running(config(V)) as (_sim, urls):
        async with open_websocket_url(f"{urls.ws(V)}/ws/btcusd_251226@markPrice@1s") as ws:
            m = orjson.loads((await collect(ws, 1))[0])
        assert m["s"] == "BTCUSD_251226" and (m["r"], m["T"]) == ("", 0)
    async with running(config(V, coinm_funding_fields=False)) as (_sim, urls):
        async with open_websocket_url(f"{urls.ws(V)}/ws/btcusd_perp@markPrice@1s") as ws:
            m = orjson.loads((await collect(ws, 1))[0])
        assert "r" not in m and "T" not in m and m["e"] == "markPriceUpdate"


async def test_control_protocol_is_usdm_s() -> None:
    """The USDⓈ-M control protocol: SUBSCRIBE / LIST_SUBSCRIPTIONS with integer and UUID ids,
    `invalid stream` for an unknown symbol (a USDⓈ-M name), invalid JSON closes."""
    async with running(config(V)) as (_sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws(V)}/ws") as ws:
            rid = str(uuid.uuid4())
            sub = {"method": "SUBSCRIBE", "params": ["ethusd_perp@bookTicker"], "id": rid}
            assert await request(ws, sub) == {"result": None, "id": rid}
            bad = {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 2}
            assert await request(ws, bad) == {
                "error": {"code": 2, "msg": "Invalid request: invalid stream"},
                "id": 2,
            }
            lst = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3})
            assert lst == {"result": ["ethusd_perp@bookTicker"], "id": 3}
            await ws.send_message("not json")
            assert (await recv_reply(ws))["error"]["code"] == 3
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.get_message()


async def test_route_split_is_configurable() -> None:
    """Whether dstream has USDⓈ-M's /public|/market split is (U): off by default (every stream
    on every path); ``coinm_route_split=True`` makes a /market stream on /public silent."""
    path = "/public/ws/btcusd_perp@aggTrade/btcusd_perp@bookTicker"
    async with running(config(V, rate=800)) as (_sim, urls):
        async with open_websocket_url(f"{urls.ws(V)}{path}") as ws:
            kinds = {orjson.loads(m)["e"] for m in await collect(ws, 200)}
        assert kinds == {"aggTrade", "bookTicker"}
    async with running(config(V, rate=800, coinm_route_split=True)) as (_sim, urls):
        async with open_websocket_url(f"{urls.ws(V)}{path}") as ws:
            kinds = {orjson.loads(m)["e"] for m in await collect(ws, 200)}
        assert kinds == {"bookTicker"}


async def test_dapi_rest_depth_exchange_info_time() -> None:
    """`/dapi/v1/depth` (USDⓈ-M limits and weights, plus `symbol`/`pair`), `/dapi/v1/exchangeInfo`
    (contractSize, contractStatus, quarterly delivery date) and `/dapi/v1/time`."""
    async with running(config(V)) as (_sim, urls):  # noqa: SIM117
        async with httpx.AsyncClient(base_url=urls.rest(V)) as http:
            r = await http.get("/dapi/v1/depth", params={"symbol": "BTCUSD_PERP", "limit": 5})
            assert r.status_code == 200 and r.headers["X-MBX-USED-WEIGHT-1M"] == "2"
            snap = r.json()
            assert list(snap) == ["lastUpdateId", "symbol", "pair", "E", "T", "bids", "asks"]
            assert (snap["symbol"], snap["pair"], len(snap["bids"])) == ("BTCUSD_PERP", "BTCUSD", 5)
            r = await http.get("/dapi/v1/depth", params={"symbol": "BTCUSD_PERP", "limit": 7})
            assert r.status_code == 400
            r = await http.get("/fapi/v1/depth", params={"symbol": "BTCUSD_PERP"})
            assert r.status_code == 404
            info = (await http.get("/dapi/v1/exchangeInfo")).json()
            syms = {s["symbol"]: s for s in info["symbols"]}
            assert set(syms) == {"BTCUSD_PERP", "ETHUSD_PERP", "BTCUSD_251226"}
            perp, quarter = syms["BTCUSD_PERP"], syms["BTCUSD_251226"]
            assert (perp["contractType"], perp["contractSize"], perp["pair"]) == (
                "PERPETUAL",
                100,
                "BTCUSD",
            )
            assert perp["contractStatus"] == "TRADING" and perp["marginAsset"] == "BTC"
            assert syms["ETHUSD_PERP"]["contractSize"] == 10
            assert quarter["contractType"] == "CURRENT_QUARTER"
            assert quarter["deliveryDate"] == 1766736000000  # 2025-12-26 08:00 UTC
            t = (await http.get("/dapi/v1/time")).json()["serverTime"]
            assert t >= info["serverTime"]


async def test_depth_pu_chain_and_snapshot() -> None:
    """Diff depth chains by `pu` = previous `u` and fits the `/dapi/v1/depth` snapshot
    (`binance-usdm-futures.md` §7 procedure)."""
    async with running(config(V, rate=400)) as (_sim, urls):
        url = f"{urls.ws(V)}/stream?streams=btcusd_perp@depth@100ms"
        async with open_websocket_url(url) as ws, httpx.AsyncClient() as http:
            first = orjson.loads(await ws.get_message())["data"]
            r = await http.get(
                f"{urls.rest(V)}/dapi/v1/depth", params={"symbol": "BTCUSD_PERP", "limit": 1000}
            )
            last = r.json()["lastUpdateId"]
            assert r.headers["X-MBX-USED-WEIGHT-1M"] == "20" and last >= first["U"]
            events = [first] + [orjson.loads(m)["data"] for m in await collect(ws, 10)]
    for a, b in itertools.pairwise(events):
        assert b["pu"] == a["u"] and b["U"] > a["u"]
    assert any(e["U"] <= last + 1 <= e["u"] + 1 for e in events)
