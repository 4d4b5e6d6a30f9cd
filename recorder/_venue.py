"""What the connection runtime needs from a venue: the :class:`VenueAdapter` contract.

Adapters are thin, synchronous wrappers around each venue's sans-IO protocol module
(``_binance``, ``_bybit``, ``_sbe``): they build URLs and requests, classify received frames
and parse control replies. The runtime (``_connection.py``) is the same for every venue, so a
new venue is a codec plus an adapter and a table of limits -- not a second recorder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from recorder._shard import VenueLimits as PlanLimits
from recorder._ws import Frame

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
    def plan_limits(self) -> PlanLimits: ...

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
