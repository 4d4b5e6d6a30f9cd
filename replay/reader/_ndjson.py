"""Export messages as NDJSON: one JSON object per line, payloads kept exactly.

Each line starts with the four documented keys, in this order::

    {"recv_ns": <int>, "venue": <str>, "stream": <str>, "payload": <str>, ...}

``payload`` is the exact payload text (``json.loads(line)["payload"].encode() == payload``).
Binary payloads (SBE frames: the channel codec's ``binary`` flag) -- and any payload that is
not valid UTF-8 -- are written as ``"payload_hex"`` (lowercase hex) instead of ``payload``.
By default four more keys follow so that a line maps back to a :class:`~recorder.Message`:
``channel``, ``symbol``, ``conn`` and ``seq`` (the archive's ordering key is
``(recv_ns, conn, seq)``); ``extra=False`` leaves them out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO, Any, BinaryIO, Final

import orjson

from recorder import Message
from recorder.core import codec_for

_CHUNK: Final = 1024
"""Lines joined per write call."""


def _is_binary(venue: str, channel: str, cache: dict[tuple[str, str], bool]) -> bool | None:
    key = (venue, channel)
    if key not in cache:
        try:
            cache[key] = bool(codec_for(venue, channel).binary)
        except KeyError:  # a channel without a codec: decide per payload
            return None
    return cache[key]


def message_record(
    msg: Message, *, extra: bool = True, binary: bool | None = None
) -> dict[str, Any]:
    """The JSON object of one message (``binary`` None = look it up from the codec)."""
    if binary is None:
        binary = _is_binary(msg.venue, msg.channel, {})
    rec: dict[str, Any] = {"recv_ns": msg.recv_ns, "venue": msg.venue, "stream": msg.stream}
    text: str | None = None
    if not binary:
        try:
            text = msg.payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    if text is None:
        rec["payload_hex"] = msg.payload.hex()
    else:
        rec["payload"] = text
    if extra:
        rec["channel"] = msg.channel
        rec["symbol"] = msg.symbol
        rec["conn"] = msg.conn
        rec["seq"] = msg.seq
    return rec


def write_ndjson(
    messages: Iterable[Message], out: BinaryIO | IO[bytes], *, extra: bool = True
) -> int:
    """Write one line per message to the binary stream ``out``; returns the number of lines.

    Lines end with ``\\n`` and are UTF-8. Writes go out in chunks of about a thousand lines.
    """
    cache: dict[tuple[str, str], bool] = {}
    dumps = orjson.dumps
    opt = orjson.OPT_APPEND_NEWLINE
    buf: list[bytes] = []
    n = 0
    for m in messages:
        binary = _is_binary(m.venue, m.channel, cache)
        buf.append(dumps(message_record(m, extra=extra, binary=binary), option=opt))
        n += 1
        if len(buf) >= _CHUNK:
            out.write(b"".join(buf))
            buf.clear()
    if buf:
        out.write(b"".join(buf))
    return n


def parse_ndjson_line(line: bytes | str) -> Message:
    """The message of one line written with ``extra=True`` (the inverse of the writer).

    Lines written with ``extra=False`` lack ``channel``/``symbol``/``conn``/``seq``; they come
    back with channel ``""``, symbol ``""``, conn ``""`` and seq 0.
    """
    rec = orjson.loads(line)
    if "payload" in rec:
        payload = str(rec["payload"]).encode("utf-8")
    else:
        payload = bytes.fromhex(rec["payload_hex"])
    return Message(
        venue=rec["venue"],
        stream=rec["stream"],
        channel=rec.get("channel", ""),
        symbol=rec.get("symbol", ""),
        recv_ns=int(rec["recv_ns"]),
        conn=rec.get("conn", ""),
        seq=int(rec.get("seq", 0)),
        payload=payload,
    )


def read_ndjson(inp: Iterable[bytes | str]) -> Iterator[Message]:
    """Messages of an NDJSON stream (a binary or text file object, or any iterable of lines);
    blank lines are skipped."""
    for line in inp:
        if line.strip():
            yield parse_ndjson_line(line)


__all__ = ["message_record", "parse_ndjson_line", "read_ndjson", "write_ndjson"]
