"""Record the local exchange simulator and compare the archive with the simulator's ledger."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import trio

from recorder import Message, Recorder, RecorderConfig, VenueJob
from recorder.capture._connection import Timing
from recorder.capture._policy import Backoff, RolloverSchedule
from replay import open_archive
from replay.sim import Fault, SimConfig, Simulator, VenueConfig

# Written by the recorder from REST responses or its own book state, not sent over WebSocket.
REST_CHANNELS = ("depth_snapshot", "orderbook_snapshot", "book_checkpoint")

FAST = Timing(
    connect_timeout=5.0,
    subscribe_timeout=5.0,
    stall_after=600.0,
    backoff=Backoff(base=0.05, factor=2.0, cap=0.4, jitter=0.1, healthy_after=2.0),
)


def rolling(max_age: float) -> RolloverSchedule:
    """A 24-hour rollover schedule compressed to ``max_age`` seconds."""
    return RolloverSchedule(
        max_age_s=max_age,
        earliest_s=max_age * 0.5,
        latest_s=max_age * 0.2,
        min_spacing_s=max_age * 0.05,
        overlap_s=max_age * 0.1,
    )


@dataclass
class Recording:
    root: Path
    ledger: list[dict[str, object]]
    messages: list[Message]
    stop_ns: int
    sim: Simulator
    recorder: Recorder
    extra: dict[str, object] = field(default_factory=dict)

    def data(self) -> list[Message]:
        """WebSocket market data as recorded (no session events, control replies, REST)."""
        skip = ("session", "control", "unparsed", *REST_CHANNELS)
        return [m for m in self.messages if m.channel not in skip]

    def ledgered(self) -> list[Message]:
        """What the simulator's ledger covers: data, undecodable data frames, and control
        frames that belong to a stream (serverShutdown)."""
        return [
            m
            for m in self.messages
            if m.channel not in ("session", *REST_CHANNELS) and (m.channel != "control" or m.stream)
        ]

    def sessions(self, event: str | None = None) -> list[dict[str, object]]:
        out = [orjson.loads(m.payload) for m in self.messages if m.channel == "session"]
        return [e for e in out if event is None or e["event"] == event]

    def sent(self) -> list[dict[str, object]]:
        """Ledger lines sent before the recorder was stopped."""
        return [r for r in self.ledger if int(r["sent_ns"]) <= self.stop_ns]  # type: ignore[call-overload]

    def check_exactly_once(self) -> None:
        """Every message the simulator sent (on any of our connections) is in the archive as
        many times as it was sent on one connection, byte-exact, under the right stream;
        nothing else is."""

        def payload(r: dict[str, object]) -> bytes:
            if "payload_hex" in r:
                return bytes.fromhex(str(r["payload_hex"]))
            return str(r["payload"]).encode()

        per_conn: dict[tuple[str, bytes], Counter[object]] = {}
        for r in self.sent():
            key = (str(r["stream"]), payload(r))
            per_conn.setdefault(key, Counter())[r["conn"]] += 1
        expected = {k: max(c.values()) for k, c in per_conn.items()}
        got = Counter((m.stream, m.payload) for m in self.ledgered())
        missing = {k: n - got[k] for k, n in expected.items() if got[k] < n}
        assert not missing, f"{len(missing)} sent messages missing, e.g. {next(iter(missing))}"
        all_sent = {(str(r["stream"]), payload(r)) for r in self.ledger}
        extra = [k for k in got if k not in all_sent]
        assert not extra, f"{len(extra)} archived messages were never sent, e.g. {extra[0]}"
        over = {k: n for k, n in got.items() if k in expected and n > expected[k]}
        assert not over, f"{len(over)} messages archived too often, e.g. {next(iter(over))}"


def streams_of(event: dict[str, object]) -> list[str]:
    """The ``streams`` list of a session event (empty if it has none)."""
    v = event.get("streams") or []
    assert isinstance(v, list)
    return [str(x) for x in v]


Action = Callable[[Simulator, Recorder], Awaitable[None]]


async def record_sim(
    tmp_path: Path,
    streams: dict[str, Sequence[str]],
    *,
    duration: float = 2.0,
    timing: Timing = FAST,
    rate: float = 300.0,
    venue_config: dict[str, VenueConfig] | None = None,
    faults: Sequence[Fault] = (),
    action: Action | None = None,
    settle: float = 0.6,
    max_streams_per_connection: int | None = None,
) -> Recording:
    """Run the simulator and a recorder of ``streams`` for ``duration`` seconds (real time)."""
    root = tmp_path / "archive"
    ledger_path = tmp_path / "ledger.ndjson"
    sim = Simulator(
        SimConfig(
            venues=tuple(streams),
            rate=rate,
            seed=7,
            ledger_path=str(ledger_path),
            ledger_flush_interval=0.2,
            venue_config=venue_config or {},
            faults=tuple(faults),
        )
    )
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(sim.run)
        jobs = tuple(
            VenueJob(
                venue=v,
                streams=tuple(s),
                ws_url=urls.ws(v),
                rest_url=urls.rest(v),
                max_streams_per_connection=max_streams_per_connection,
                api_key_env="TICKTAPE_TEST_SBE_KEY",
            )
            for v, s in streams.items()
        )
        cfg = RecorderConfig(
            root=str(root), jobs=jobs, flush_interval=0.5, fsync=False, timing=timing
        )
        rec = Recorder(cfg)
        async with trio.open_nursery() as rn:
            await rn.start(rec.run)
            if action is not None:
                with trio.move_on_after(duration):
                    await action(sim, rec)
                    await trio.sleep_forever()
            else:
                await trio.sleep(duration)
            stop_ns = time.time_ns()
            await trio.sleep(settle)  # let frames in flight arrive
            rn.cancel_scope.cancel()
        nursery.cancel_scope.cancel()
    ledger = [orjson.loads(line) for line in ledger_path.read_bytes().splitlines() if line]
    return Recording(root, ledger, list(open_archive(str(root))), stop_ns, sim, rec)
