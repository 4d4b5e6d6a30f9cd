"""Binance venue names and the combined-stream envelope (``{"stream":...,"data":...}``).

Reference: ``binance-spot.md`` §2 and ``binance-usdm-futures.md`` §2.
"""

from __future__ import annotations

from typing import Final, Literal

import orjson

from recorder.venues._channels import TextWrapper
from recorder.venues._jsonspec import Mismatch

SPOT: Final = "binance-spot"
USDM: Final = "binance-usdm"
VENUES: Final = (SPOT, USDM)

Route = Literal["public", "market"]


# --------------------------------------------------------------------------------------------
# Combined-stream envelope
# --------------------------------------------------------------------------------------------

ENVELOPE_NONE: Final = 0
ENVELOPE_COMBINED: Final = 1
ENVELOPE_REFORMATTED: Final = 2
"""A combined wrapper in non-compact JSON: decodable, but never re-rendered."""

_STREAM_PREFIX: Final = b'{"stream":"'
_DATA_INFIX: Final = b'","data":'


def stream_of(frame: bytes) -> str | None:
    """The stream name of a combined-stream frame, sliced out without parsing JSON.

    None if the frame is not ``{"stream":"<name>","data":...}`` (bare frames, control replies).
    Stream names never contain ``"`` or ``\\``, so the first quote ends the name.
    """
    if not frame.startswith(_STREAM_PREFIX):
        return None
    end = frame.find(b'"', 11)
    if end < 0 or frame[end : end + 9] != _DATA_INFIX or b"\\" in frame[11:end]:
        return None
    try:
        return frame[11:end].decode()
    except UnicodeDecodeError:
        return None


class CombinedEnvelope:
    """Binance's ``{"stream":"<name>","data":<payload>}`` wrapper (envelope id 1)."""

    wrapper: Final = TextWrapper(ENVELOPE_COMBINED, "stream", "data")

    def split(self, frame: bytes) -> tuple[int, bytes]:
        if frame.startswith(_STREAM_PREFIX) and frame.endswith(b"}"):
            end = frame.find(b'"', 11)
            if end > 0 and frame[end : end + 9] == _DATA_INFIX:
                return ENVELOPE_COMBINED, frame[end + 9 : -1]
        if (frame[:1] == b"{" and frame[1:2] != b'"') or frame[:1] in (b" ", b"\n", b"\r", b"\t"):
            # Not Binance's compact text (e.g. a pretty-printed fixture): parse to unwrap.
            try:
                value = orjson.loads(frame)
            except orjson.JSONDecodeError:
                return ENVELOPE_NONE, frame
            if isinstance(value, dict) and value.keys() == {"stream", "data"}:
                return ENVELOPE_REFORMATTED, orjson.dumps(value["data"])
        return ENVELOPE_NONE, frame

    def join(self, envelope: int, stream: str, inner: bytes) -> bytes:
        if envelope == ENVELOPE_NONE:
            return inner
        if envelope == ENVELOPE_COMBINED:
            return _STREAM_PREFIX + stream.encode() + _DATA_INFIX + inner + b"}"
        if envelope == ENVELOPE_REFORMATTED:
            raise Mismatch("the wrapper was not compact JSON; only the raw bytes are exact")
        raise Mismatch(f"unknown envelope {envelope}")


COMBINED: Final = CombinedEnvelope()
