"""REST requests under Trio, within the exchange's request budget (one client per host).

The recorder needs REST only for order-book snapshots (and instrument lists), but a REST
mistake costs the whole IP: Binance answers an exceeded weight budget with HTTP 429 and, if the
client keeps going, with HTTP 418 (an IP ban of 2 minutes to 3 days) that also hits every other
process on the host; Bybit answers 403 "access too frequent" and wants >= 10 minutes of silence.
So every request goes through one :class:`RestClient` per host, which

* keeps its own estimate of the weight used in the rolling window (our requests) and corrects
  it with the server's count (``X-MBX-USED-WEIGHT-1M`` on Binance, read from every response),
  and never lets the estimate exceed ``fraction`` of the documented limit: a request that does
  not fit waits (``trio.sleep``) until it does;
* after a 429 / 418 (Binance) or a rate-limit answer (Bybit) sends nothing at all to the host
  until ``Retry-After`` (or the venue's documented back-off) has passed.

Time: budgets and blocks use Trio's clock (``trio.current_time()``), so ``MockClock`` tests are
exact; ``RestResponse.recv_ns`` is wall-clock nanoseconds (``clock_ns``, injectable).

No timeouts are taken per call: callers use cancel scopes. The httpx client has one fixed
transport timeout (:data:`HTTP_TIMEOUT_S`) so that a dead TCP connection cannot hang forever.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Literal

import httpx
import trio

from recorder.core._errors import (
    ConfigError,
    LocalProtocolError,
    RemoteProtocolError,
    TicktapeError,
)
from recorder.venues import binance as bn
from recorder.venues import bybit as bb

log = logging.getLogger("ticktape.rest")

__all__ = [
    "HTTP_TIMEOUT_S",
    "RestClient",
    "RestError",
    "RestPolicy",
    "RestResponse",
    "RestStatistics",
    "binance_policy",
    "bybit_policy",
    "parse_retry_after",
    "rest_client_for",
]

HTTP_TIMEOUT_S: Final = 30.0
"""Transport timeout of the httpx client (connect/read/write/pool); not a per-call knob."""

Kind = Literal["binance", "bybit"]


class RestError(TicktapeError):
    """A request failed below HTTP (connection refused, TLS, reset, transport timeout)."""


@dataclass(frozen=True, slots=True)
class RestResponse:
    """One HTTP response: status, headers (as received), exact body and arrival time.

    ``recv_ns`` is the wall-clock time at which the response headers arrived.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    recv_ns: int

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (case-insensitive), or None."""
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class RestPolicy:
    """A host's request budget and how to react to its rate-limit answers.

    ``limit`` weight units per ``window_s`` (Binance: request weight per minute; Bybit: requests
    per 5 s, each of weight 1); we use at most ``floor(limit * fraction)`` of it.
    """

    kind: Kind
    limit: int
    window_s: float
    fraction: float = 0.5
    used_weight_header: str | None = None
    """Response header with the server's count of used weight (Binance); None if there is none."""
    retry_after_429_s: float = 60.0
    """Back-off after a 429 without a usable ``Retry-After``."""
    retry_after_418_s: float = 120.0
    """Back-off after a 418 ban without a usable ``Retry-After`` (the shortest documented ban)."""
    forbidden_backoff_s: float = 600.0
    """Bybit: silence after 403 "access too frequent" (the docs say >= 10 minutes)."""

    def __post_init__(self) -> None:
        if self.limit < 1 or not (self.window_s > 0 and math.isfinite(self.window_s)):
            raise ConfigError(f"bad REST budget {self.limit}/{self.window_s}s")
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"REST budget fraction must be in (0, 1], got {self.fraction}")
        if self.capacity < 1:
            raise ConfigError(f"REST budget {self.limit} * {self.fraction} leaves nothing")
        for name in ("retry_after_429_s", "retry_after_418_s", "forbidden_backoff_s"):
            v = getattr(self, name)
            if not (v >= 0 and math.isfinite(v)):
                raise ConfigError(f"{name} must be a non-negative number, got {v}")

    @property
    def capacity(self) -> int:
        """Weight per window we allow ourselves."""
        return math.floor(self.limit * self.fraction)


def binance_policy(venue: str, *, fraction: float = 0.5) -> RestPolicy:
    """Binance Spot (6000 weight/min) or USDⓈ-M (2400/min), corrected by the server's header."""
    if venue == bn.SPOT:
        limit = bn.SPOT_WEIGHT_LIMIT_1M
    elif venue == bn.USDM:
        limit = bn.USDM_WEIGHT_LIMIT_1M
    else:
        raise ConfigError(f"not a Binance REST venue: {venue!r}")
    return RestPolicy(
        kind="binance",
        limit=limit,
        window_s=60.0,
        fraction=fraction,
        used_weight_header=bn.USED_WEIGHT_HEADER,
    )


BYBIT_REQUESTS_PER_5S: Final = 600


def bybit_policy(*, fraction: float = 0.5, forbidden_backoff_s: float = 600.0) -> RestPolicy:
    """Bybit: 600 requests / 5 s per IP; 403 "access too frequent" => back off >= 10 min."""
    if forbidden_backoff_s < 600.0:
        log.warning(
            "bybit REST back-off after 403 set to %.0f s, below the documented 10 minutes",
            forbidden_backoff_s,
        )
    return RestPolicy(
        kind="bybit",
        limit=BYBIT_REQUESTS_PER_5S,
        window_s=5.0,
        fraction=fraction,
        retry_after_429_s=5.0,
        forbidden_backoff_s=forbidden_backoff_s,
    )


@dataclass(frozen=True, slots=True)
class RestStatistics:
    requests: int
    """Requests sent (whatever their answer)."""
    weight_used: int
    """Total weight of the requests sent."""
    window_weight: int
    """Our current estimate of the weight used in the rolling window."""
    server_used_weight: int | None
    """The last used-weight count the server reported (Binance), or None."""
    rate_limited: int
    """HTTP 429 answers (Bybit: also rate-limit retCodes)."""
    banned: int
    """HTTP 418 answers (Binance IP ban)."""
    forbidden: int
    """Bybit 403 "access too frequent" answers."""
    waits: int
    """Requests that had to wait for the budget or for a block to pass."""
    waited_s: float
    errors: int
    """Requests that failed below HTTP (:class:`RestError`)."""
    blocked_until: float | None
    """Trio time until which nothing is sent to the host (None if not blocked)."""


def rest_client_for(
    venue: str,
    base_url: str | None = None,
    *,
    fraction: float = 0.5,
    transport: httpx.AsyncBaseTransport | None = None,
    clock_ns: Callable[[], int] = time.time_ns,
) -> RestClient:
    """A client for ``venue``'s REST host (``base_url`` overrides the default host) with the
    venue's budget. Binance Spot and USDⓈ-M are different hosts with separate budgets; the
    Bybit categories share one host (and one per-IP budget): use one client for all of them."""
    if venue in bn.VENUES:
        policy = binance_policy(venue, fraction=fraction)
        default = bn.SPOT_REST_BASE if venue == bn.SPOT else bn.USDM_REST_BASE
    elif venue in bb.VENUES:
        policy = bybit_policy(fraction=fraction)
        default = bb.REST_HOST
    else:
        raise ConfigError(f"no REST client for venue {venue!r}")
    return RestClient(
        base_url or default, policy, transport=transport, clock_ns=clock_ns, name=f"rest:{venue}"
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form); None if absent or unusable.

    The HTTP-date form is not used by the exchanges; it yields None (the default back-off)."""
    if value is None:
        return None
    try:
        secs = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(secs) or secs < 0:
        return None
    return secs


_BYBIT_OK_PREFIX: Final = b'{"retCode":0,'


def _now() -> float:
    """Trio's clock; -inf outside a Trio run (statistics read from another thread)."""
    try:
        return trio.current_time()
    except RuntimeError:
        return -math.inf


class RestClient:
    """Budgeted GETs to one host. Use as ``async with RestClient(...) as rest:``.

    ``transport`` replaces the network (``httpx.MockTransport`` in tests); ``clock_ns`` gives
    the wall-clock receive times. Concurrent ``get`` calls are served first come, first served.
    """

    def __init__(
        self,
        base_url: str,
        policy: RestPolicy,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        name: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self.name = name or self.base_url
        self.clock_ns = clock_ns
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(HTTP_TIMEOUT_S),
            follow_redirects=False,
        )
        self._lock = trio.Lock()  # fair: waiting requests keep their order
        self._events: deque[tuple[float, int]] = deque()  # (trio time sent, weight)
        self._window_sum = 0
        # Server observations: (trio time the request was sent, trio time received, value).
        self._server: list[tuple[float, float, int]] = []
        self._last_server: int | None = None
        self._blocked_until = -math.inf
        self._requests = 0
        self._weight = 0
        self._429 = 0
        self._418 = 0
        self._403 = 0
        self._waits = 0
        self._waited = 0.0
        self._errors = 0

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- budget (pure given ``now``) ----------------------------------------------------------

    def _prune(self, now: float) -> None:
        horizon = now - self.policy.window_s
        ev = self._events
        while ev and ev[0][0] <= horizon:
            self._window_sum -= ev.popleft()[1]
        self._server = [o for o in self._server if o[1] > horizon]

    def _estimate(self, now: float) -> int:
        """Weight used in the window ending at ``now``: ours, or the server's count plus what we
        sent since the request it answered, whichever is larger."""
        self._prune(now)
        est = self._window_sum
        for sent, _recv, value in self._server:
            since = sum(w for t, w in self._events if t > sent)
            est = max(est, value + since)
        return est

    def _next_release(self, now: float) -> float:
        """The next time the estimate may drop (an event or a server count leaves the window)."""
        w = self.policy.window_s
        times = [t + w for t, _ in self._events] + [recv + w for _, recv, _ in self._server]
        later = [t for t in times if t > now]
        return min(later) if later else now

    def window_weight(self) -> int:
        """Current estimate of the weight used in the rolling window."""
        return self._estimate(_now())

    @property
    def blocked_until(self) -> float | None:
        """Trio time until which nothing is sent (after a 429/418/403), or None."""
        return self._blocked_until if self._blocked_until > _now() else None

    async def _acquire(self, weight: int) -> float:
        """Wait until ``weight`` fits the budget and no block is active; record it; return the
        send time."""
        start = trio.current_time()
        waited = False
        async with self._lock:
            while True:
                now = trio.current_time()
                if now < self._blocked_until:
                    waited = True
                    await trio.sleep_until(self._blocked_until)
                    continue
                if self._estimate(now) + weight <= self.policy.capacity:
                    self._events.append((now, weight))
                    self._window_sum += weight
                    break
                waited = True
                at = self._next_release(now)
                if at <= now:  # cannot happen: weight <= capacity was checked
                    raise LocalProtocolError(f"{self.name}: weight {weight} never fits the budget")
                await trio.sleep_until(at)
        if waited or trio.current_time() > start:  # slept itself, or queued behind a sleeper
            self._waits += 1
            self._waited += trio.current_time() - start
        return now

    def _block(self, seconds: float) -> None:
        until = trio.current_time() + seconds
        self._blocked_until = max(self._blocked_until, until)

    # -- requests ------------------------------------------------------------------------------

    async def get(
        self, path: str, params: Mapping[str, str] | None = None, *, weight: int = 1
    ) -> RestResponse:
        """GET ``path`` (relative to the base URL) once the budget allows ``weight`` more.

        Returns every HTTP answer, including errors: the caller decides whether to retry (a
        retry after 429/418/403 automatically waits for the block to pass). Raises
        :class:`RestError` for failures below HTTP.
        """
        if type(weight) is not int or weight < 1:
            raise LocalProtocolError(f"{self.name}: request weight must be a positive int")
        if weight > self.policy.capacity:
            raise LocalProtocolError(
                f"{self.name}: weight {weight} exceeds the budget of {self.policy.capacity} "
                f"per {self.policy.window_s:g} s"
            )
        sent = await self._acquire(weight)
        self._requests += 1
        self._weight += weight
        try:
            async with self._client.stream("GET", path, params=params) as r:
                recv_ns = self.clock_ns()
                body = await r.aread()
                headers = tuple(
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in r.headers.raw
                )
                status = r.status_code
        except httpx.HTTPError as exc:
            self._errors += 1
            raise RestError(f"{self.name}: GET {path}: {type(exc).__name__}: {exc}") from exc
        resp = RestResponse(status, headers, body, recv_ns)
        self._account(resp, sent, path)
        return resp

    def _account(self, resp: RestResponse, sent: float, path: str) -> None:
        pol = self.policy
        now = trio.current_time()
        if pol.used_weight_header is not None:
            try:
                used = bn.used_weight(resp.headers)
            except RemoteProtocolError as exc:
                log.warning("%s: %s", self.name, exc)
                used = None
            if used is not None:
                self._last_server = used
                self._server.append((sent, now, used))
                if len(self._server) > 8:
                    self._server = self._server[-8:]
        retry_after = parse_retry_after(resp.header("Retry-After"))
        if pol.kind == "binance":
            if resp.status == 429:
                self._429 += 1
                secs = retry_after if retry_after is not None else pol.retry_after_429_s
                self._block(secs)
                log.warning(
                    "%s: HTTP 429 on %s (weight budget exceeded): sending nothing for %.0f s",
                    self.name,
                    path,
                    secs,
                )
            elif resp.status == 418:
                self._418 += 1
                secs = retry_after if retry_after is not None else pol.retry_after_418_s
                self._block(secs)
                log.error(
                    "%s: HTTP 418 on %s: the IP is BANNED; sending nothing for %.0f s",
                    self.name,
                    path,
                    secs,
                )
            return
        # Bybit
        if resp.status == 200 and resp.body.startswith(_BYBIT_OK_PREFIX):
            return
        if not bb.is_rate_limited(resp.status, resp.body):
            return
        if resp.status == 403:
            self._403 += 1
            secs = max(pol.forbidden_backoff_s, retry_after or 0.0)
            self._block(secs)
            log.error(
                "%s: HTTP 403 'access too frequent' on %s: sending nothing for %.0f s",
                self.name,
                path,
                secs,
            )
        else:
            self._429 += 1
            secs = retry_after if retry_after is not None else pol.retry_after_429_s
            self._block(secs)
            log.warning(
                "%s: rate limited (HTTP %d) on %s: sending nothing for %.0f s",
                self.name,
                resp.status,
                path,
                secs,
            )

    def statistics(self) -> RestStatistics:
        return RestStatistics(
            requests=self._requests,
            weight_used=self._weight,
            window_weight=self.window_weight(),
            server_used_weight=self._last_server,
            rate_limited=self._429,
            banned=self._418,
            forbidden=self._403,
            waits=self._waits,
            waited_s=self._waited,
            errors=self._errors,
            blocked_until=self.blocked_until,
        )
