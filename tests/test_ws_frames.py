"""The receive fast path (``_wsframes.FrameSplitter``) and its hand-over to wsproto in ``WsClient``.

The splitter is tested alone with tables of bytes; ``WsClient`` is tested against itself in
pass-through mode, which is the wsproto-only receive path it had before the fast path: same
messages, same receive stamps, same replies sent, same error at the end.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import deque
from dataclasses import dataclass
from unittest import mock

import pytest
import trio
import wsproto.events as ev
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType

from recorder.core._errors import RemoteProtocolError
from recorder.core._frame import Frame
from recorder.net import _ws
from recorder.net._ws import ClosedByPeer, ConnectionLost, WsClient
from recorder.net._wsframes import FrameSplitter

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(payload: bytes, opcode: int = 1, *, fin: bool = True, first: int | None = None) -> bytes:
    """One unmasked server frame, with the shortest length form (or the given first byte)."""
    b0 = (0x80 if fin else 0) | opcode if first is None else first
    n = len(payload)
    if n < 126:
        head = bytes([b0, n])
    elif n < 1 << 16:
        head = bytes([b0, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, 127]) + n.to_bytes(8, "big")
    return head + payload


def masked(payload: bytes, opcode: int = 1) -> bytes:
    key = b"\x01\x02\x03\x04"
    body = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + body


# --- the splitter alone ---------------------------------------------------------------------


def split(reads: list[bytes], max_payload: int = 1 << 20) -> list[Frame | bytes]:
    """Everything the splitter produces over these reads, in order: frames it took and the
    pieces it handed to wsproto (recv_ns is the read's index)."""
    s = FrameSplitter(max_payload)
    out: list[Frame | bytes] = []
    ready: deque[Frame] = deque()
    for i, data in enumerate(reads):
        s.feed(data)
        while (chunk := s.next(i, ready)) is not None:
            out += ready
            ready.clear()
            out.append(chunk)
        out += ready
        ready.clear()
    return out


FAST_CASES = [
    pytest.param(b"", True, id="empty-text"),
    pytest.param(b"hello", True, id="text"),
    pytest.param(b"\x00\xff\x10", False, id="binary"),
    pytest.param("prix 3 €, größe ✓".encode(), True, id="utf8-text"),
    pytest.param(b"x" * 125, True, id="len-125"),
    pytest.param(b"y" * 126, True, id="len16-126"),
    pytest.param(b"z" * 65535, False, id="len16-65535"),
    pytest.param(b"w" * 65536, True, id="len64-65536"),
    pytest.param(b"v" * 70001, False, id="len64-70001"),
]


@pytest.mark.parametrize(("payload", "text"), FAST_CASES)
def test_fast_frames_from_one_read(payload: bytes, text: bool) -> None:
    data = frame(payload, 1 if text else 2)
    assert split([data + data]) == [Frame(0, payload, text), Frame(0, payload, text)]


@pytest.mark.parametrize(("payload", "text"), FAST_CASES[:6])
def test_fast_frame_split_at_every_byte(payload: bytes, text: bool) -> None:
    # Three frames; the cut runs through all of them. Each frame is stamped with the read
    # that completed it, and nothing goes to wsproto.
    a = frame(b"a", 2)
    data = a + frame(payload, 1 if text else 2) + a
    middle_end = len(data) - len(a)
    for cut in range(len(data) + 1):
        expected = [
            Frame(0 if cut >= len(a) else 1, b"a", False),
            Frame(0 if cut >= middle_end else 1, payload, text),
            Frame(0 if cut == len(data) else 1, b"a", False),
        ]
        assert split([data[:cut], data[cut:]]) == expected, cut


@pytest.mark.parametrize(("payload", "text"), FAST_CASES[6:])
def test_long_frame_split_in_its_header_and_payload(payload: bytes, text: bool) -> None:
    data = frame(payload, 1 if text else 2)
    for cut in [*range(12), len(data) // 2, len(data) - 1]:
        assert split([data[:cut], data[cut:]]) == [Frame(1, payload, text)], cut


def test_frame_spread_over_many_reads() -> None:
    data = frame(b"q" * 300)
    assert split([data[i : i + 1] for i in range(len(data))]) == [
        Frame(len(data) - 1, b"q" * 300, True)
    ]


def test_control_frame_goes_to_wsproto_in_order() -> None:
    ping = frame(b"hb", 9)
    data = frame(b"one") + ping + frame(b"two")
    assert split([data]) == [Frame(0, b"one", True), ping, Frame(0, b"two", True)]


def test_control_frame_split_across_reads_is_handed_over_exactly() -> None:
    ping = frame(b"heartbeat", 9)
    data = frame(b"one") + ping + frame(b"two")
    for cut in range(len(data) + 1):
        out = split([data[:cut], data[cut:]])
        frames = [x for x in out if isinstance(x, Frame)]
        assert [f.payload for f in frames] == [b"one", b"two"], cut
        assert b"".join(x for x in out if isinstance(x, bytes)) == ping, cut


def test_fragmented_message_is_wsproto_s() -> None:
    parts = [frame(b"ab", 1, fin=False), frame(b"hb", 9), frame(b"cd", 0, fin=False)]
    parts += [frame(b"ef", 0), frame(b"next")]
    out = split([b"".join(parts)])
    assert out == [*parts[:4], Frame(0, b"next", True)]


def test_data_frame_inside_fragmented_message_is_wsproto_s() -> None:
    # wsproto fails it ("expected CONTINUATION"): it must get to see it.
    parts = [frame(b"ab", 1, fin=False), frame(b"cd")]
    assert split([b"".join(parts)]) == parts


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(frame(b"x", first=0xC1), id="rsv1"),
        pytest.param(frame(b"x", first=0xA2), id="rsv2"),
        pytest.param(frame(b"x", first=0x91), id="rsv3"),
        pytest.param(masked(b"x"), id="masked"),
        pytest.param(frame(b"x", 3), id="opcode-3"),
        pytest.param(frame(b"x", 9, fin=False), id="fragmented-ping"),
        pytest.param(bytes([0x89, 126]) + (200).to_bytes(2, "big") + b"p" * 200, id="long-ping"),
        pytest.param(bytes([0x81, 126, 0, 5]) + b"hello", id="len16-not-shortest"),
        pytest.param(bytes([0x81, 127]) + (300).to_bytes(8, "big") + b"h" * 300, id="len64-short"),
        pytest.param(bytes([0x82, 127, 0x80] + [0] * 7), id="len64-top-bit"),
    ],
)
def test_frames_wsproto_rejects_pass_everything_through(bad: bytes) -> None:
    data = frame(b"ok") + bad + frame(b"after")
    assert split([data]) == [Frame(0, b"ok", True), bad + frame(b"after")]
    # Cut anywhere inside the bad frame: wsproto still gets every byte from its start on.
    for cut in range(4, len(data)):
        out = split([data[:cut], data[cut:]])
        assert out[0] == Frame(0, b"ok", True), cut
        assert b"".join(x for x in out[1:] if isinstance(x, bytes)) == data[4:], cut
        assert all(isinstance(x, bytes) for x in out[1:]), cut


def test_invalid_utf8_text_goes_to_wsproto() -> None:
    bad = frame(b"ok \xff\xfe")
    assert split([frame(b"a") + bad + frame(b"b")]) == [
        Frame(0, b"a", True),
        bad,
        Frame(0, b"b", True),
    ]
    # Binary frames are not text: no validation.
    assert split([frame(b"\xff\xfe", 2)]) == [Frame(0, b"\xff\xfe", False)]


def test_frame_over_the_size_limit_is_streamed_to_wsproto() -> None:
    big = frame(b"B" * 300)
    data = frame(b"a") + big + frame(b"b")
    assert split([data[:100], data[100:250], data[250:]], max_payload=200) == [
        Frame(0, b"a", True),
        data[3:100],
        data[100:250],
        data[250 : 3 + len(big)],
        Frame(2, b"b", True),
    ]


# --- WsClient: the fast path against the wsproto-only path ----------------------------------


class ScriptedStream(trio.abc.Stream):
    """Answers the upgrade with a 101 (``glue``: in the same read as the first scripted read),
    then hands over the scripted reads one per ``receive_some``, then end of stream."""

    def __init__(
        self,
        reads: list[bytes],
        *,
        glue: bool = False,
        bytewise: bool = False,
        response: bytes | None = None,
    ) -> None:
        self.reads = deque(reads)
        self.glue = glue
        self.bytewise = bytewise
        self.response = response
        self.sent = bytearray()
        self.request = b""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        if not self.request:
            self.request = bytes(data)
            m = re.search(rb"sec-websocket-key: *(\S+)", self.request, re.IGNORECASE)
            assert m is not None
            accept = base64.b64encode(hashlib.sha1(m.group(1) + GUID).digest())
            response = (
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            if self.response is not None:
                response = self.response
            if self.glue and self.reads:
                response += self.reads.popleft()
            if self.bytewise:
                self.reads.extendleft(response[i : i + 1] for i in reversed(range(len(response))))
            else:
                self.reads.appendleft(response)
            return
        self.sent += data

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        return self.reads.popleft() if self.reads else b""

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@dataclass
class Outcome:
    frames: list[Frame]
    error: tuple[str, str, int | None]
    replies: list[tuple[str, object]]


class _Clock:
    def __init__(self) -> None:
        self.n = 0

    def time_ns(self) -> int:
        self.n += 1
        return self.n


def run_client(
    reads: list[bytes], *, wsproto_only: bool, glue: bool = False, max_size: int = 1 << 20
) -> Outcome:
    stream = ScriptedStream(reads, glue=glue)

    async def main() -> Outcome:
        client = WsClient(stream, max_message_size=max_size, receive_buffer=1 << 18)
        if wsproto_only:
            client._splitter.to_wsproto()
        await client._handshake("example", "/", [])
        frames: list[Frame] = []
        error: tuple[str, str, int | None]
        while True:
            try:
                frames.append(await client.receive())
            except ClosedByPeer as exc:
                # wsproto decodes a text frame in the pieces it arrived in, and the codec's
                # error names the position in the piece; the fast path hands wsproto a bad
                # frame whole. Same code, same error, but the position may differ.
                error = ("closed", re.sub(r"position \d+", "position N", exc.reason), exc.code)
                break
            except ConnectionLost as exc:
                error = ("lost", exc.reason, None)
                break
            except RemoteProtocolError as exc:
                error = ("protocol", str(exc), None)
                break
        # What the client sent back, as the server reads it (the masks are random).
        server = Connection(ConnectionType.SERVER)
        server.receive_data(bytes(stream.sent))
        replies: list[tuple[str, object]] = []
        for e in server.events():
            if isinstance(e, ev.Pong):
                replies.append(("pong", bytes(e.payload)))
            elif isinstance(e, ev.CloseConnection):
                replies.append(("close", (e.code, e.reason)))
            else:
                replies.append((type(e).__name__, None))
        return Outcome(frames, error, replies)

    with mock.patch.object(_ws, "time", _Clock()):
        return trio.run(main)


def both(reads: list[bytes], **kw: object) -> Outcome:
    fast = run_client(reads, wsproto_only=False, **kw)  # type: ignore[arg-type]
    slow = run_client(reads, wsproto_only=True, **kw)  # type: ignore[arg-type]
    assert fast == slow
    return fast


def test_client_ping_between_data_frames() -> None:
    data = frame(b"one") + frame(b"hb", 9) + frame(b"two")
    out = both([data[:5], data[5:]])
    # Stamps: 1 is the handshake read, 2 and 3 the two reads.
    assert out.frames == [Frame(2, b"one", True), Frame(3, b"two", True)]
    assert out.replies == [("pong", b"hb")]
    assert out.error == ("lost", "connection closed by server without a close frame", None)


def test_client_fragmented_message() -> None:
    parts = [frame(b"ab", 1, fin=False), frame(b"hb", 9), frame(b"cd", 0, fin=False)]
    data = b"".join([*parts, frame(b"ef", 0), frame(b"\x01", 2)])
    out = both([data[:5], data[5:]])
    assert out.frames == [Frame(3, b"abcdef", True), Frame(3, b"\x01", False)]
    assert out.replies == [("pong", b"hb")]


def test_client_invalid_utf8_closes_with_1007() -> None:
    out = both([frame(b"good") + frame(b"bad \xc3\x28") + frame(b"never")])
    assert out.frames == [Frame(2, b"good", True)]
    assert out.error[0] == "closed"
    assert out.error[2] == 1007
    assert "can't decode" in out.error[1]


def test_client_masked_server_frame_is_a_protocol_error() -> None:
    out = both([frame(b"good") + masked(b"nope") + frame(b"never")])
    assert out.frames == [Frame(2, b"good", True)]
    assert out.error == (
        "closed",
        "closed by server: 1002 client received unexpected masked frame",
        1002,
    )


def test_client_rsv_bit_is_a_protocol_error() -> None:
    out = both([frame(b"good"), frame(b"x", first=0xC1) + frame(b"never")])
    assert out.frames == [Frame(2, b"good", True)]
    assert out.error == ("closed", "closed by server: 1002 Reserved bit set unexpectedly", 1002)


def test_client_close_frame_stops_the_stream() -> None:
    close = frame((1001).to_bytes(2, "big") + b"bye", 8)
    out = both([frame(b"a") + close + frame(b"never")])
    assert out.frames == [Frame(2, b"a", True)]
    assert out.error == ("closed", "closed by server: 1001 bye", 1001)
    assert out.replies == [("close", (1001, "bye"))]


def test_client_message_over_the_limit() -> None:
    out = both([frame(b"a"), frame(b"L" * 500)[:300], frame(b"L" * 500)[300:]], max_size=400)
    assert out.frames == [Frame(2, b"a", True)]
    assert out.error == ("protocol", "message larger than 400 bytes", None)


def test_client_frames_in_the_handshake_read() -> None:
    data = frame(b"early") + frame(b"hb", 9) + frame(b"late")
    out = run_client([data[:-2], data[-2:]], wsproto_only=False, glue=True)
    # Taken from the 101's read (stamp 1), not held until the next one.
    assert out.frames == [Frame(1, b"early", True), Frame(2, b"late", True)]
    assert out.replies == [("pong", b"hb")]
    assert out.frames == run_client([data[:-2], data[-2:]], wsproto_only=True, glue=True).frames


def test_client_response_in_single_bytes_then_frames() -> None:
    # The end of the header block is found across reads; the frames glued to its last byte
    # are the splitter's, stamped with that read.
    stream = ScriptedStream([frame(b"first") + frame(b"hb", 9), frame(b"second")], glue=True)
    stream.bytewise = True

    async def main() -> list[Frame]:
        client = WsClient(stream, max_message_size=1000, receive_buffer=1 << 18)
        await client._handshake("example", "/", [])
        return [await client.receive(), await client.receive()]

    frames = trio.run(main)
    assert [f.payload for f in frames] == [b"first", b"second"]
    assert frames[0].recv_ns < frames[1].recv_ns
    assert stream.sent  # the pong


@pytest.mark.parametrize("bytewise", [False, True])
def test_client_rejected_handshake_keeps_its_body(bytewise: bool) -> None:
    response = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!"
    stream = ScriptedStream([], response=response, bytewise=bytewise)

    async def main() -> None:
        client = WsClient(stream, max_message_size=1000, receive_buffer=1 << 18)
        await client._handshake("example", "/", [])

    with pytest.raises(_ws.HandshakeRejected) as info:
        trio.run(main)
    assert (info.value.status, info.value.body) == (403, b"nope!")


# --- the property: any frames, cut anywhere, give what wsproto alone gives --------------------

_text = st.text(max_size=40).map(str.encode)
_lengths = st.sampled_from([0, 1, 125, 126, 127, 300, 65535, 65536, 66000])


@st.composite
def _piece(draw: st.DrawFn) -> bytes:
    kind = draw(
        st.sampled_from(
            ["text", "text", "binary", "binary", "sized", "ping", "pong", "fragmented", "odd"]
        )
    )
    if kind == "text":
        return frame(draw(_text), 1)
    if kind == "binary":
        return frame(draw(st.binary(max_size=200)), 2)
    if kind == "sized":
        n = draw(_lengths)
        return frame(bytes([0x61 + n % 26]) * n, draw(st.sampled_from([1, 2])))
    if kind in ("ping", "pong"):
        return frame(draw(st.binary(max_size=20)), 9 if kind == "ping" else 10)
    if kind == "fragmented":
        opcode = draw(st.sampled_from([1, 2]))
        chunks = draw(st.lists(_text | _lengths.map(b"f".__mul__), min_size=2, max_size=4))
        out = b""
        for i, c in enumerate(chunks):
            out += frame(c, opcode if i == 0 else 0, fin=i == len(chunks) - 1)
            if draw(st.booleans()):
                out += frame(b"in-between", 9)
        return out
    return draw(
        st.sampled_from(
            [
                frame(b"bad \xff"),
                frame(b"\xe2\x82", 1),
                masked(b"masked"),
                frame(b"rsv", first=0xC2),
                frame(b"op", 5),
                frame(b"cont", 0),
                bytes([0x81, 126, 0, 3]) + b"abc",
                frame((1000).to_bytes(2, "big") + b"done", 8),
                frame(b"", 8),
                frame(b"L" * 3000, 2),
            ]
        )
    )


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(_piece(), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=6),
    glue=st.booleans(),
)
def test_any_frames_cut_anywhere_match_wsproto_alone(
    pieces: list[bytes], cuts: list[int], glue: bool
) -> None:
    data = b"".join(pieces)
    points = sorted({c % (len(data) + 1) for c in cuts})
    reads = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    reads = [r for r in reads if r]
    fast = run_client(reads, wsproto_only=False, glue=glue, max_size=2000)
    slow = run_client(reads, wsproto_only=True, glue=glue, max_size=2000)
    assert fast == slow
