"""``ticktape serve``: the simulator's exchange server, fed from a recorded archive.

:class:`ArchiveSource` implements the simulator's ``MarketSource`` protocol over
:class:`~replay.reader.ArchiveReader`: the server's clock is mapped onto the recorded receive
times (``--from`` picks the start, ``--speed`` the pace), and every recorded market-data
payload whose stream a client subscribed goes out byte for byte. Binance payloads are handed
over unwrapped, so the server wraps them per connection exactly as Binance does (a client on
``/stream`` gets the recorded combined frame back byte-exact; one on ``/ws`` the raw payload).
REST depth requests are answered from the latest recorded snapshot or hourly checkpoint.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

import orjson

from recorder import Message
from recorder.core import ALL_SYMBOLS, CONTROL_CHANNEL, SESSION_CHANNEL, UNPARSED_CHANNEL, codec_for
from recorder.venues.binance import COMBINED
from replay.reader._archive import ArchiveReader
from replay.reader._selection import Selection
from replay.sim import DepthSnapshot, MarketEvent, SymbolSpec

# Channels the recorder writes itself (not pushed by the exchange over WebSocket).
_NOT_PUSHED = frozenset(
    {
        SESSION_CHANNEL,
        CONTROL_CHANNEL,
        UNPARSED_CHANNEL,
        "depth_snapshot",
        "orderbook_snapshot",
        "book_checkpoint",
    }
)
_SNAPSHOT_CHANNELS = ("depth_snapshot", "book_checkpoint")


def _quote_of(symbol: str) -> tuple[str, str]:
    for q in ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB", "USD", "EUR", "TRY"):
        if symbol.endswith(q) and len(symbol) > len(q):
            return symbol[: -len(q)], q
    return symbol, ""


class ArchiveSource:
    """Recorded market data of one venue as a simulator ``MarketSource``."""

    def __init__(
        self, root: str, venue: str, *, start_ns: int | None = None, speed: float = 1.0
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._venue = venue
        self.root = root
        self.speed = speed
        self._reader = ArchiveReader(root, Selection.of(venues=[venue], start_ns=start_ns))
        self._it: Iterator[Message] = iter(self._reader)
        self._pending: Message | None = None
        self._t0_ns: int | None = None
        self._rec0_ns: int | None = start_ns
        self._snapshots: dict[str, tuple[int, bytes]] = {}
        self._binary = {
            p.key.channel: codec_for(venue, p.key.channel).binary for p in self._reader.partitions
        }
        symbols = sorted(
            {
                p.key.symbol
                for p in self._reader.partitions
                if p.key.channel not in _NOT_PUSHED and p.key.symbol != ALL_SYMBOLS
            }
        )
        self._instruments = [
            SymbolSpec(s, *_quote_of(s), mid="1", price_decimals=8, qty_decimals=8) for s in symbols
        ]
        self.sent = 0

    @property
    def venue(self) -> str:
        return self._venue

    def instruments(self) -> Sequence[SymbolSpec]:
        return self._instruments

    def _next(self) -> Message | None:
        if self._pending is None:
            self._pending = next(self._it, None)
        return self._pending

    def _event(self, m: Message) -> MarketEvent:
        payload = m.payload
        if self._venue.startswith("binance") and not self._binary.get(m.channel, False):
            env, inner = COMBINED.split(payload)
            if env == 1:
                payload = inner
        return MarketEvent(m.stream, payload, binary=self._binary.get(m.channel, False))

    def advance(self, now_ns: int, active: Collection[str]) -> Sequence[MarketEvent]:
        """Every recorded event due by ``now_ns`` on the replay clock, in archive order."""
        out: list[MarketEvent] = []
        m = self._next()
        if m is None:
            return out
        if self._t0_ns is None:
            self._t0_ns = now_ns
            if self._rec0_ns is None:
                self._rec0_ns = m.recv_ns
        assert self._rec0_ns is not None
        due = self._rec0_ns + int((now_ns - self._t0_ns) * self.speed)
        while m is not None and m.recv_ns <= due:
            self._pending = None
            if m.channel in _SNAPSHOT_CHANNELS:
                self._snapshots[m.symbol] = (m.recv_ns, m.payload)
            elif m.channel not in _NOT_PUSHED and m.stream in active:
                out.append(self._event(m))
            m = self._next()
        self.sent += len(out)
        return out

    def on_subscribe(self, stream: str, now_ns: int) -> Sequence[MarketEvent]:
        return ()

    def depth_snapshot(self, symbol: str, limit: int, now_ns: int) -> DepthSnapshot | None:
        """The latest recorded REST snapshot or hourly checkpoint of ``symbol`` so far."""
        got = self._snapshots.get(symbol)
        if got is None:
            return None
        recv_ns, body = got
        obj = orjson.loads(body)
        if "lastUpdateId" not in obj:
            return None
        return DepthSnapshot(
            last_update_id=int(obj["lastUpdateId"]),
            bids=[(str(p), str(q)) for p, q in obj.get("bids", [])[:limit]],
            asks=[(str(p), str(q)) for p, q in obj.get("asks", [])[:limit]],
            time_ms=int(obj.get("E", recv_ns // 1_000_000)),
        )

    def reset_book(self, symbol: str | None) -> None:
        """Recorded books cannot be restarted; faults that need it do nothing here."""
