"""NDJSON ledger of every market-data message written to a connection."""

from __future__ import annotations

import io
import math

import orjson
import trio


class Ledger:
    """Buffered appends; :meth:`run` flushes every ``interval`` s, :meth:`close` at shutdown."""

    def __init__(self, path: str, interval: float = 1.0) -> None:
        self._fh: io.BufferedWriter = open(path, "ab")  # noqa: SIM115 - closed in close()
        self._buf: list[bytes] = []
        self._interval = interval
        self.lines = 0

    def record(
        self, venue: str, stream: str, conn: int, sent_ns: int, payload: bytes, binary: bool
    ) -> None:
        if binary:
            rec = {"venue": venue, "stream": stream, "conn": conn, "sent_ns": sent_ns,
                   "payload_hex": payload.hex()}  # fmt: skip
        else:
            rec = {"venue": venue, "stream": stream, "conn": conn, "sent_ns": sent_ns,
                   "payload": payload.decode("utf-8", "replace")}  # fmt: skip
        self._buf.append(orjson.dumps(rec) + b"\n")
        self.lines += 1
        if len(self._buf) >= 50_000:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            self._fh.write(b"".join(self._buf))
            self._buf.clear()
        self._fh.flush()

    async def run(self) -> None:
        interval = self._interval if self._interval > 0 else math.inf
        while True:
            await trio.sleep(interval)
            self.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self.flush()
            self._fh.close()
