"""Conformance of the simulator's Bybit V5 public venues (``shared/protocols/bybit-v5.md``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    open_websocket_url,
)

from replay.sim import Fault, trio_clock
from tests.test_sim_support import config, recv_json, running

SYM = {"spot": "BTCUSDT", "linear": "BTCUSDT", "inverse": "BTCUSD", "option": "BTC-27MAR26-70000-C"}
CATS = ["spot", "linear", "inverse", "option"]


async def send(ws: WebSocketConnection, obj: Any) -> None:
    await ws.send_message(orjson.dumps(obj).decode())


async def reply(ws: WebSocketConnection, timeout: float = 5.0) -> Any:
    """Next message that is not market data (no `topic`)."""
    with trio.fail_after(timeout):
        while True:
            m = orjson.loads(await ws.get_message())
            if "topic" not in m:
                return m


@pytest.mark.parametrize("cat", CATS)
async def test_subscribe_ack_and_pong_shapes(cat: str) -> None:
    """bybit-v5.md §2.1 subscribe acknowledgements and §2.2 pong shapes per category."""
    venue = f"bybit-{cat}"
    async with running(config(venue)) as (_sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws(venue)}/v5/public/{cat}") as ws:
            topic = f"tickers.{SYM[cat]}"
            await send(ws, {"req_id": "10001", "op": "subscribe", "args": [topic]})
            ack = await reply(ws)
            await send(ws, {"req_id": "100001", "op": "ping"})
            pong = await reply(ws)
            await send(ws, {"op": "ping"})
            pong2 = await reply(ws)
    if cat == "spot":
        assert list(ack) == ["success", "ret_msg", "conn_id", "req_id", "op"]
        assert ack["ret_msg"] == "subscribe" and ack["req_id"] == "10001"
        assert list(pong2) == ["success", "ret_msg", "conn_id", "op"]
        assert pong2["ret_msg"] == "pong" and pong2["op"] == "ping"
    elif cat in ("linear", "inverse"):
        assert list(ack) == ["success", "ret_msg", "conn_id", "req_id", "op"]
        assert ack["ret_msg"] == "" and ack["success"] is True
        assert list(pong2) == ["success", "ret_msg", "conn_id", "req_id", "op"]
        assert pong2["req_id"] == "" and pong["req_id"] == "100001"
    else:
        assert list(ack) == ["success", "conn_id", "data", "type"]
        assert ack["data"] == {"failTopics": [], "successTopics": [topic]}
        assert ack["type"] == "COMMAND_RESP"
        assert list(pong) == ["args", "op"] and pong["op"] == "pong"
        assert pong["args"][0].isdigit() and len(pong["args"][0]) == 13


async def test_handshake_path_per_category() -> None:
    """bybit-v5.md §1: a category is served on `/v5/public/<category>` only."""
    async with running(config("bybit-linear")) as (_sim, urls):
        with pytest.raises(ConnectionRejected):
            async with open_websocket_url(f"{urls.ws('bybit-linear')}/v5/public/spot"):
                pass


async def test_subscription_failures() -> None:
    """bybit-v5.md §2.1 [observed] failures: spot `args size >10`, unknown topic `error:handler
    not found,topic:…`; §3 the 21,000-char args budget and the option 2000-args cap (texts (U))."""
    async with running(config("bybit-spot", bybit_args_chars=60)) as (_sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws('bybit-spot')}/v5/public/spot") as ws:
            await send(ws, {"op": "subscribe", "args": [f"kline.{i}.BTCUSDT" for i in range(11)]})
            err = await reply(ws)
            assert err["success"] is False and err["ret_msg"] == "args size >10"
            assert list(err) == ["success", "ret_msg", "conn_id", "op"]
            await send(ws, {"op": "subscribe", "args": ["dcp.future"], "req_id": "dcp.future"})
            err = await reply(ws)
            assert err == {
                "success": False,
                "ret_msg": "error:handler not found,topic:dcp.future",
                "conn_id": err["conn_id"],
                "req_id": "dcp.future",
                "op": "subscribe",
            }
            await send(ws, {"op": "subscribe", "args": ["orderbook.50.BTCUSDT", "tickers.BTCUSDT"]})
            assert (await reply(ws))["success"] is True
            await send(ws, {"op": "subscribe", "args": ["publicTrade.BTCUSDT", "kline.1.ETHUSDT"]})
            err = await reply(ws)
            assert err["success"] is False and err["ret_msg"] == "args length exceeds 21000"
    async with running(config("bybit-option", bybit_option_args=2)) as (_sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws('bybit-option')}/v5/public/option") as ws:
            topics = [f"tickers.{s}" for s in ("BTC-27MAR26-70000-C", "BTC-27MAR26-70000-P")]
            await send(ws, {"op": "subscribe", "args": [*topics, "tickers.NOPE"]})
            ack = await reply(ws)
            assert ack["success"] is False
            assert ack["data"] == {"failTopics": ["tickers.NOPE"], "successTopics": topics}
            await send(ws, {"op": "subscribe", "args": ["orderbook.25.ETH-27MAR26-3500-C"]})
            ack = await reply(ws)
            assert ack["success"] is False and ack["ret_msg"] == "args size exceeds 2000"


class LocalBook:
    def __init__(self) -> None:
        self.b: dict[Decimal, Decimal] = {}
        self.a: dict[Decimal, Decimal] = {}
        self.u = 0
        self.seq = 0

    def apply(self, msg: dict[str, Any]) -> None:
        d = msg["data"]
        if msg["type"] == "snapshot":
            self.b, self.a = {}, {}
        for side, key in ((self.b, "b"), (self.a, "a")):
            for p, q in d[key]:
                if Decimal(q) == 0:
                    side.pop(Decimal(p), None)
                else:
                    side[Decimal(p)] = Decimal(q)
        self.u, self.seq = d["u"], d.get("seq", 0)  # option books carry no seq

    def levels(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        return sorted(self.b.items(), reverse=True), sorted(self.a.items())


@pytest.mark.parametrize("cat", ["linear", "option"])
async def test_orderbook_snapshot_then_deltas_and_rest_alignment(cat: str) -> None:
    """bybit-v5.md §4.1: snapshot first, then deltas with `u` +1 and `seq` increasing (size "0"
    deletes); a later subscriber's snapshot equals the book rebuilt from deltas at the same
    `u`; §5.1 the REST snapshot's `u` belongs to the deepest (1000; option 100) stream."""
    venue = f"bybit-{cat}"
    depth = 100 if cat == "option" else 1000
    topic = f"orderbook.{depth}.{SYM[cat]}"
    async with running(config(venue, rate=600)) as (_sim, urls):
        url = f"{urls.ws(venue)}/v5/public/{cat}"
        async with open_websocket_url(url) as ws1, httpx.AsyncClient() as http:
            await send(ws1, {"op": "subscribe", "args": [topic]})
            await reply(ws1)
            book = LocalBook()
            history: dict[int, Any] = {}
            first = await recv_json(ws1)
            assert first["type"] == "snapshot" and first["topic"] == topic
            book.apply(first)
            history[book.u] = book.levels()
            for _ in range(8):
                m = await recv_json(ws1)
                assert m["type"] == "delta"
                assert m["data"]["u"] == book.u + 1
                assert cat == "option" or m["data"]["seq"] > book.seq
                book.apply(m)
                history[book.u] = book.levels()
            async with open_websocket_url(url) as ws2:
                await send(ws2, {"op": "subscribe", "args": [topic]})
                await reply(ws2)
                snap = await recv_json(ws2)
            assert snap["type"] == "snapshot"
            r = await http.get(
                f"{urls.rest(venue)}/v5/market/orderbook",
                params={
                    "category": cat,
                    "symbol": SYM[cat],
                    "limit": 25 if cat == "option" else 1000,
                },
            )
            rest = r.json()["result"]
            assert list(rest) == ["s", "a", "b", "ts", "u", "seq", "cts"]
            assert list(first) == (
                ["id", "topic", "ts", "data", "type"]
                if cat == "option"
                else ["topic", "type", "ts", "data", "cts"]
            )
            with trio.fail_after(10):
                while book.u < max(snap["data"]["u"], rest["u"]):
                    book.apply(await recv_json(ws1))
                    history[book.u] = book.levels()
        other = LocalBook()
        other.apply(snap)
        assert other.levels() == history[other.u]
        bids, asks = history[rest["u"]]
        assert [(Decimal(p), Decimal(q)) for p, q in rest["b"]] == bids[: len(rest["b"])]
        assert [(Decimal(p), Decimal(q)) for p, q in rest["a"]] == asks[: len(rest["a"])]


async def test_level1_snapshot_only_and_resent_after_3s(autojump_clock: Any) -> None:
    """bybit-v5.md §4.1: level 1 is snapshot-only; re-sent after 3 s without change with the
    same `u` (MockClock, frozen market)."""
    del autojump_clock
    cfg = config("bybit-spot", rate=0, tick=0.5, clock=trio_clock())
    async with running(cfg) as (_sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws('bybit-spot')}/v5/public/spot") as ws:
            await send(ws, {"op": "subscribe", "args": ["orderbook.1.BTCUSDT"]})
            await reply(ws)
            a = await recv_json(ws, timeout=30)
            t0 = trio.current_time()
            b = await recv_json(ws, timeout=30)
            assert a["type"] == b["type"] == "snapshot"
            assert a["data"]["u"] == b["data"]["u"]
            assert 2.9 <= trio.current_time() - t0 <= 3.6
            assert len(a["data"]["b"]) == len(a["data"]["a"]) == 1


async def test_book_reset_sends_u1_snapshot() -> None:
    """bybit-v5.md §4.1 `u = 1` restart snapshot (fault `book_reset`)."""
    async with running(config("bybit-linear", rate=300)) as (sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws('bybit-linear')}/v5/public/linear") as ws:
            await send(ws, {"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]})
            await reply(ws)
            await recv_json(ws)
            sim.inject(Fault("book_reset", symbol="BTCUSDT"))
            with trio.fail_after(5):
                while True:
                    m = await recv_json(ws)
                    if m["type"] == "snapshot":
                        break
            assert m["data"]["u"] == 1
            nxt = await recv_json(ws)
            assert nxt["type"] == "delta" and nxt["data"]["u"] == 2


async def test_tickers_snapshot_then_changed_field_deltas() -> None:
    """bybit-v5.md §4.3: linear/inverse snapshot then deltas with only changed fields; spot and
    option snapshot only (option with `id`)."""
    async with running(config("bybit-linear", rate=500)) as (_sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws('bybit-linear')}/v5/public/linear") as ws:
            await send(ws, {"op": "subscribe", "args": ["tickers.BTCUSDT"]})
            await reply(ws)
            snap = await recv_json(ws)
            assert snap["type"] == "snapshot" and list(snap) == [
                "topic",
                "type",
                "data",
                "cs",
                "ts",
            ]
            assert len(snap["data"]) == 27
            delta = await recv_json(ws)
            assert delta["type"] == "delta" and 1 < len(delta["data"]) < 27
            assert delta["data"]["symbol"] == "BTCUSDT"
    async with running(config("bybit-option", rate=500)) as (_sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws('bybit-option')}/v5/public/option") as ws:
            await send(ws, {"op": "subscribe", "args": ["tickers.BTC-27MAR26-70000-C"]})
            await reply(ws)
            for _ in range(2):
                m = await recv_json(ws)
                assert m["type"] == "snapshot" and list(m) == ["id", "topic", "ts", "data", "type"]


async def test_public_trades_ids_and_option_base_coin_topic() -> None:
    """bybit-v5.md §4.2: trades batched per message with `seq`; options by base coin."""
    async with running(config("bybit-option", rate=800)) as (_sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws('bybit-option')}/v5/public/option") as ws:
            await send(ws, {"op": "subscribe", "args": ["publicTrade.BTC"]})
            await reply(ws)
            m = await recv_json(ws)
            assert m["topic"] == "publicTrade.BTC" and "id" in m
            assert {t["s"] for t in m["data"]} <= {"BTC-27MAR26-70000-C", "BTC-27MAR26-70000-P"}
    async with running(config("bybit-linear", rate=800)) as (_sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws('bybit-linear')}/v5/public/linear") as ws:
            await send(ws, {"op": "subscribe", "args": ["publicTrade.BTCUSDT"]})
            await reply(ws)
            seqs = []
            for _ in range(5):
                m = await recv_json(ws)
                assert list(m["data"][0]) == ["T", "s", "S", "v", "p", "L", "i", "BT", "RPI", "seq"]
                seqs += [t["seq"] for t in m["data"]]
            assert seqs == sorted(seqs)


async def test_rest_instruments_pagination_and_rate_limit() -> None:
    """bybit-v5.md §5.2 cursor pagination (`nextPageCursor`), §3 600 req / 5 s => 403."""
    async with (
        running(config("bybit-linear", instruments_page_size=2, bybit_rest_limit=6)) as (
            _sim,
            urls,
        ),
        httpx.AsyncClient(base_url=urls.rest("bybit-linear")) as http,
    ):
        names: list[str] = []
        cursor = ""
        pages = 0
        while True:
            params = {"category": "linear"} | ({"cursor": cursor} if cursor else {})
            res = (await http.get("/v5/market/instruments-info", params=params)).json()
            assert res["retCode"] == 0 and res["retMsg"] == "OK"
            names += [i["symbol"] for i in res["result"]["list"]]
            pages += 1
            cursor = res["result"]["nextPageCursor"]
            if not cursor:
                break
        assert names == ["BTCUSDT", "ETHUSDT", "SOLUSDT"] and pages == 2
        statuses = [
            (await http.get("/v5/market/orderbook", params={"category": "linear",
                                                            "symbol": "BTCUSDT"})).status_code
            for _ in range(5)
        ]  # fmt: skip
        assert statuses == [200, 200, 200, 200, 403]


async def test_mute_pongs_fault() -> None:
    """bybit-v5.md §2.2 heartbeat: with the `mute_pongs` fault the server stops answering
    `{"op":"ping"}` (what a client's heartbeat watchdog must detect)."""
    async with running(config("bybit-spot", rate=0)) as (sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws('bybit-spot')}/v5/public/spot") as ws:
            await send(ws, {"op": "ping"})
            assert (await reply(ws))["ret_msg"] == "pong"
            sim.inject(Fault("mute_pongs"))
            await send(ws, {"op": "ping"})
            with trio.move_on_after(0.5) as cs:
                await reply(ws)
            assert cs.cancelled_caught


async def test_fresh_snapshot_mid_stream() -> None:
    """bybit-v5.md §4.1 "any new snapshot replaces the local book" (fault `book_snapshot`):
    a snapshot arrives instead of a delta, `u` keeps increasing by one."""
    async with running(config("bybit-spot", rate=300)) as (sim, urls):  # noqa: SIM117
        async with open_websocket_url(f"{urls.ws('bybit-spot')}/v5/public/spot") as ws:
            await send(ws, {"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]})
            await reply(ws)
            book = LocalBook()
            book.apply(await recv_json(ws))
            book.apply(await recv_json(ws))
            sim.inject(Fault("book_snapshot"))
            with trio.fail_after(5):
                while True:
                    m = await recv_json(ws)
                    assert m["data"]["u"] == book.u + 1
                    book.apply(m)
                    if m["type"] == "snapshot":
                        break


async def test_plain_http_on_ws_port_is_refused() -> None:
    """README simulator section (handshake control): a request that is not a WebSocket upgrade
    gets an HTTP 400 (not a hang)."""
    async with running(config("bybit-spot", rate=0)) as (_sim, urls):
        async with httpx.AsyncClient() as http:
            r = await http.get(
                urls.ws("bybit-spot").replace("ws://", "http://") + "/v5/public/spot"
            )
        assert r.status_code == 400


async def test_idle_timeout_and_concurrent_limit(autojump_clock: Any) -> None:
    """bybit-v5.md §2.2 idle disconnect of public connections (U: off unless configured;
    client pings keep it alive) and §3 concurrent-connection limit (breach behaviour (U))."""
    del autojump_clock
    cfg = config("bybit-linear", rate=0, tick=1000.0, idle_timeout=30.0, max_concurrent=1)
    async with running(cfg) as (sim, urls):
        url = f"{urls.ws('bybit-linear')}/v5/public/linear"
        async with open_websocket_url(url) as ws:
            with pytest.raises(ConnectionRejected) as exc:
                async with open_websocket_url(url):
                    pass
            assert exc.value.status_code == 429
            t0 = trio.current_time()
            for _ in range(3):  # pinging every 20 s keeps the connection open
                await trio.sleep(20)
                await send(ws, {"op": "ping"})
                assert (await reply(ws))["ret_msg"] == "pong"
            with pytest.raises(ConnectionClosed):
                await ws.get_message()
            assert round(trio.current_time() - t0) == 90
        assert sim.statistics().closes_by_reason.get("idle timeout") == 1
