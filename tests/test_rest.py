"""RestClient: weight budget, server-count correction, 429/418/403 blocks (MockClock-exact)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import httpx
import pytest
import trio
import trio.testing

from recorder.core._errors import ConfigError, LocalProtocolError
from recorder.net._rest import (
    RestClient,
    RestError,
    RestPolicy,
    binance_policy,
    bybit_policy,
    parse_retry_after,
    rest_client_for,
)

Handler = Callable[[httpx.Request], httpx.Response]


class Server:
    """A MockTransport handler that records the Trio time of every request it receives."""

    def __init__(self, respond: Callable[[int, httpx.Request], httpx.Response] | None = None):
        self.times: list[float] = []
        self.paths: list[str] = []
        self.respond = respond or (lambda i, req: httpx.Response(200, content=b"{}"))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.times.append(trio.current_time())
        self.paths.append(str(request.url))
        return self.respond(len(self.times) - 1, request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def client(server: Server, policy: RestPolicy, **kw: object) -> RestClient:
    return RestClient("https://api.example", policy, transport=server.transport(), **kw)  # type: ignore[arg-type]


def test_policies() -> None:
    spot = binance_policy("binance-spot")
    assert (spot.limit, spot.capacity, spot.window_s) == (6000, 3000, 60.0)
    usdm = binance_policy("binance-usdm", fraction=0.25)
    assert usdm.capacity == 600
    by = bybit_policy()
    assert (by.limit, by.window_s, by.capacity, by.forbidden_backoff_s) == (600, 5.0, 300, 600.0)
    with pytest.raises(ConfigError):
        binance_policy("bybit-linear")
    with pytest.raises(ConfigError):
        binance_policy("binance-spot", fraction=0)
    with pytest.raises(ConfigError):
        RestPolicy(kind="binance", limit=1, window_s=60, fraction=0.5)


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 120 ") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after("-1") is None


async def test_response_fields_and_exact_body(autojump_clock: trio.testing.MockClock) -> None:
    body = b'{"lastUpdateId":1,"bids":[["4.00000000","431.00000000"]],"asks":[]}'

    def respond(i: int, req: httpx.Request) -> httpx.Response:
        assert req.url.params["symbol"] == "BTCUSDT"
        return httpx.Response(200, content=body, headers={"X-MBX-USED-WEIGHT-1M": "55"})

    server = Server(respond)
    async with client(server, binance_policy("binance-spot"), clock_ns=lambda: 123) as rest:
        r = await rest.get("/api/v3/depth", {"symbol": "BTCUSDT", "limit": "1000"}, weight=50)
        assert r.status == 200 and r.ok
        assert r.body == body
        assert r.recv_ns == 123
        assert r.header("x-mbx-used-weight-1m") == "55"
        st = rest.statistics()
    assert server.paths == ["https://api.example/api/v3/depth?symbol=BTCUSDT&limit=1000"]
    assert (st.requests, st.weight_used, st.server_used_weight, st.waits) == (1, 50, 55, 0)
    assert st.window_weight == 55  # the server's count is larger than ours


async def test_budget_waits_for_the_window(autojump_clock: trio.testing.MockClock) -> None:
    server = Server()
    async with client(server, binance_policy("binance-spot")) as rest:
        for _ in range(61):
            await rest.get("/api/v3/depth", weight=50)
        st = rest.statistics()
    # 3000 = 60 x 50 fit at once; the 61st waits until the first leaves the 60 s window.
    assert server.times[:60] == [0.0] * 60
    assert server.times[60] == pytest.approx(60.0)
    assert st.waits == 1
    assert st.waited_s == pytest.approx(60.0)
    assert st.weight_used == 61 * 50


async def test_budget_never_exceeded_in_any_window(autojump_clock: trio.testing.MockClock) -> None:
    server = Server()
    rest = client(server, binance_policy("binance-usdm"))  # 1200 / min
    async with rest, trio.open_nursery() as nursery:
        for i in range(150):
            nursery.start_soon(partial(rest.get, "/fapi/v1/depth", weight=20 if i % 3 else 5))
            await trio.sleep(0.7)
    weights = [20 if i % 3 else 5 for i in range(150)]
    times = server.times
    assert len(times) == 150
    for i, t in enumerate(times):
        in_window = sum(w for t2, w in zip(times, weights, strict=True) if t - 60 < t2 <= t)
        assert in_window <= 1200, (i, t, in_window)


async def test_server_count_corrects_our_estimate(autojump_clock: trio.testing.MockClock) -> None:
    # Another process on the host used most of the budget: the server says 2990 of 6000.
    def respond(i: int, req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"{}", headers={"X-MBX-USED-WEIGHT-1M": "2990"})

    server = Server(respond)
    async with client(server, binance_policy("binance-spot")) as rest:
        await trio.sleep(5)
        await rest.get("/api/v3/depth", weight=5)
        await rest.get("/api/v3/depth", weight=5)  # 2990 + 5 <= 3000
        await rest.get("/api/v3/depth", weight=50)  # must wait for the count to expire
    assert server.times[0] == server.times[1] == 5.0
    # The last count (received at t=5) leaves the window at 65; our own 10 still fit then.
    assert server.times[2] == pytest.approx(65.0)


async def test_429_blocks_host_until_retry_after(autojump_clock: trio.testing.MockClock) -> None:
    def respond(i: int, req: httpx.Request) -> httpx.Response:
        if i == 0:
            return httpx.Response(429, content=b'{"code":-1003}', headers={"Retry-After": "7"})
        return httpx.Response(200, content=b"{}")

    server = Server(respond)
    async with client(server, binance_policy("binance-spot")) as rest:
        await trio.sleep(1)
        r = await rest.get("/api/v3/depth", weight=5)
        assert r.status == 429
        assert rest.blocked_until == pytest.approx(8.0)
        # Everything to this host waits, whatever its weight, whoever sends it.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(rest.get, "/api/v3/exchangeInfo", weight=20))
            nursery.start_soon(partial(rest.get, "/api/v3/depth", weight=5))
        st = rest.statistics()
    assert server.times == [1.0, 8.0, 8.0]
    assert st.rate_limited == 1 and st.banned == 0 and st.waits == 2
    assert st.blocked_until is None


async def test_429_without_retry_after_uses_default(autojump_clock: trio.testing.MockClock) -> None:
    server = Server(lambda i, req: httpx.Response(429 if i == 0 else 200, content=b"{}"))
    async with client(server, binance_policy("binance-usdm")) as rest:
        await rest.get("/fapi/v1/depth", weight=20)
        await rest.get("/fapi/v1/depth", weight=20)
    assert server.times == [0.0, 60.0]


async def test_418_ban_is_logged_and_honoured(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    def respond(i: int, req: httpx.Request) -> httpx.Response:
        if i == 0:
            return httpx.Response(418, content=b'{"code":-1003}', headers={"Retry-After": "300"})
        return httpx.Response(200, content=b"{}")

    server = Server(respond)
    with caplog.at_level(logging.ERROR, logger="ticktape.rest"):
        async with client(server, binance_policy("binance-spot")) as rest:
            r = await rest.get("/api/v3/depth", weight=50)
            assert r.status == 418
            await rest.get("/api/v3/depth", weight=50)
            st = rest.statistics()
    assert server.times == [0.0, 300.0]
    assert st.banned == 1 and st.rate_limited == 0
    assert any("BANNED" in rec.message and rec.levelno == logging.ERROR for rec in caplog.records)


async def test_bybit_pacing(autojump_clock: trio.testing.MockClock) -> None:
    ok = b'{"retCode":0,"retMsg":"OK","result":{},"retExtInfo":{},"time":1}'
    server = Server(lambda i, req: httpx.Response(200, content=ok))
    async with client(server, bybit_policy()) as rest:
        for _ in range(301):
            await rest.get("/v5/market/orderbook")
    assert server.times[299] == 0.0
    assert server.times[300] == pytest.approx(5.0)


async def test_bybit_403_backs_off_ten_minutes(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    def respond(i: int, req: httpx.Request) -> httpx.Response:
        if i == 0:
            return httpx.Response(403, content=b"access too frequent")
        return httpx.Response(200, content=b'{"retCode":0,"retMsg":"OK"}')

    server = Server(respond)
    async with client(server, bybit_policy()) as rest:
        r = await rest.get("/v5/market/orderbook")
        assert r.status == 403
        await rest.get("/v5/market/orderbook")
        st = rest.statistics()
    assert server.times == [0.0, 600.0]
    assert st.forbidden == 1


async def test_bybit_retcode_rate_limit(autojump_clock: trio.testing.MockClock) -> None:
    def respond(i: int, req: httpx.Request) -> httpx.Response:
        if i == 0:
            return httpx.Response(200, content=b'{"retCode":10006,"retMsg":"Too many visits!"}')
        return httpx.Response(200, content=b'{"retCode":0,"retMsg":"OK"}')

    server = Server(respond)
    async with client(server, bybit_policy()) as rest:
        await rest.get("/v5/market/orderbook")
        await rest.get("/v5/market/orderbook")
        assert rest.statistics().rate_limited == 1
    assert server.times == [0.0, 5.0]


async def test_transport_failure_is_a_rest_error(autojump_clock: trio.testing.MockClock) -> None:
    def respond(i: int, req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=req)

    async with client(Server(respond), binance_policy("binance-spot")) as rest:
        with pytest.raises(RestError, match="ConnectError"):
            await rest.get("/api/v3/depth", weight=5)
        assert rest.statistics().errors == 1


async def test_weight_checks() -> None:
    async with client(Server(), binance_policy("binance-spot")) as rest:
        with pytest.raises(LocalProtocolError):
            await rest.get("/api/v3/depth", weight=3001)
        with pytest.raises(LocalProtocolError):
            await rest.get("/api/v3/depth", weight=0)


async def test_cancelled_wait_sends_nothing(autojump_clock: trio.testing.MockClock) -> None:
    server = Server(lambda i, req: httpx.Response(429, headers={"Retry-After": "100"}))
    async with client(server, binance_policy("binance-spot")) as rest:
        await rest.get("/api/v3/depth", weight=5)
        with trio.move_on_after(10):
            await rest.get("/api/v3/depth", weight=5)
        assert trio.current_time() == pytest.approx(10.0)
    assert server.times == [0.0]


async def test_local_http_server() -> None:
    """Against a real (hand-written) HTTP/1.1 server on 127.0.0.1."""
    body = b'{"lastUpdateId":7,"bids":[],"asks":[]}'

    async def handle(stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            data += chunk
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"X-MBX-USED-WEIGHT-1M: 12\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        await stream.send_all(head + body)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        async with RestClient(f"http://127.0.0.1:{port}", binance_policy("binance-spot")) as rest:
            r = await rest.get("/api/v3/depth", {"symbol": "BTCUSDT"}, weight=5)
            assert (r.status, r.body) == (200, body)
            assert rest.statistics().server_used_weight == 12
        nursery.cancel_scope.cancel()


async def test_rest_client_for_venues() -> None:
    spot = rest_client_for("binance-spot")
    usdm = rest_client_for("binance-usdm", "http://127.0.0.1:9/", fraction=0.25)
    bybit = rest_client_for("bybit-linear")
    try:
        assert (spot.base_url, spot.policy.capacity) == ("https://api.binance.com", 3000)
        assert (usdm.base_url, usdm.policy.capacity) == ("http://127.0.0.1:9", 600)
        assert (bybit.base_url, bybit.policy.kind, bybit.name) == (
            "https://api.bybit.com",
            "bybit",
            "rest:bybit-linear",
        )
    finally:
        for c in (spot, usdm, bybit):
            await c.aclose()
    with pytest.raises(ConfigError):
        rest_client_for("kraken")
