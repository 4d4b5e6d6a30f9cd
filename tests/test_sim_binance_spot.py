"""Conformance of the simulator's Binance spot JSON venue (``shared/protocols/binance-spot.md``)."""

from __future__ import annotations

import itertools
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from replay.sim import Fault
from tests.test_sim_support import (
    CloseConnection,
    Ping,
    RawClient,
    collect,
    config,
    recv_json,
    recv_reply,
    request,
    running,
)

V = "binance-spot"
DOC_KEYS = {
    "trade": ["e", "E", "s", "t", "p", "q", "T", "m", "M"],
    "aggTrade": ["e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"],
    "bookTicker": ["u", "s", "b", "B", "a", "A"],
    "depthUpdate": ["e", "E", "s", "U", "u", "b", "a"],
    "partial": ["lastUpdateId", "bids", "asks"],
    "kline": ["e", "E", "s", "k"],
    "k": ["t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q", "B"],
    "24hrMiniTicker": ["e", "E", "s", "c", "o", "h", "l", "v", "q"],
    "24hrTicker": ["e", "E", "s", "p", "P", "w", "x", "c", "Q", "b", "B", "a", "A", "o", "h",
                   "l", "v", "q", "O", "C", "F", "L", "n"],
    "1hTicker": ["e", "E", "s", "p", "P", "o", "h", "l", "c", "w", "v", "q", "O", "C", "F", "L",
                 "n"],
    "avgPrice": ["e", "E", "s", "i", "w", "T"],
}  # fmt: skip
EIGHT = re.compile(r"^\d+\.\d{8}$")


async def test_raw_stream_payloads_match_documented_shapes() -> None:
    """binance-spot.md §2 raw `/ws/<stream>` (bare payloads) and §6 field order/decimals."""
    async with running(config(V)) as (_sim, urls):
        streams = ["btcusdt@trade", "btcusdt@aggTrade", "btcusdt@bookTicker", "btcusdt@depth@100ms",
                   "btcusdt@depth5@100ms", "btcusdt@kline_1s", "btcusdt@miniTicker",
                   "btcusdt@ticker", "btcusdt@ticker_1h", "btcusdt@avgPrice"]  # fmt: skip
        async with open_websocket_url(f"{urls.ws(V)}/ws/{'/'.join(streams)}") as ws:
            seen: dict[str, Any] = {}
            with trio.fail_after(10):
                while len(seen) < 9:
                    msg = orjson.loads(await ws.get_message())
                    assert "stream" not in msg
                    kind = msg.get("e") or ("partial" if "lastUpdateId" in msg else "bookTicker")
                    seen.setdefault(kind, msg)
        for kind, msg in seen.items():
            assert list(msg) == DOC_KEYS[kind], kind
        assert list(seen["kline"]["k"]) == DOC_KEYS["k"]
        assert EIGHT.match(seen["trade"]["p"]) and EIGHT.match(seen["trade"]["q"])
        assert seen["trade"]["s"] == "BTCUSDT" and len(str(seen["trade"]["E"])) == 13
        assert EIGHT.match(seen["bookTicker"]["b"])


async def test_combined_stream_wrapper_and_set_property() -> None:
    """binance-spot.md §2 `/stream?streams=a/b` wrapper and §5 SET_PROPERTY/GET_PROPERTY."""
    async with running(config(V)) as (_sim, urls):
        url = f"{urls.ws(V)}/stream?streams=btcusdt@trade/ethusdt@trade"
        async with open_websocket_url(url) as ws:
            msgs = [orjson.loads(m) for m in await collect(ws, 5)]
            assert all(list(m) == ["stream", "data"] for m in msgs)
            assert {m["stream"] for m in msgs} <= {"btcusdt@trade", "ethusdt@trade"}
            assert all(m["data"]["s"] == m["stream"].split("@")[0].upper() for m in msgs)
            prop = {"method": "GET_PROPERTY", "params": ["combined"], "id": 2}
            assert await request(ws, prop) == {"result": True, "id": 2}
            set_false = {"method": "SET_PROPERTY", "params": ["combined", False], "id": 5}
            assert await request(ws, set_false) == {"result": None, "id": 5}
            assert await request(ws, prop) == {"result": False, "id": 2}
            raw = orjson.loads((await collect(ws, 1))[0])
            assert raw["e"] == "trade"
        async with open_websocket_url(f"{urls.ws(V)}/stream") as ws:
            sub = {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 1}
            assert await request(ws, sub) == {"result": None, "id": 1}
            assert orjson.loads((await collect(ws, 1))[0])["stream"] == "btcusdt@aggTrade"


async def test_subscribe_unsubscribe_list() -> None:
    """binance-spot.md §5 SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS on an empty `/ws`."""
    async with running(config(V)) as (_sim, urls), open_websocket_url(f"{urls.ws(V)}/ws") as ws:
        sub = {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "btcusdt@depth"], "id": 1}
        assert await request(ws, sub) == {"result": None, "id": 1}
        lst = {"method": "LIST_SUBSCRIPTIONS", "id": 3}
        assert await request(ws, lst) == {
            "result": ["btcusdt@aggTrade", "btcusdt@depth"],
            "id": 3,
        }
        unsub = {"method": "UNSUBSCRIBE", "params": ["btcusdt@depth"], "id": 312}
        assert await request(ws, unsub) == {"result": None, "id": 312}
        assert await request(ws, lst) == {"result": ["btcusdt@aggTrade"], "id": 3}
        msg = orjson.loads((await collect(ws, 1))[0])
        assert msg["e"] == "aggTrade"


ERROR_CASES = [
    ('{"method":"GET_PROPERTY","params":["foo"],"id":7}',
     {"error": {"code": 0, "msg": "Unknown property"}, "id": 7}),
    ('{"method":"SET_PROPERTY","params":["combined","yes"],"id":8}',
     {"error": {"code": 1, "msg": "Invalid value type: expected Boolean"}, "id": 8}),
    ('{"method":"SET_PROPERTY","params":[1,true],"id":9}',
     {"error": {"code": 2, "msg": "Invalid request: property name must be a string"}, "id": 9}),
    ('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1.5}',
     {"error": {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"},
      "id": None}),
    ('{"method":"SUBSCRIBE","params":["btcusdt@trade"]}',
     {"error": {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"},
      "id": None}),
    ('{"method":"GET_PROPERTY","params":["combined","x"],"id":4}',
     {"error": {"code": 2, "msg": "Invalid request: too many parameters"}, "id": 4}),
    ('{"params":["btcusdt@trade"],"id":1}',
     {"error": {"code": 2, "msg": "Invalid request: missing field `method` at line 1 column 35"},
      "id": None}),
    ('{"method":"SUBSCRIBEX","params":[],"id":1}',
     {"error": {"code": 2, "msg": "Invalid request: unknown variant `SUBSCRIBEX`, expected one of "
                "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` "
                "at line 1 column 22"}, "id": None}),
    ('{"method":"SUBSCRIBE","params":["btcusdt@nonsense"],"id":11}',
     {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 11}),
    ('{"method":"SUBSCRIBE","params":["!ticker@arr"],"id":12}',
     {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 12}),
    ('{"method":"SUBSCRIBE","params":["!bookTicker"],"id":13}',
     {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 13}),
    ('{"method":"SUBSCRIBE","params":["BTCUSDT@trade"],"id":14}',
     {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 14}),
    ('{"method":"SUBSCRIBE","params":["xyzusdt@trade"],"id":15}',
     {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 15}),
    ('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":"' + "a" * 37 + '"}',
     {"error": {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"},
      "id": None}),
    ('{"method": "SUBSCRIBE", "params": [', {"error": {"code": 3, "msg":
     "Invalid JSON: expected value at line 1 column 36"}}),
]  # fmt: skip


async def test_error_table() -> None:
    """binance-spot.md §5 error table (codes 0/1/2/3), observed `invalid stream`, and §6.7/§6.9
    retired `!ticker@arr` / `!bookTicker` refused like any invalid stream."""
    async with running(config(V, msg_rate_limit=0)) as (_sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws(V)}/ws") as ws:
            for text, expected in ERROR_CASES:
                await ws.send_message(text)
                assert await recv_reply(ws) == expected, text
            # the connection survived invalid JSON on spot; ids: signed int, string, null
            for rid in (-5, "abcXYZ09", None):
                ok = await request(
                    ws, {"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": rid}
                )
                assert ok == {"result": None, "id": rid}


async def test_stream_cap() -> None:
    """binance-spot.md §4 1024 streams per connection; the reply beyond is (U): code 4 default."""
    async with running(config(V, max_streams=3)) as (_sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws(V)}/ws") as ws:
            names = ["btcusdt@trade", "ethusdt@trade", "solusdt@trade"]
            sub = {"method": "SUBSCRIBE", "params": names, "id": 1}
            assert await request(ws, sub) == {"result": None, "id": 1}
            more = {"method": "SUBSCRIBE", "params": ["btcusdt@depth"], "id": 2}
            assert await request(ws, more) == {
                "error": {"code": 4, "msg": "Too many subscriptions"},
                "id": 2,
            }
    async with running(config(V)) as (sim, _urls):  # the default cap is 1024
        assert sim.venues[V].handler.max_streams == 1024


async def test_time_unit_microsecond() -> None:
    """binance-spot.md §2 `timeUnit=MICROSECOND` switches E/T (and kline t/T) to µs."""
    async with running(config(V)) as (_sim, urls):
        for unit, digits, n in (("MICROSECOND", 16, 2), ("microsecond", 16, 1),
                                ("MILLISECOND", 13, 1)):  # fmt: skip
            url = f"{urls.ws(V)}/stream?streams=btcusdt@trade/btcusdt@kline_1s&timeUnit={unit}"
            async with open_websocket_url(url) as ws:
                kinds: set[str] = set()
                with trio.fail_after(10):
                    while len(kinds) < n:
                        m = orjson.loads(await ws.get_message())
                        d = m["data"]
                        kinds.add(d["e"])
                        assert len(str(d["E"])) == digits
                        if d["e"] == "trade":
                            assert len(str(d["T"])) == digits
                        else:
                            assert len(str(d["k"]["t"])) == digits
        with pytest.raises(ConnectionRejected):
            async with open_websocket_url(f"{urls.ws(V)}/ws/btcusdt@trade?timeUnit=SECOND"):
                pass


async def test_message_rate_limit_closes_1008() -> None:
    """binance-spot.md §4: > 5 incoming messages/s (pings, pongs, text) => close 1008
    `Too many requests` [observed]."""
    async with running(config(V)) as (sim, urls):
        client = RawClient()
        assert await client.connect(f"{urls.ws(V)}/ws")
        for i in range(3):
            await client.ping(b"x")
            await client.send_text(f'{{"method":"LIST_SUBSCRIPTIONS","id":{i}}}')
        close, _ = await client.until_close()
        assert isinstance(close, CloseConnection), (close, sim.statistics())
        assert (close.code, close.reason) == (1008, "Too many requests")
        await client.aclose()
        assert sim.statistics().rate_limit_closes == 1
        # five per second is fine
        async with open_websocket_url(f"{urls.ws(V)}/ws") as ws:
            for i in range(5):
                assert (await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": i}))["id"] == i
            await trio.sleep(1.05)
            for i in range(5):
                assert (await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": i}))["id"] == i


async def test_connection_attempt_limit() -> None:
    """binance-spot.md §4 300 connection attempts / 5 min / IP (status (U), 429 default)."""
    async with running(config(V, conn_attempt_limit=2)) as (sim, urls):
        for _ in range(2):
            async with open_websocket_url(f"{urls.ws(V)}/ws"):
                pass
        with pytest.raises(ConnectionRejected) as exc:
            async with open_websocket_url(f"{urls.ws(V)}/ws"):
                pass
        assert exc.value.status_code == 429
        assert sim.statistics().handshakes_refused == 1


async def test_heartbeat_ping_every_20s_and_pong_timeout_60s(autojump_clock: Any) -> None:
    """binance-spot.md §3: ping frame every 20 s with a payload; no pong within 60 s => close;
    unsolicited pongs do not keep the connection alive (MockClock)."""
    del autojump_clock
    async with running(config(V, rate=0, tick=1000.0)) as (_sim, urls):
        client = RawClient()
        assert await client.connect(f"{urls.ws(V)}/ws")
        t0 = trio.current_time()
        times = []
        for _ in range(3):
            ev = await client.next_event(timeout=100)
            assert isinstance(ev, Ping) and ev.payload
            times.append(trio.current_time() - t0)
            await client.pong(bytes(ev.payload))
        assert [round(t) for t in times] == [20, 40, 60]
        # now stop answering, but send unsolicited (empty) pongs every 10 s
        t1 = trio.current_time()
        with trio.fail_after(200):
            while True:
                with trio.move_on_after(10):
                    ev = await client.next_event(timeout=100)
                    if isinstance(ev, CloseConnection):
                        break
                    continue
                await client.pong(b"")
        assert isinstance(ev, CloseConnection)
        waited = trio.current_time() - t1
        assert 75 <= waited <= 85  # next ping at +20 s, then 60 s without a matching pong
        await client.aclose()


async def test_answering_pings_keeps_connection_and_24h_limit(autojump_clock: Any) -> None:
    """binance-spot.md §3: a client answering pings stays connected; forced disconnect at 24 h
    (close code/reason (U), configurable)."""
    del autojump_clock
    cfg = config(V, rate=0, tick=1000.0, ping_interval=3600.0, pong_timeout=7200.0)
    async with running(cfg) as (sim, urls):
        t0 = trio.current_time()
        async with open_websocket_url(f"{urls.ws(V)}/ws") as ws:
            with pytest.raises(ConnectionClosed) as exc:
                await ws.get_message()
        assert round(trio.current_time() - t0) == 86_400
        assert _code(exc.value) == 1000
        assert sim.statistics().max_age_closes == 1


async def test_server_shutdown_raw_and_combined() -> None:
    """binance-spot.md §3 `serverShutdown`: raw `{"e":"serverShutdown","E":…}`, combined under
    `!serverShutdown`."""
    async with (
        running(config(V, rate=0)) as (sim, urls),
        open_websocket_url(f"{urls.ws(V)}/ws") as raw,
        open_websocket_url(f"{urls.ws(V)}/stream") as comb,
    ):
        await trio.sleep(0.1)
        sim.inject(Fault("server_shutdown", duration=0.2, code=1001, reason="shutdown"))
        m1, m2 = await recv_json(raw), await recv_json(comb)
        assert list(m1) == ["e", "E"] and m1["e"] == "serverShutdown"
        assert m2["stream"] == "!serverShutdown" and m2["data"]["e"] == "serverShutdown"
        with pytest.raises(ConnectionClosed) as exc:
            await raw.get_message()
        assert _code(exc.value) == 1001


async def _depth_events(ws: Any, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with trio.fail_after(15):
        while len(out) < n:
            m = orjson.loads(await ws.get_message())
            if m.get("e") == "depthUpdate":
                out.append(m)
    return out


async def test_rest_snapshot_lines_up_with_diff_stream() -> None:
    """binance-spot.md §6.12 diff chain (U = previous u + 1) and §8 book procedure: buffer,
    snapshot, drop u <= lastUpdateId, first event has U <= lastUpdateId + 1 <= u; the local
    book then matches every partial-depth view with the same update id."""
    async with running(config(V, rate=400)) as (_sim, urls):
        url = f"{urls.ws(V)}/ws/btcusdt@depth@100ms/btcusdt@depth5@100ms"
        async with open_websocket_url(url) as ws, httpx.AsyncClient() as http:
            first = await _depth_events(ws, 1)
            r = await http.get(f"{urls.rest(V)}/api/v3/depth", params={"symbol": "BTCUSDT",
                                                                        "limit": 1000})  # fmt: skip
            snap = r.json()
            assert list(snap) == ["lastUpdateId", "bids", "asks"]
            assert snap["lastUpdateId"] >= first[0]["U"]
            book: dict[bool, dict[Decimal, Decimal]] = {True: {}, False: {}}
            for side, key in ((True, "bids"), (False, "asks")):
                for p, q in snap[key]:
                    book[side][Decimal(p)] = Decimal(q)
            last = snap["lastUpdateId"]
            prev_u: int | None = None
            applied = 0
            checked = 0
            with trio.fail_after(20):
                while applied < 30 or checked < 3:
                    m = orjson.loads(await ws.get_message())
                    if "lastUpdateId" in m:
                        if m["lastUpdateId"] == last and applied:
                            bids = sorted(book[True].items(), reverse=True)[:5]
                            asks = sorted(book[False].items())[:5]
                            assert [[Decimal(p), Decimal(q)] for p, q in m["bids"]] == [
                                [p, q] for p, q in bids
                            ]
                            assert [[Decimal(p), Decimal(q)] for p, q in m["asks"]] == [
                                [p, q] for p, q in asks
                            ]
                            checked += 1
                        continue
                    if prev_u is not None:
                        assert m["U"] == prev_u + 1
                    prev_u = m["u"]
                    if m["u"] <= last:
                        continue
                    if not applied:
                        assert m["U"] <= last + 1 <= m["u"]
                    for side, key in ((True, "b"), (False, "a")):
                        for p, q in m[key]:
                            if Decimal(q) == 0:
                                book[side].pop(Decimal(p), None)
                            else:
                                book[side][Decimal(p)] = Decimal(q)
                    last = m["u"]
                    applied += 1
                    assert max(book[True]) < min(book[False])


async def test_trade_and_agg_ids_increase() -> None:
    """binance-spot.md §6.1/§6.2 trade ids increase by one; aggTrade f..l covers them."""
    async with running(config(V, rate=500)) as (_sim, urls):
        url = f"{urls.ws(V)}/stream?streams=btcusdt@trade/btcusdt@aggTrade"
        async with open_websocket_url(url) as ws:
            msgs = [orjson.loads(m)["data"] for m in await collect(ws, 60)]
    trades = [m["t"] for m in msgs if m["e"] == "trade"]
    aggs = [m for m in msgs if m["e"] == "aggTrade"]
    assert trades == list(range(trades[0], trades[0] + len(trades)))
    assert [a["a"] for a in aggs] == list(range(aggs[0]["a"], aggs[0]["a"] + len(aggs)))
    for a, b in itertools.pairwise(aggs):
        assert a["f"] <= a["l"] and b["f"] == a["l"] + 1


async def test_rest_depth_weights_and_limits() -> None:
    """binance-spot.md §7.1 limit default 100 (max 5000) with weights 5/25/50/250; §7.3
    `X-MBX-USED-WEIGHT-1M`, 429 + Retry-After over the limit, 418 when continuing."""
    async with running(config(V, rest_weight_limit=400)) as (_sim, urls):  # noqa: SIM117
        async with httpx.AsyncClient(base_url=urls.rest(V)) as http:
            used = 0
            for limit, weight in ((None, 5), (100, 5), (101, 25), (500, 25), (1000, 50),
                                  (5000, 250)):  # fmt: skip
                params: dict[str, Any] = {"symbol": "BTCUSDT"}
                if limit is not None:
                    params["limit"] = limit
                r = await http.get("/api/v3/depth", params=params)
                used += weight
                assert r.status_code == 200
                assert r.headers["X-MBX-USED-WEIGHT-1M"] == str(used)
            assert (
                len((await http.get("/api/v3/depth", params={"symbol": "ETHUSDT"})).json()["bids"])
                == 100
            )
            r = await http.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 5000})
            assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
            assert r.json()["code"] == -1003
            r = await http.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 5})
            assert r.status_code == 418 and int(r.headers["Retry-After"]) > 0
            r = await http.get("/api/v3/depth", params={"symbol": "NOPE"})
            assert r.status_code == 418
    async with running(config(V)) as (_sim, urls):  # noqa: SIM117
        async with httpx.AsyncClient(base_url=urls.rest(V)) as http:
            r = await http.get("/api/v3/depth", params={"symbol": "NOPE"})
            assert r.status_code == 400 and r.json()["code"] == -1121
            r = await http.get("/api/v3/exchangeInfo")
            info = r.json()
            assert r.headers["X-MBX-USED-WEIGHT-1M"] == "25"  # 5 (depth) + 20
            assert info["rateLimits"][0]["limit"] == 6000
            assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
            assert info["symbols"][0]["filters"][0]["tickSize"] == "0.01000000"


async def test_ledger_records_exactly_what_the_client_received(tmp_path: Path) -> None:
    """README simulator section: ledger = one NDJSON line per market message as sent (combined
    wrapper included); dropped messages absent, duplicated ones twice."""
    path = tmp_path / "ledger.ndjson"
    async with running(config(V, rate=300, ledger_path=str(path))) as (sim, urls):
        url = f"{urls.ws(V)}/stream?streams=btcusdt@trade/btcusdt@depth@100ms"
        async with open_websocket_url(url) as ws:
            got = list(await collect(ws, 10))
            conn = sim.connections(V)[0].conn
            sim.inject(Fault("drop", count=2), conn=conn)
            sim.inject(Fault("duplicate", count=1), conn=conn)
            got += await collect(ws, 20)
        await trio.sleep(0.05)
        sim.ledger.flush()  # type: ignore[union-attr]
        stats = sim.statistics()
    lines = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    mine = [x for x in lines if x["conn"] == conn]
    assert [x["payload"] for x in mine[: len(got)]] == got
    assert all(set(x) == {"venue", "stream", "conn", "sent_ns", "payload"} for x in mine)
    assert all(orjson.loads(x["payload"])["stream"] == x["stream"] for x in mine)
    assert stats.messages_dropped >= 2 and stats.messages_duplicated == 1
    assert any(a == b for a, b in itertools.pairwise(got))  # the duplicate


def _code(exc: ConnectionClosed) -> int | None:
    return exc.reason.code if exc.reason is not None else None


def _reason(exc: ConnectionClosed) -> str | None:
    return exc.reason.reason if exc.reason is not None else None


async def _max_gap(ws: Any, span: float) -> float:
    """The longest pause between messages received during ``span`` seconds."""
    last = trio.current_time()
    gap = 0.0
    with trio.move_on_after(span):
        while True:
            await ws.get_message()
            now = trio.current_time()
            gap, last = max(gap, now - last), now
    return max(gap, trio.current_time() - last)


async def test_faults_close_malformed_extra_truncate_refuse() -> None:
    """README simulator section, common faults: close with a code, malformed frame, unknown
    extra fields, truncated payload, refused handshake, delay and stall."""
    async with running(config(V, rate=300)) as (sim, urls):
        async with open_websocket_url(f"{urls.ws(V)}/ws/btcusdt@trade") as ws:
            await collect(ws, 1)
            sim.inject(Fault("extra_fields", count=1))
            extra = orjson.loads((await collect(ws, 1, pred=lambda m: "zzUnknown" in m))[0])
            assert extra["e"] == "trade" and extra["zzUnknown"] == "sim"
            sim.inject(Fault("truncate", count=1))
            cut = (await collect(ws, 1, pred=lambda m: not m.endswith("}")))[0]
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(cut)
            sim.inject(Fault("delay", duration=0.3))
            assert await _max_gap(ws, 0.6) >= 0.25
            sim.inject(Fault("close", code=4000, reason="bye"))
            with pytest.raises(ConnectionClosed) as exc:
                await collect(ws, 1000)
            assert (_code(exc.value), _reason(exc.value)) == (4000, "bye")
        client = RawClient()
        assert await client.connect(f"{urls.ws(V)}/ws/btcusdt@trade")
        sim.inject(Fault("malformed"), conn=max(c.conn for c in sim.connections(V)))
        close, _ = await client.until_close()  # the client's parser rejects reserved opcode 3
        assert isinstance(close, CloseConnection) and close.code == 1002
        await client.aclose()
        sim.inject(Fault("refuse_handshake", status=503, body="maintenance", count=1))
        with pytest.raises(ConnectionRejected) as rej:
            async with open_websocket_url(f"{urls.ws(V)}/ws"):
                pass
        assert rej.value.status_code == 503 and rej.value.body == b"maintenance"
        async with open_websocket_url(f"{urls.ws(V)}/ws/btcusdt@trade") as ws:
            await collect(ws, 1)
            sim.inject(Fault("stall", duration=0.5))
            assert await _max_gap(ws, 0.8) >= 0.4
        stats = sim.statistics()
        assert stats.closes_by_reason.get("fault close") == 1
        assert stats.connections_total >= 3


async def test_ignore_pongs_makes_the_server_close(autojump_clock: Any) -> None:
    """README simulator section "stop answering pings": with `ignore_pongs` the server
    disregards the client's pongs and closes at the pong timeout; with `stop_pings` no ping
    frames arrive at all."""
    del autojump_clock
    async with running(config(V, rate=0, tick=1000.0)) as (sim, urls):
        async with open_websocket_url(f"{urls.ws(V)}/ws") as ws:
            sim.inject(Fault("ignore_pongs"))
            t0 = trio.current_time()
            with pytest.raises(ConnectionClosed) as exc:
                await ws.get_message()
            assert round(trio.current_time() - t0) == 80
            assert _code(exc.value) == 1008
        assert sim.statistics().pong_timeout_closes == 1
        client = RawClient()
        assert await client.connect(f"{urls.ws(V)}/ws")
        sim.inject(Fault("stop_pings", duration=100))
        with pytest.raises(trio.TooSlowError):
            await client.next_event(timeout=90)
        await client.aclose()


async def test_stale_rest_snapshot_fault() -> None:
    """binance-spot.md §8 step 4 ("snapshot older than the first event => fetch again"): the
    `stale_snapshot` fault serves a snapshot from `duration` s ago once."""
    async with running(config(V, rate=400)) as (sim, urls):
        await trio.sleep(1.3)  # let the simulator remember a snapshot
        async with open_websocket_url(f"{urls.ws(V)}/ws/btcusdt@depth@100ms") as ws:
            first = (await _depth_events(ws, 1))[0]
            sim.inject(Fault("stale_snapshot", duration=1.0))
            async with httpx.AsyncClient(base_url=urls.rest(V)) as http:
                old = (await http.get("/api/v3/depth", params={"symbol": "BTCUSDT"})).json()
                new = (await http.get("/api/v3/depth", params={"symbol": "BTCUSDT"})).json()
        assert old["lastUpdateId"] < first["U"] <= new["lastUpdateId"] + 1


async def test_scheduled_fault_from_config() -> None:
    """README simulator section: faults can be scheduled (`Fault.at`, seconds after start)."""
    faults = (Fault("close", at=0.4, code=4001, reason="scheduled"),)
    async with running(config(V, rate=50, faults=faults)) as (sim, urls):
        async with open_websocket_url(f"{urls.ws(V)}/ws/btcusdt@trade") as ws:
            with pytest.raises(ConnectionClosed) as exc:
                await collect(ws, 10_000)
        assert (_code(exc.value), _reason(exc.value)) == (4001, "scheduled")
        assert 0.35 <= trio.current_time() - sim._t0 <= 1.0


async def test_newer_spot_streams() -> None:
    """binance-spot.md §6.13 newer streams: `@referencePrice` (no `E`; `t` engine time) and
    `@blockTrade`, plus §6.5/§6.8 all-market arrays."""
    async with running(config(V, rate=3000)) as (_sim, urls):
        names = "btcusdt@referencePrice/btcusdt@blockTrade/!miniTicker@arr/!ticker_4h@arr"
        async with open_websocket_url(f"{urls.ws(V)}/stream?streams={names}") as ws:
            seen: dict[str, Any] = {}
            with trio.fail_after(10):
                while len(seen) < 4:
                    m = orjson.loads(await ws.get_message())
                    seen.setdefault(m["stream"], m["data"])
    assert list(seen["btcusdt@referencePrice"]) == ["e", "s", "r", "t"]
    assert list(seen["btcusdt@blockTrade"]) == ["e", "E", "s", "t", "p", "q", "T", "m"]
    arr = seen["!miniTicker@arr"]
    assert isinstance(arr, list) and {x["e"] for x in arr} == {"24hrMiniTicker"}
    assert {x["e"] for x in seen["!ticker_4h@arr"]} == {"4hTicker"}


async def test_truncated_frame_then_tcp_drop() -> None:
    """README simulator section, malformed/truncated frames: half a WebSocket frame arrives,
    then the TCP connection ends (the client sees an abnormal closure, 1006)."""
    async with running(config(V, rate=300)) as (sim, urls):
        async with open_websocket_url(f"{urls.ws(V)}/ws/btcusdt@trade") as ws:
            await collect(ws, 1)
            sim.inject(Fault("truncate_frame"))
            with pytest.raises(ConnectionClosed) as exc:
                await collect(ws, 100_000)
        assert _code(exc.value) == 1006
        assert sim.statistics().closes_by_reason.get("fault truncated frame") == 1
