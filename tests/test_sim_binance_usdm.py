"""Conformance of the simulator's Binance USDⓈ-M venue (``binance-usdm-futures.md``)."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from tests.test_sim_support import (
    CloseConnection,
    Ping,
    RawClient,
    collect,
    config,
    recv_reply,
    request,
    running,
)

V = "binance-usdm"


async def _kinds(ws: Any, want: set[str], timeout: float = 8.0) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    with trio.fail_after(timeout):
        while not want <= set(seen):
            m = orjson.loads(await ws.get_message())
            d = m["data"] if isinstance(m, dict) and "stream" in m else m
            key = "array" if isinstance(d, list) else d["e"]
            seen.setdefault(key, d)
    return seen


async def test_routed_paths_deliver_documented_payloads() -> None:
    """binance-usdm-futures.md §1 `/public|/market` + `ws/<a>/<b>` and `stream?streams=`; §5
    payload shapes (aggTrade with `nq`, bookTicker with e/E/T, depthUpdate with `pu`)."""
    async with running(config(V)) as (_sim, urls):
        pub = f"{urls.ws(V)}/public/ws/btcusdt@depth/btcusdt@bookTicker"
        async with open_websocket_url(pub) as ws:
            seen = await _kinds(ws, {"depthUpdate", "bookTicker"})
        assert list(seen["depthUpdate"]) == ["e", "E", "T", "s", "U", "u", "pu", "b", "a"]
        assert list(seen["bookTicker"]) == ["e", "u", "E", "T", "s", "b", "B", "a", "A"]
        mkt = f"{urls.ws(V)}/market/stream?streams=btcusdt@aggTrade/btcusdt@markPrice@1s"
        async with open_websocket_url(mkt) as ws:
            seen = await _kinds(ws, {"aggTrade", "markPriceUpdate"})
        assert list(seen["aggTrade"]) == ["e", "E", "s", "a", "p", "q", "nq", "f", "l", "T", "m"]
        assert list(seen["markPriceUpdate"]) == ["e", "E", "s", "p", "ap", "i", "P", "r", "T"]


async def test_wrong_route_and_legacy_url_are_silent() -> None:
    """binance-usdm-futures.md §1: a stream on the wrong route, or a /market stream on a legacy
    unrouted `/ws`, is accepted but never delivers data; /public streams still flow on legacy."""
    async with running(config(V, rate=500)) as (_sim, urls):
        async with open_websocket_url(f"{urls.ws(V)}/public/ws") as ws:
            ok = await request(ws, {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 1})
            assert ok == {"result": None, "id": 1}
            lst = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 2})
            assert lst == {"result": ["btcusdt@aggTrade"], "id": 2}
            with trio.move_on_after(0.6) as cs:
                await ws.get_message()
            assert cs.cancelled_caught
        url = f"{urls.ws(V)}/ws/btcusdt@markPrice@1s/btcusdt@aggTrade/btcusdt@bookTicker"
        async with open_websocket_url(url) as ws:
            msgs = [orjson.loads(m) for m in await collect(ws, 30)]
            assert {m["e"] for m in msgs} == {"bookTicker"}


async def test_url_forms_rejected() -> None:
    """binance-usdm-futures.md §1: `/ws?<streamName>` is not supported; path junk before `/ws`
    is rejected."""
    async with running(config(V)) as (_sim, urls):
        for path in ("/ws?btcusdt@depth", "/illegal_parameter/ws/btcusdt@depth"):
            with pytest.raises(ConnectionRejected):
                async with open_websocket_url(f"{urls.ws(V)}{path}"):
                    pass


async def test_id_must_be_unsigned_and_invalid_json_closes() -> None:
    """binance-usdm-futures.md §4 (id must be an unsigned integer; the documented rule, on with
    ``usdm_strict_ids`` — string ids are accepted by default, see test_sim_lenient) and §3
    (invalid JSON => code 3 error and the connection is closed)."""
    async with running(config(V, usdm_strict_ids=True)) as (_sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws(V)}/public/ws") as ws:
            for rid in ("abc", -1, None):
                await ws.send_message(
                    orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": rid}).decode()
                )
                assert (await recv_reply(ws))["error"] == {
                    "code": 2,
                    "msg": "Invalid request: request ID must be an unsigned integer",
                }
            assert await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 7}) == {
                "result": [],
                "id": 7,
            }
            await ws.send_message("not json")
            assert await recv_reply(ws) == {
                "error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}
            }
            with pytest.raises(ConnectionClosed):
                await ws.get_message()


async def test_rate_limit_is_10_per_second() -> None:
    """binance-usdm-futures.md §3: 10 incoming messages per second (pings, pongs, control)."""
    async with running(config(V, rate=0)) as (sim, urls):
        client = RawClient()
        assert await client.connect(f"{urls.ws(V)}/public/ws")
        for i in range(10):
            await client.send_text(f'{{"method":"LIST_SUBSCRIPTIONS","id":{i}}}')
        for _ in range(10):
            ev = await client.next_event()
            assert not isinstance(ev, CloseConnection)
        await client.ping(b"p")
        close, _ = await client.until_close()
        assert isinstance(close, CloseConnection) and close.code == 1008
        await client.aclose()
        assert sim.statistics().rate_limit_closes == 1


async def test_ping_every_3_min_pong_within_10_min(autojump_clock: Any) -> None:
    """binance-usdm-futures.md §3: ping every 3 minutes; no pong within 10 minutes => close."""
    del autojump_clock
    async with running(config(V, rate=0, tick=10_000.0)) as (_sim, urls):
        client = RawClient()
        assert await client.connect(f"{urls.ws(V)}/public/ws")
        t0 = trio.current_time()
        ev = await client.next_event(timeout=1000)
        assert isinstance(ev, Ping) and round(trio.current_time() - t0) == 180
        close, t = await client.until_close(timeout=2000)  # never answer
        assert isinstance(close, CloseConnection)
        assert round(t - t0) == 180 + 600
        await client.aclose()


async def test_rest_snapshot_and_pu_chain() -> None:
    """binance-usdm-futures.md §5.15 `pu` = previous `u` and §7: drop `u < lastUpdateId`, the
    first applied event has `U <= lastUpdateId <= u`."""
    async with running(config(V, rate=400)) as (_sim, urls):
        url = f"{urls.ws(V)}/public/stream?streams=btcusdt@depth@100ms"
        async with open_websocket_url(url) as ws, httpx.AsyncClient() as http:
            first = orjson.loads(await ws.get_message())["data"]
            r = await http.get(
                f"{urls.rest(V)}/fapi/v1/depth", params={"symbol": "BTCUSDT", "limit": 1000}
            )
            snap = r.json()
            assert list(snap) == ["lastUpdateId", "E", "T", "bids", "asks"]
            assert r.headers["X-MBX-USED-WEIGHT-1M"] == "20"
            last = snap["lastUpdateId"]
            assert last >= first["U"]
            prev = first["u"]
            applied = 0
            with trio.fail_after(10):
                while applied < 10:
                    ev = orjson.loads(await ws.get_message())["data"]
                    assert ev["pu"] == prev
                    prev = ev["u"]
                    if ev["u"] < last:
                        continue
                    if not applied:
                        assert ev["U"] <= last <= ev["u"] or ev["U"] == last + 1
                    applied += 1


async def test_rest_depth_limits_and_weights() -> None:
    """binance-usdm-futures.md §6.1 limits 5…1000 with weights 2/2/2/2/5/10/20; default 500;
    §6.2 exchangeInfo; 429/418 over the (configurable, default 2400) weight limit."""
    async with running(config(V, rest_weight_limit=50)) as (_sim, urls):  # noqa: SIM117
        async with httpx.AsyncClient(base_url=urls.rest(V)) as http:
            used = 0
            for limit, weight in ((5, 2), (10, 2), (20, 2), (50, 2), (100, 5), (500, 10),
                                  (None, 10)):  # fmt: skip
                params: dict[str, Any] = {"symbol": "ETHUSDT"}
                if limit is not None:
                    params["limit"] = limit
                r = await http.get("/fapi/v1/depth", params=params)
                used += weight
                assert r.status_code == 200, r.text
                assert r.headers["X-MBX-USED-WEIGHT-1M"] == str(used)
                assert 0 < len(r.json()["bids"]) <= (limit or 500)
            r = await http.get("/fapi/v1/depth", params={"symbol": "ETHUSDT", "limit": 7})
            assert r.status_code == 400
            r = await http.get("/fapi/v1/depth", params={"symbol": "ETHUSDT", "limit": 1000})
            assert r.status_code == 429 and "Retry-After" in r.headers
            r = await http.get("/fapi/v1/exchangeInfo")
            assert r.status_code == 418
    async with running(config(V)) as (_sim, urls):  # noqa: SIM117
        async with httpx.AsyncClient(base_url=urls.rest(V)) as http:
            info = (await http.get("/fapi/v1/exchangeInfo")).json()
            assert info["rateLimits"][0]["limit"] == 2400
            sym = info["symbols"][0]
            assert sym["symbol"] == "BTCUSDT" and sym["contractType"] == "PERPETUAL"
            assert sym["filters"][0]["tickSize"] == "0.1"


async def test_connector_fields_switch() -> None:
    """binance-usdm-futures.md §5 CM-UM integration fields `st`/`ps` can be switched on."""
    async with running(config(V, usdm_cm_fields=True)) as (_sim, urls):
        url = f"{urls.ws(V)}/public/ws/btcusdt@bookTicker"
        async with open_websocket_url(url) as ws:
            m = orjson.loads(await ws.get_message())
            assert m["st"] == 1 and m["ps"] == "BTCUSDT"


async def test_agg_trades_aggregate_per_100ms() -> None:
    """binance-usdm-futures.md §5.1: aggTrade every 100 ms, fills of one price and taker side
    aggregated; ids `a` consecutive, `f`..`l` cover consecutive trade ids, T <= E."""
    async with running(config(V, rate=800)) as (_sim, urls):
        url = f"{urls.ws(V)}/market/ws/btcusdt@aggTrade"
        async with open_websocket_url(url) as ws:
            msgs = [orjson.loads(m) for m in await collect(ws, 40)]
    assert [m["a"] for m in msgs] == list(range(msgs[0]["a"], msgs[0]["a"] + len(msgs)))
    for a, b in itertools.pairwise(msgs):
        assert b["f"] == a["l"] + 1 and a["f"] <= a["l"] and a["T"] <= a["E"]
        if a["E"] == b["E"]:  # same window: neighbours differ in price or side
            assert (a["p"], a["m"]) != (b["p"], b["m"])
    assert len({m["E"] for m in msgs}) < len(msgs)
