"""Deterministic messages of several venues and channels, for archive tests."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import trio

from recorder import HOUR_NS, Message
from recorder.archive import ArchiveRoot
from recorder.venues._channels import session_payload
from recorder.venues.sbe import encode_trades

# 2026-11-21 10:59:00 UTC: a minute before an hour boundary.
T0 = 1_795_258_740_000_000_000


__all__ = ["HOUR_NS", "T0"]


def binance_trade(i: int, recv_ns: int, sym: str = "BTCUSDT") -> Message:
    e_ms = recv_ns // 1_000_000 - 3
    data = (
        f'{{"e":"trade","E":{e_ms},"s":"{sym}","t":{1000 + i},'
        f'"p":"{61000 + i % 97}.{i % 100:02d}000000","q":"0.{(i * 7919) % 100000:05d}000",'
        f'"T":{e_ms - 1},"m":{"true" if i % 3 else "false"},"M":true}}'
    )
    stream = f"{sym.lower()}@trade"
    payload = f'{{"stream":"{stream}","data":{data}}}'.encode()
    return Message(
        venue="binance-spot",
        stream=stream,
        channel="trade",
        symbol=sym,
        recv_ns=recv_ns,
        conn="binance-spot.0#1@t",
        seq=i,
        payload=payload,
    )


def binance_depth(i: int, recv_ns: int, sym: str = "BTCUSDT") -> Message:
    e_ms = recv_ns // 1_000_000
    first = 5000 + i * 3
    data = (
        f'{{"e":"depthUpdate","E":{e_ms},"s":"{sym}","U":{first},"u":{first + 2},'
        f'"b":[["6100{i % 10}.10000000","1.{i % 7}0000000"]],'
        f'"a":[["6101{i % 10}.20000000","0.00000000"]]}}'
    )
    stream = f"{sym.lower()}@depth@100ms"
    return Message(
        venue="binance-spot",
        stream=stream,
        channel="depth",
        symbol=sym,
        recv_ns=recv_ns,
        conn="binance-spot.0#1@t",
        seq=100_000 + i,
        payload=f'{{"stream":"{stream}","data":{data}}}'.encode(),
    )


def bybit_trade(i: int, recv_ns: int, sym: str = "ETHUSDT") -> Message:
    ts = recv_ns // 1_000_000
    payload = orjson.dumps(
        {
            "topic": f"publicTrade.{sym}",
            "type": "snapshot",
            "ts": ts,
            "data": [
                {
                    "T": ts - 2,
                    "s": sym,
                    "S": "Buy" if i % 2 else "Sell",
                    "v": f"{1 + i % 5}.{i % 10}0",
                    "p": f"{3000 + i % 13}.{i % 100:02d}",
                    "L": "PlusTick",
                    "i": f"b8d2a5d4-{i:04d}-5f0c-9d3a-3c1f1e2d{i:04d}",
                    "BT": False,
                    "RPI": False,
                    "seq": 900_000 + i,
                }
            ],
        }
    )
    return Message(
        venue="bybit-linear",
        stream=f"publicTrade.{sym}",
        channel="publicTrade",
        symbol=sym,
        recv_ns=recv_ns,
        conn="bybit-linear.0#1@t",
        seq=i,
        payload=payload,
    )


def sbe_trade(i: int, recv_ns: int) -> Message:
    us = recv_ns // 1000
    payload = encode_trades(
        event_time_us=us,
        transact_time_us=us - 5,
        price_exponent=-2,
        qty_exponent=-5,
        trades=[(7_000_000 + i, 3_712_345 + i, 150_000 + i, bool(i % 2))],
        symbol="BTCUSDT",
    )
    return Message(
        venue="binance-sbe",
        stream="btcusdt@trade",
        channel="trade",
        symbol="BTCUSDT",
        recv_ns=recv_ns,
        conn="binance-sbe.0#1@t",
        seq=i,
        payload=payload,
    )


def session_event(i: int, recv_ns: int) -> Message:
    return Message(
        venue="binance-spot",
        stream="binance-spot.0",
        channel="session",
        symbol="ALL",
        recv_ns=recv_ns,
        conn="binance-spot.0#1@t",
        seq=0,
        payload=session_payload(
            "gap",
            recv_ns,
            reason="test",
            streams=["btcusdt@trade"],
            gap_start_ns=recv_ns - 10,
            gap_end_ns=recv_ns,
        ),
    )


def mixed_messages(n: int, start_ns: int = T0, step_ns: int = 1_000_000_000) -> list[Message]:
    """``n`` rounds of messages of five channels on three venues, ``step_ns`` apart."""
    out: list[Message] = []
    for i in range(n):
        t = start_ns + i * step_ns
        out.append(binance_trade(i, t))
        out.append(binance_trade(i, t + 1, sym="ETHUSDT"))
        out.append(binance_depth(i, t + 2))
        out.append(bybit_trade(i, t + 3))
        out.append(sbe_trade(i, t + 4))
        if i % 10 == 0:
            out.append(session_event(i, t + 5))
    return out


class _SlowFile:
    """A file whose every read first sleeps (a slow disk or object store)."""

    def __init__(self, inner: pa.NativeFile, delay: float, owner: SlowFiles) -> None:
        self._inner, self._delay, self._owner = inner, delay, owner
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        time.sleep(self._delay)
        data: bytes = self._inner.read() if n is None or n < 0 else self._inner.read(n)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._inner.seek(offset, whence))

    def tell(self) -> int:
        return int(self._inner.tell())

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._owner.open_files -= 1
            self._inner.close()


class SlowFiles(pafs.FileSystemHandler):  # type: ignore[misc]  # pyarrow has no stubs
    """The local filesystem, read-only, with ``delay`` seconds of sleep on every read."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.local = pafs.LocalFileSystem()
        self.opened = 0
        self.open_files = 0

    def get_type_name(self) -> str:
        return "slow"

    def normalize_path(self, path: str) -> str:
        return path

    def equals(self, other: Any) -> bool:
        return other is self

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return list(self.local.get_file_info(paths))

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return list(self.local.get_file_info(selector))

    def open_input_file(self, path: str) -> pa.NativeFile:
        inner = self.local.open_input_file(path)
        self.opened += 1
        self.open_files += 1
        return pa.PythonFile(_SlowFile(inner, self.delay, self), mode="r")

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self.open_input_file(path)

    def _read_only(self, *args: Any) -> Any:
        raise OSError("read-only test filesystem")

    create_dir = delete_dir = delete_dir_contents = delete_root_dir_contents = _read_only
    delete_file = move = copy_file = open_output_stream = open_append_stream = _read_only


def slow_root(path: str, storage: SlowFiles) -> ArchiveRoot:
    """The archive at ``path``, read through ``storage``."""
    return ArchiveRoot(pafs.PyFileSystem(storage), path, "slow", object_store=False)


async def max_tick_gap(
    tick: float,
    until: trio.Event,
    worst: list[float],
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Tick every ``tick`` seconds until ``until`` is set (start it with ``nursery.start``:
    it is ticking once started); append the longest time between ticks to ``worst`` (the
    event loop's worst stall, the last tick after ``until`` included)."""
    longest = 0.0
    last = trio.current_time()
    task_status.started()
    while True:
        await trio.sleep(tick)
        now = trio.current_time()
        longest, last = max(longest, now - last), now
        if until.is_set():
            break
    worst.append(longest)
