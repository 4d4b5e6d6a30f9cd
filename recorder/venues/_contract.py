"""What the connection runtime needs from a venue: the :class:`VenueAdapter` contract.

Adapters are thin, synchronous wrappers around each venue's sans-IO protocol module
(``_binance``, ``_bybit``, ``_sbe``): they build URLs and requests, classify received frames
and parse control replies. The runtime (``_connection.py``) is the same for every venue, so a
new venue is a codec plus an adapter and a table of limits -- not a second recorder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from recorder.core._errors import ConfigError
from recorder.core._frame import Frame

VENUES: tuple[str, ...] = (
    "binance-spot",
    "binance-usdm",
    "binance-sbe",
    "bybit-spot",
    "bybit-linear",
    "bybit-inverse",
    "bybit-option",
)
"""Every venue ticktape records."""


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    status: str
    base: str
    quote: str


@dataclass(frozen=True, slots=True)
class UniverseSelect:
    """Which listed symbols to record. ``None`` fields do not filter; ``status`` compares
    case-insensitively (Binance says ``TRADING``, Bybit ``Trading``)."""

    quote: str | None = None
    base: str | None = None
    status: str | None = "TRADING"
    match: str | None = None
    """A regular expression the whole symbol must match."""
    max_symbols: int | None = None
    """Keep at most this many (alphabetically first), as a safety cap."""

    def __post_init__(self) -> None:
        if self.match is not None:
            try:
                re.compile(self.match)
            except re.error as exc:
                raise ConfigError(
                    f"select.match is not a valid regular expression: {exc}"
                ) from None
        if self.max_symbols is not None and self.max_symbols < 1:
            raise ConfigError("select.max_symbols must be >= 1")


@dataclass(frozen=True)
class VenueJob:
    """One venue's part of a job: which streams, and where to find the exchange."""

    venue: str
    streams: tuple[str, ...]
    ws_url: str | None = None
    rest_url: str | None = None
    max_streams_per_connection: int | None = None
    api_key_env: str | None = None
    api_key_file: str | None = None
    select: UniverseSelect | None = None
    """Record ``channels`` for every listed symbol this selects (re-resolved periodically)."""
    channels: tuple[str, ...] = ()
    refresh_interval: float = 3600.0


@dataclass(frozen=True, slots=True)
class VenueLimits:
    """Per-connection and per-request limits of one venue endpoint. ``None`` = no limit."""

    max_streams_per_connection: int | None = 1024
    """Streams (topics) on one connection (Binance 1024; configure lower to keep heavy
    connections small)."""
    max_chars_per_connection: int | None = None
    """Sum of ``len(name)`` over one connection's streams (Bybit 21,000)."""
    max_args_per_connection: int | None = None
    """Args on one connection (Bybit option 2000); combined with the stream cap."""
    max_per_request: int = 200
    """Streams per subscribe request (Bybit spot 10; Binance: our choice, 200)."""
    max_chars_per_request: int | None = None
    """Sum of ``len(name)`` per subscribe request, if the venue caps it."""
    max_weight_per_connection: float | None = None
    """Soft budget of total stream weight per connection (see the module docstring)."""

    def __post_init__(self) -> None:
        for name in (
            "max_streams_per_connection",
            "max_chars_per_connection",
            "max_args_per_connection",
            "max_chars_per_request",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1 or None, got {value}")
        if self.max_per_request < 1:
            raise ConfigError(f"max_per_request must be >= 1, got {self.max_per_request}")
        w = self.max_weight_per_connection
        if w is not None and not w > 0:
            raise ConfigError(f"max_weight_per_connection must be > 0 or None, got {w}")

    @property
    def max_count(self) -> int | None:
        """The effective cap on streams per connection (streams and args caps combined)."""
        caps = [c for c in (self.max_streams_per_connection, self.max_args_per_connection) if c]
        return min(caps) if caps else None


def subscribe_batches(
    streams: Iterable[str], max_per_request: int, max_chars_per_request: int | None = None
) -> list[list[str]]:
    """Cut ``streams`` (order kept) into requests of at most ``max_per_request`` names and at
    most ``max_chars_per_request`` characters (sum of ``len(name)``). Greedy: every request
    but the last is as full as the next name allows."""
    if max_per_request < 1:
        raise ConfigError(f"max_per_request must be >= 1, got {max_per_request}")
    batches: list[list[str]] = []
    current: list[str] = []
    chars = 0
    for name in streams:
        if max_chars_per_request is not None and len(name) > max_chars_per_request:
            raise ConfigError(f"stream name longer than {max_chars_per_request} characters")
        too_many = len(current) >= max_per_request
        too_long = max_chars_per_request is not None and chars + len(name) > max_chars_per_request
        if current and (too_many or too_long):
            batches.append(current)
            current, chars = [], 0
        current.append(name)
        chars += len(name)
    if current:
        batches.append(current)
    return batches


@dataclass(frozen=True, slots=True)
class Routed:
    """Where a data frame belongs."""

    stream: str
    channel: str
    symbol: str


@dataclass(frozen=True, slots=True)
class Request:
    """One outgoing control message and the streams it subscribes."""

    req_id: str
    text: str
    streams: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ack:
    """The server accepted a request (all its streams, or only ``accepted`` if given)."""

    req_id: str | None
    accepted: tuple[str, ...] | None = None
    refused: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Refusal:
    """The server refused a request (or the named streams of it)."""

    req_id: str | None
    reason: str
    streams: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Pong:
    """An application-level pong (Bybit ``op: ping`` replies)."""


@dataclass(frozen=True, slots=True)
class Shutdown:
    """The server announced it will close this connection soon (``serverShutdown``)."""

    event_ms: int | None = None


@dataclass(frozen=True, slots=True)
class OtherControl:
    """A control frame the runtime has nothing to do with (recorded, otherwise ignored)."""

    note: str = ""


Control = Ack | Refusal | Pong | Shutdown | OtherControl


@dataclass(frozen=True, slots=True)
class RuntimeLimits:
    """Per-connection limits the runtime respects (from ``shared/protocols``); the planner's
    limits (streams, characters and args per connection) are a ``_shard.VenueLimits``."""

    outgoing_msgs_per_s: int
    outgoing_headroom: int = 1
    connections_per_window: int = 300
    connection_window_s: float = 300.0
    max_connection_age_s: float | None = 24 * 3600.0
    client_ping_interval_s: float | None = None
    heartbeat_s: float | None = None
    """Longest interval between frames the venue guarantees on a healthy connection (server
    pings, or pongs to our pings), for the stall watchdog."""


class VenueAdapter(Protocol):
    """The runtime's view of a venue."""

    @property
    def venue(self) -> str: ...

    @property
    def limits(self) -> RuntimeLimits: ...

    @property
    def plan_limits(self) -> VenueLimits: ...

    @property
    def default_ws_url(self) -> str:
        """The exchange's real WebSocket base URL (the default for users)."""
        ...

    @property
    def default_rest_url(self) -> str: ...

    def validate_stream(self, stream: str) -> Routed:
        """Classify a configured stream name; raise ConfigError if invalid for this venue."""
        ...

    def route_of(self, stream: str) -> str:
        """Connection route a stream needs ("" when the venue has one endpoint)."""
        ...

    def weight_of(self, stream: str) -> float:
        """Expected message rate of a stream (for even sharding)."""
        ...

    def kind_of(self, stream: str) -> str:
        """Stream kind for the stall watchdog (``depth_fast``, ``trade``, ``kline``, ...)."""
        ...

    def connection_url(self, ws_base: str, route: str) -> str:
        """The URL to open for a shard on ``route`` (streams are subscribed after connecting)."""
        ...

    def headers(self) -> Sequence[tuple[str, str]]:
        """Extra handshake headers (the SBE API key). Never logged."""
        ...

    def subscribe_requests(self, streams: Sequence[str], first_id: int) -> list[Request]:
        """Requests subscribing ``streams``, batched within the venue's per-request limits."""
        ...

    def unsubscribe_requests(self, streams: Sequence[str], first_id: int) -> list[Request]: ...

    def retry_refused(self, request: Request, first_id: int) -> list[Request]:
        """After a refused request, narrower requests that find the offending streams."""
        ...

    def client_ping(self, req_id: int) -> str | None:
        """An application-level ping to send every ``limits.client_ping_interval_s``."""
        ...

    def classify(self, frame: Frame) -> Routed:
        """Where a received frame belongs; control frames get channel ``control`` (with their
        stream name when they have one, e.g. Binance's ``!serverShutdown``)."""
        ...

    def parse_control(self, frame: Frame) -> Control: ...
