"""Complete server data frames cut straight out of the receive buffer, ahead of wsproto.

wsproto parses every frame through several layers of generators, buffers, extension hooks and
an incremental UTF-8 decoder; for a market-data feed that is most of the receive path's time.
Almost every frame a venue sends is the simplest kind: one unmasked, unfragmented text or
binary frame with the reserved bits clear. :class:`FrameSplitter` takes those itself, with one
copy (the payload slice), and hands every other frame to wsproto byte for byte, in stream
order, so that control frames, fragmented messages and every protocol error behave exactly as
they do with wsproto alone.

The hand-over keeps wsproto on frame boundaries: it is given whole frames (or the start of one
and then exactly the rest of it), so whenever the splitter is looking at a frame header,
wsproto holds no partial frame. A frame wsproto would reject from its first bytes (reserved
bits, a masked frame, a bad opcode, a malformed length) switches the splitter to pass-through
for the rest of the connection: wsproto fails it exactly as it always did.

No I/O here: the caller feeds the bytes of each socket read and asks for frames.
"""

from __future__ import annotations

from collections import deque

from recorder.core._frame import Frame

_VALID_OPCODES = frozenset((0x0, 0x1, 0x2, 0x8, 0x9, 0xA))

# Why _scan stopped.
_MORE = 0  # the buffer ends inside a frame the splitter may take: wait for more bytes
_WSPROTO = 1  # this frame (of known size) goes through wsproto
_FATAL = 2  # wsproto rejects this frame: give it everything from here on


class FrameSplitter:
    """Splits the server's byte stream into frames taken directly and bytes for wsproto.

    Per socket read: :meth:`feed` the bytes, then call :meth:`next` until it returns ``None``.
    Each call appends the frames it takes to ``ready`` and returns the next bytes that wsproto
    must parse (feed them to wsproto and drain its events before calling again, which keeps
    the messages in stream order).

    ``max_payload`` bounds the frames taken here; a larger one goes through wsproto, which
    streams it to the caller's own size check instead of being buffered here first.
    """

    def __init__(self, max_payload: int) -> None:
        self._max = max_payload
        self._buf = b""
        self._pos = 0
        # The start of a frame that the last read ended inside of (never more than one frame).
        self._tail = bytearray()
        # Bytes of the frame wsproto is parsing that it has not been given yet.
        self._owed = 0
        self._passthrough = False
        # A fragmented message is open in wsproto: its frames, and the protocol error a new
        # data frame would be, are wsproto's.
        self._fragmented = False
        self._stop = _MORE
        self._stop_size = 0

    @property
    def passthrough(self) -> bool:
        """Whether every byte now goes to wsproto (after a frame it rejects)."""
        return self._passthrough

    def feed(self, data: bytes) -> None:
        """The bytes of one socket read; call after :meth:`next` has returned ``None``."""
        self._buf = data
        self._pos = 0

    def to_wsproto(self) -> None:
        """Give wsproto every byte from now on (for when wsproto already holds some, or to
        compare with the wsproto-only path). Call it between reads, at a frame boundary."""
        self._passthrough = True

    def next(self, recv_ns: int, ready: deque[Frame]) -> bytes | None:
        """Append the frames taken directly to ``ready`` (stamped ``recv_ns``); return the next
        bytes for wsproto, or ``None`` once the fed bytes are used up."""
        buf = self._buf
        pos = self._pos
        end = len(buf)
        if pos >= end:
            return None
        if self._passthrough:
            self._pos = end
            return buf[pos:] if pos else buf
        if self._owed:
            n = min(self._owed, end - pos)
            self._owed -= n
            self._pos = pos + n
            return buf[pos : pos + n]
        if self._tail:
            return self._complete_tail(recv_ns, ready)
        pos = self._scan(buf, pos, end, recv_ns, ready)
        if self._stop == _MORE:
            if pos < end:
                self._tail += buf[pos:end]
            self._pos = end
            return None
        return self._hand_over(buf, pos, end)

    def _hand_over(self, buf: bytes, pos: int, end: int) -> bytes:
        """The bytes for wsproto from the frame at ``pos``, where ``_scan`` stopped."""
        if self._stop == _FATAL:
            self._passthrough = True
            self._pos = end
            return buf[pos:] if pos else buf
        stop = min(pos + self._stop_size, end)
        self._owed = pos + self._stop_size - stop
        self._pos = stop
        return buf[pos:stop]

    def _complete_tail(self, recv_ns: int, ready: deque[Frame]) -> bytes | None:
        """Give the partial frame carried over from the last read just the bytes it lacks
        (never more: what follows it is scanned in place, without a copy)."""
        tail = self._tail
        buf = self._buf
        pos = self._pos
        end = len(buf)
        while True:
            # _stop_size is what the last scan of the tail needed: the rest of its header,
            # then its whole frame.
            take = min(self._stop_size - len(tail), end - pos)
            tail += buf[pos : pos + take]
            pos += take
            if len(tail) < self._stop_size:
                self._pos = pos
                return None
            frame = bytes(tail)
            taken = self._scan(frame, 0, len(frame), recv_ns, ready)
            if taken or self._stop != _MORE:
                break
        tail.clear()
        if taken:
            self._pos = pos
            return self.next(recv_ns, ready)
        if self._stop == _FATAL:
            # wsproto gets the rest of this read too.
            self._passthrough = True
            self._buf = frame + buf[pos:]
            self._pos = 0
            return self.next(recv_ns, ready)
        self._owed = self._stop_size - len(frame)
        self._pos = pos
        return frame

    def _scan(self, buf: bytes, pos: int, end: int, recv_ns: int, ready: deque[Frame]) -> int:
        """Take frames from ``buf[pos:end]`` until one is not for this path; return its start
        and set ``_stop`` and ``_stop_size`` (the frame's size, or the bytes needed to go on)."""
        append = ready.append
        # tuple.__new__ straight away: the named tuple's own __new__ is a Python function
        # call more per frame.
        new = tuple.__new__
        limit = self._max
        fragmented = self._fragmented
        while True:
            if end - pos < 2:
                self._stop, self._stop_size = _MORE, 2
                return pos
            b0 = buf[pos]
            b1 = buf[pos + 1]
            # FIN set, reserved bits clear, opcode text (0x81) or binary (0x82). Literals, not
            # named constants: a global lookup per frame shows in this loop.
            if b0 not in (0x81, 0x82) or fragmented:
                return self._other(buf, pos, end, b0, b1)
            if b1 < 126:
                start = pos + 2
                size = b1
            elif b1 == 126:
                # Inline, not _length(): most market-data frames are 126 to 64 KiB long.
                if end - pos < 4:
                    self._stop, self._stop_size = _MORE, 4
                    return pos
                size = (buf[pos + 2] << 8) | buf[pos + 3]
                if size < 126:
                    self._stop = _FATAL
                    return pos
                start = pos + 4
            else:
                # Masked (b1 & 0x80) ends up here as a bad length too: fatal either way.
                head, size = _length(buf, pos, end, b1)
                if head <= 0:
                    if head == 0:
                        self._stop, self._stop_size = _MORE, size
                    else:
                        self._stop = _FATAL
                    return pos
                start = pos + head
            stop = start + size
            if size > limit:
                self._stop, self._stop_size = _WSPROTO, stop - pos
                return pos
            if stop > end:
                self._stop, self._stop_size = _MORE, stop - pos
                return pos
            payload = buf[start:stop]
            if b0 == 0x81:
                if not payload.isascii():
                    try:
                        payload.decode()
                    except UnicodeDecodeError:
                        # wsproto closes with 1007 and the codec's message, as it always did.
                        self._stop, self._stop_size = _WSPROTO, stop - pos
                        return pos
                append(new(Frame, (recv_ns, payload, True)))
            else:
                append(new(Frame, (recv_ns, payload, False)))
            pos = stop

    def _other(self, buf: bytes, pos: int, end: int, b0: int, b1: int) -> int:
        """Stop at a frame that is not an unfragmented text or binary one: it is wsproto's."""
        opcode = b0 & 0x0F
        if (
            b0 & 0x70  # reserved bits, and no extension was negotiated
            or b1 & 0x80  # masked by the server
            or opcode not in _VALID_OPCODES
            or (opcode & 0x8 and (not b0 & 0x80 or b1 > 125))  # a bad control frame
        ):
            self._stop = _FATAL
            return pos
        if b1 < 126:
            head = 2
            size = b1
        else:
            head, size = _length(buf, pos, end, b1)
            if head <= 0:
                if head == 0:
                    self._stop, self._stop_size = _MORE, size
                else:
                    self._stop = _FATAL
                return pos
        # wsproto keeps the message state; this only tracks whether one is open, so that
        # no data frame is taken here in the middle of one.
        if opcode == 0x0:
            if b0 & 0x80:
                self._fragmented = False
        elif opcode < 0x8:
            self._fragmented = not b0 & 0x80
        self._stop, self._stop_size = _WSPROTO, head + size
        return pos


def _length(buf: bytes, pos: int, end: int, b1: int) -> tuple[int, int]:
    """The extended payload length of the frame at ``pos`` as (header size, length); (0, bytes
    needed) when the buffer ends first; (-1, 0) for what wsproto rejects here: a masked frame,
    a length not in its shortest form or with the top bit set."""
    if b1 > 127:
        return -1, 0
    if b1 == 126:
        if end - pos < 4:
            return 0, 4
        size = (buf[pos + 2] << 8) | buf[pos + 3]
        return (4, size) if size > 125 else (-1, 0)
    if end - pos < 10:
        return 0, 10
    size = int.from_bytes(buf[pos + 2 : pos + 10], "big")
    return (10, size) if 0xFFFF < size < 1 << 63 else (-1, 0)
