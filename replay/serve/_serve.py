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

from collections.abc import Collection, Sequence

import orjson
import trio

from recorder import Message
from recorder.archive import ArchiveRoot, Selection
from recorder.core import ALL_SYMBOLS, CONTROL_CHANNEL, SESSION_CHANNEL, UNPARSED_CHANNEL, codec_for
from recorder.venues import JsonChannel
from replay.reader import ArchiveReader, MessageChunks
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
    """Recorded market data of one venue as a simulator ``MarketSource``.

    The archive is read ahead by :meth:`run` (which the simulator starts in its nursery), in
    worker threads, so that :meth:`advance`, called on the event loop every tick, only takes
    messages already read: a slow disk or object store delays the replay, never the server.
    ``finished`` is set once every recorded message has been handed out.
    """

    def __init__(
        self,
        root: str | ArchiveRoot,
        venue: str,
        *,
        start_ns: int | None = None,
        speed: float = 1.0,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._venue = venue
        self.root = root
        self.speed = speed
        self._reader = ArchiveReader(root, Selection.of(venues=[venue], start_ns=start_ns))
        self._chunks: MessageChunks | None = None
        self._chunk: list[Message] = []
        self._i = 0  # the next message of ``_chunk``
        self.finished = trio.Event()
        self._t0_ns: int | None = None
        self._rec0_ns: int | None = start_ns
        self._snapshots: dict[str, tuple[int, bytes]] = {}
        codecs = {p.key.channel: codec_for(venue, p.key.channel) for p in self._reader.partitions}
        self._binary = {channel: codec.binary for channel, codec in codecs.items()}
        # The server wraps payloads per connection (Binance's combined streams): the recorded
        # wrapper comes off.
        self._wrapped = {
            channel: codec.envelope
            for channel, codec in codecs.items()
            if isinstance(codec, JsonChannel) and codec.envelope.wrapper is not None
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

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read the archive ahead (worker threads, a bounded channel) until cancelled;
        started once the first messages are read, so that the first :meth:`advance` (which
        starts the replay clock) has them."""
        async with self._reader.chunks() as chunks:
            self._chunk = await anext(chunks, [])
            self._chunks = chunks
            task_status.started()
            await trio.sleep_forever()

    def _next(self) -> Message | None:
        """The next recorded message, if it has been read yet."""
        if self._i >= len(self._chunk):
            chunk = None if self._chunks is None else self._chunks.receive_nowait()
            if chunk is None:
                if self._chunks is not None and self._chunks.finished:
                    self.finished.set()
                return None
            self._chunk, self._i = chunk, 0
        return self._chunk[self._i]

    def _event(self, m: Message) -> MarketEvent:
        payload = m.payload
        envelope = self._wrapped.get(m.channel)
        if envelope is not None and envelope.wrapper is not None:
            env, inner = envelope.split(payload)
            if env == envelope.wrapper.envelope:
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
            self._i += 1
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
