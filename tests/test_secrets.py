"""No API key in any text ticktape shows or stores, whatever a server sends back.

Proxies and WAFs answer a refused upgrade with an error page that echoes the request,
headers and all. The hostile server here does exactly that: ``HTTP/1.1 400`` with the
request as its body, so the ``X-MBX-APIKEY`` header the SBE venue sends comes straight
back. The key must not appear in the log, in the archive (file bytes or decoded rows), or
in ``ticktape replay`` output.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from recorder.core._secrets import MASK, redact_secrets, remember_secret
from recorder.net._ws import ClosedByPeer, ConnectionLost, HandshakeRejected, connect

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


class EchoingRefuser:
    """A TCP server on 127.0.0.1 that answers every request with ``400`` and the request
    itself as the body (or, with ``prefix``, that text followed by the request). With
    ``last_first`` it lists the header lines last first, as pages that show the headers
    in some order of their own do: the extra headers come first, within any cut."""

    def __init__(self, prefix: bytes = b"", *, last_first: bool = False) -> None:
        self.prefix = prefix
        self.last_first = last_first
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                req = b""
                try:
                    while b"\r\n\r\n" not in req:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        req += chunk
                    # Recorded before answering: the client may assert on it as soon as it reads.
                    self.requests.append(req)
                    shown = req
                    if self.last_first:
                        shown = b"\r\n".join(reversed(req.strip().split(b"\r\n")))
                    body = self.prefix + shown
                    conn.sendall(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                        b"Connection: close\r\n\r\n" + body
                    )
                except OSError:
                    continue

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def refuser() -> Iterator[EchoingRefuser]:
    srv = EchoingRefuser()
    yield srv
    srv.close()


def _key() -> str:
    return "canary" + secrets.token_hex(24)


async def test_a_refusal_echoing_the_key_is_redacted(refuser: EchoingRefuser) -> None:
    key = _key()
    with pytest.raises(HandshakeRejected) as exc:
        await connect(f"{refuser.url}/ws", headers=[("X-MBX-APIKEY", key)])
    assert key.encode() in refuser.requests[0]  # the server did echo it
    err = exc.value
    assert err.status == 400 and "handshake rejected: HTTP 400" in err.reason
    for text in (err.reason, str(err), repr(err), err.body.decode("latin-1")):
        assert key not in text
    assert f"X-MBX-APIKEY: {MASK}" in err.body.decode()


async def test_a_key_straddling_the_cut_of_the_error_text_is_not_half_shown() -> None:
    key = _key()
    # The echoed header begins just before the 200th character of the body.
    srv = EchoingRefuser(prefix=b"x" * 180 + b" key=" + key.encode() + b"\n")
    try:
        with pytest.raises(HandshakeRejected) as exc:
            await connect(f"{srv.url}/ws", headers=[("X-MBX-APIKEY", key)])
    finally:
        srv.close()
    assert key[:8] not in exc.value.reason and key[:8] not in str(exc.value)


def test_credential_fields_are_masked_even_when_the_value_is_unknown() -> None:
    unknown = "never-registered-" + secrets.token_hex(8)
    for text in (
        f"GET /ws HTTP/1.1\r\nX-MBX-APIKEY: {unknown}\r\nHost: x",
        f"x-mbx-apikey:{unknown}",
        f'{{"apiKey": "{unknown}"}}',
        f"Authorization: Bearer {unknown}",
        f"?api_key={unknown}&x=1",
    ):
        assert unknown not in redact_secrets(text), text
    assert redact_secrets("set environment variable TICKTAPE_BINANCE_API_KEY") == (
        "set environment variable TICKTAPE_BINANCE_API_KEY"
    )


def test_remembered_secrets_are_masked_plain_and_url_quoted() -> None:
    key = "k/" + secrets.token_hex(12) + "+="
    remember_secret(key)
    out = redact_secrets(f"a {key} b {urllib.parse.quote(key, safe='')} c")
    assert out == f"a {MASK} b {MASK} c"


def test_transport_errors_are_redacted_whatever_their_source() -> None:
    key = _key()
    remember_secret(key)
    assert key not in ConnectionLost(f"OSError: refused ({key})").reason
    closed = ClosedByPeer(1008, f"bad key {key}")
    assert key not in closed.reason and key not in closed.close_reason


@pytest.fixture
def waf() -> Iterator[EchoingRefuser]:
    srv = EchoingRefuser(prefix=b"Request blocked. Your headers:\n", last_first=True)
    yield srv
    srv.close()


@pytest.mark.slow
def test_recording_against_an_echoing_proxy_leaks_the_key_nowhere(
    tmp_path: Path, waf: EchoingRefuser
) -> None:
    """The whole path: log lines, session events in the archive, ``ticktape replay``."""
    refuser = waf
    key = _key()
    root = tmp_path / "arch"
    env = {**ENV, "TICKTAPE_BINANCE_API_KEY": key}
    rec = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "replay.cli",
            "record",
            "--venue",
            "binance-sbe",
            "--streams",
            "btcusdt@trade",
            "--ws-url",
            refuser.url,
            "--root",
            str(root),
            "--flush-interval",
            "1",
            "--no-status",
        ],
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while len(refuser.requests) < 2 and time.monotonic() < deadline:
            assert rec.poll() is None, "the recorder exited early"
            time.sleep(0.1)
        assert len(refuser.requests) >= 2, "the recorder never retried"
        assert all(key.encode() in r for r in refuser.requests)
        rec.send_signal(signal.SIGINT)
        _, err = rec.communicate(timeout=60)
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()
    log = err.decode()
    assert "handshake rejected: HTTP 400" in log, log  # what was logged, and is masked
    assert key not in log

    files = [p for p in root.rglob("*") if p.is_file()]
    assert files
    for p in files:
        assert key.encode() not in p.read_bytes(), p

    from replay import open_archive

    events = [orjson.loads(m.payload) for m in open_archive(str(root)) if m.channel == "session"]
    reasons = [e.get("reason", "") for e in events if e["event"] == "disconnected"]
    assert any("handshake rejected: HTTP 400" in r for r in reasons), events
    for m in open_archive(str(root)):
        assert key.encode() not in m.payload
        assert key not in repr(m.fields)

    out = subprocess.run(
        [sys.executable, "-m", "replay.cli", "replay", str(root)],
        capture_output=True,
        check=True,
        env=env,
        timeout=60,
    )
    assert b"handshake rejected" in out.stdout
    assert key.encode() not in out.stdout and key.encode() not in out.stderr
