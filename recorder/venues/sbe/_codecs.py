"""The four SBE market-data channel codecs, registered on import."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa

from recorder.core._codec import Decoded, register
from recorder.venues._channels import register_common
from recorder.venues._jsonspec import Mismatch
from recorder.venues.sbe._decode import _DECODERS, _parse
from recorder.venues.sbe._encode import _render_bbo, _render_diff, _render_snapshot, _render_trades
from recorder.venues.sbe._layout import (
    BEST_BID_ASK,
    DEPTH_DIFF,
    DEPTH_SNAPSHOT,
    MESSAGES,
    TRADES,
    VENUE,
    SbeDecodeError,
)

# --------------------------------------------------------------------------------------------
# Channel codecs

_TS = pa.timestamp("us", tz="UTC")
_LEVEL_TYPE = pa.list_(
    pa.struct(
        [
            pa.field("price", pa.float64()),
            pa.field("price_mantissa", pa.int64()),
            pa.field("qty", pa.float64()),
            pa.field("qty_mantissa", pa.int64()),
        ]
    )
)
_TRADE_TYPE = pa.list_(
    pa.struct(
        [
            pa.field("id", pa.int64()),
            pa.field("price", pa.float64()),
            pa.field("price_mantissa", pa.int64()),
            pa.field("qty", pa.float64()),
            pa.field("qty_mantissa", pa.int64()),
            pa.field("is_buyer_maker", pa.bool_()),
        ]
    )
)
_EXPONENTS = [pa.field("price_exponent", pa.int8()), pa.field("qty_exponent", pa.int8())]
# The header's version is kept so that frames of a newer, layout-compatible version still
# re-render exactly; blockLengths are not stored: a non-canonical one makes the row inexact.
_TAIL = [pa.field("sym", pa.string()), pa.field("schema_version", pa.uint16())]


def _money(name: str) -> list[pa.Field]:
    return [pa.field(name, pa.float64()), pa.field(name + "_mantissa", pa.int64())]


_TYPED_FIELDS: Final[dict[int, list[pa.Field]]] = {
    TRADES.template_id: [
        pa.field("event_time", _TS),
        pa.field("transact_time", _TS),
        *_EXPONENTS,
        pa.field("trades", _TRADE_TYPE),
        *_TAIL,
    ],
    BEST_BID_ASK.template_id: [
        pa.field("event_time", _TS),
        pa.field("book_update_id", pa.int64()),
        *_EXPONENTS,
        *_money("bid_price"),
        *_money("bid_qty"),
        *_money("ask_price"),
        *_money("ask_qty"),
        *_TAIL,
    ],
    DEPTH_SNAPSHOT.template_id: [
        pa.field("event_time", _TS),
        pa.field("book_update_id", pa.int64()),
        *_EXPONENTS,
        pa.field("bids", _LEVEL_TYPE),
        pa.field("asks", _LEVEL_TYPE),
        *_TAIL,
    ],
    DEPTH_DIFF.template_id: [
        pa.field("event_time", _TS),
        pa.field("first_book_update_id", pa.int64()),
        pa.field("last_book_update_id", pa.int64()),
        *_EXPONENTS,
        pa.field("bids", _LEVEL_TYPE),
        pa.field("asks", _LEVEL_TYPE),
        *_TAIL,
    ],
}

_RENDERERS: Final[dict[int, Callable[[Mapping[str, Any]], bytes]]] = {
    TRADES.template_id: _render_trades,
    BEST_BID_ASK.template_id: _render_bbo,
    DEPTH_SNAPSHOT.template_id: _render_snapshot,
    DEPTH_DIFF.template_id: _render_diff,
}


@dataclass(frozen=True)
class SbeChannel:
    """The codec of one SBE message kind (one template id), satisfying ``ChannelCodec``."""

    template_id: int
    venue: str = VENUE
    binary: bool = True

    @property
    def channel(self) -> str:
        return MESSAGES[self.template_id].channel

    @property
    def typed_fields(self) -> list[pa.Field]:
        return _TYPED_FIELDS[self.template_id]

    def decode(self, payload: bytes) -> Decoded:
        layout, version, groups, symbol, exact = _parse(payload)
        if layout.template_id != self.template_id:
            raise SbeDecodeError(
                f"{layout.name} (templateId {layout.template_id}) on channel {self.channel}, "
                f"which expects templateId {self.template_id}"
            )
        return _DECODERS[self.template_id](payload, version, groups, symbol, exact)

    def render(self, fields: Mapping[str, Any], stream: str, envelope: int) -> bytes:
        if envelope != 0:
            raise Mismatch(f"binance-sbe frames have no envelope, got {envelope}")
        try:
            return _RENDERERS[self.template_id](fields)
        except (ValueError, TypeError) as exc:
            raise Mismatch(str(exc)) from None

    def event_ns(self, fields: Mapping[str, Any]) -> int | None:
        us = fields.get("event_time")
        return None if us is None else int(us) * 1000


CODECS: Final = {m.channel: SbeChannel(tid) for tid, m in MESSAGES.items()}
"""The four market-data codecs by channel name."""

for _codec in CODECS.values():
    register(_codec)
register_common(VENUE)  # text frames (JSON replies, serverShutdown) go to ``control``
