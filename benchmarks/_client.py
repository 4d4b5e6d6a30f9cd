"""The transport ceiling: a client that only receives the frames, with trio-websocket.

``python -m benchmarks._client '<json spec>'`` prints one JSON line: messages, first and last
receive time (epoch ns). Spec: ``url``, ``shards`` (a list of stream lists, one per connection),
``expected`` (messages in total), ``message_queue_size``, ``receive_buffer_size``, ``ca``.
"""

from __future__ import annotations

import ssl
import sys
import time
from typing import Any

import orjson
import trio
from trio_websocket import open_websocket_url


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    ctx: ssl.SSLContext | None = None
    if spec.get("ca"):
        ctx = ssl.create_default_context(cafile=spec["ca"])
    expected = int(spec["expected"])
    state = {"n": 0, "first": 0, "last": 0}
    done = trio.Event()

    async def one(streams: list[str]) -> None:
        async with open_websocket_url(
            spec["url"],
            ssl_context=ctx,
            message_queue_size=int(spec["message_queue_size"]),
            receive_buffer_size=int(spec["receive_buffer_size"]),
            max_message_size=16 * 1024 * 1024,
        ) as ws:
            pending: set[int] = set()
            for i in range(0, len(streams), 200):
                rid = len(pending) + 1
                pending.add(rid)
                req = {"method": "SUBSCRIBE", "params": streams[i : i + 200], "id": rid}
                await ws.send_message(orjson.dumps(req).decode())
            while pending:
                reply = orjson.loads(await ws.get_message())
                pending.discard(reply.get("id"))
            while True:
                await ws.get_message()
                now = time.time_ns()
                if not state["first"]:
                    state["first"] = now
                state["last"] = now
                state["n"] += 1
                if state["n"] >= expected:
                    done.set()

    async with trio.open_nursery() as nursery:
        for streams in spec["shards"]:
            nursery.start_soon(one, streams)
        await done.wait()
        nursery.cancel_scope.cancel()
    return state


def main() -> None:
    spec = orjson.loads(sys.argv[1])
    out = trio.run(run, spec)
    print(orjson.dumps(out).decode(), flush=True)


if __name__ == "__main__":
    main()
