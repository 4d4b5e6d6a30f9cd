"""The operations endpoint: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

A small HTTP/1.1 server on h11 under Trio, started in the recorder's nursery when the job
sets ``metrics_port``. Each request takes a statistics snapshot and lets ``_metrics.py``
decide the answer; a slow or broken scraper costs one task and never touches the capture.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

import h11
import orjson
import trio

from recorder.capture._metrics import (
    CONTENT_TYPE,
    HealthPolicy,
    RecorderStatistics,
    readiness,
    render_metrics,
)

log = logging.getLogger("ticktape.ops")

_MAX_REQUEST = 16 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    """Resident memory of this process now (Linux ``/proc``), or None where unknown."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def answer(
    target: str, stats: RecorderStatistics, now_ns: int, policy: HealthPolicy
) -> tuple[int, str, bytes]:
    """(status, content type, body) for a GET of ``target``."""
    path = target.split("?", 1)[0]
    if path == "/metrics":
        return 200, CONTENT_TYPE, render_metrics(stats, now_ns, rss_bytes())
    if path == "/healthz":
        return 200, "application/json", orjson.dumps({"status": "alive"})
    if path == "/readyz":
        health = readiness(stats, now_ns, policy)
        return (200 if health.ready else 503), "application/json", orjson.dumps(health.body())
    return 404, "application/json", orjson.dumps({"error": f"no such path: {path}"})


async def _handle(
    stream: trio.SocketStream, snapshot: Callable[[], RecorderStatistics], policy: HealthPolicy
) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_REQUEST)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(_MAX_REQUEST)
                conn.receive_data(data)
                if not data:
                    return
                continue
            if isinstance(event, h11.Request):
                break
            if isinstance(event, h11.ConnectionClosed):
                return
        if event.method not in (b"GET", b"HEAD"):
            status, ctype, body = 405, "application/json", b'{"error":"GET only"}'
        else:
            status, ctype, body = answer(event.target.decode(), snapshot(), time.time_ns(), policy)
        headers = [
            ("content-type", ctype),
            ("content-length", str(len(body))),
            ("connection", "close"),
        ]
        await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
        if event.method != b"HEAD":
            await stream.send_all(conn.send(h11.Data(data=body)))
        await stream.send_all(conn.send(h11.EndOfMessage()))
    except (h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        log.debug("ops endpoint: dropped a bad request: %s", exc)
    finally:
        await stream.aclose()


async def serve_ops(
    host: str,
    port: int,
    snapshot: Callable[[], RecorderStatistics],
    policy: HealthPolicy,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the endpoint until cancelled; ``task_status.started`` gets the bound port."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    log.info("metrics and health on http://%s:%d (/metrics, /healthz, /readyz)", host, bound)
    async with trio.open_nursery() as nursery:
        task_status.started(bound)
        for listener in listeners:
            nursery.start_soon(
                trio.serve_listeners,
                lambda s: _handle(s, snapshot, policy),
                [listener],
            )


__all__ = ["answer", "rss_bytes", "serve_ops"]
