"""Everything venue-specific, behind one contract; sans-IO (no Trio, no sockets).

- ``_contract.py``: what the runtime needs from a venue (:class:`VenueAdapter`, limits, jobs);
- ``_jsonspec.py`` / ``_channels.py``: declarative payload specs and the codecs built on them;
- ``_binance.py``, ``_bybit.py``, ``_sbe.py``: each venue family's protocol core and codecs;
- ``_adapters.py``: the registry of adapters (:func:`make_adapter`).

Importing this package registers every venue's channel codecs (:func:`recorder.core.codec_for`).
"""

from recorder.venues import binance as _binance
from recorder.venues import bybit as _bybit
from recorder.venues import sbe as _sbe
from recorder.venues._adapters import make_adapter
from recorder.venues._channels import JsonChannel, RawChannel
from recorder.venues._contract import (
    VENUES,
    Ack,
    Control,
    Instrument,
    OtherControl,
    Pong,
    Refusal,
    Request,
    Routed,
    RuntimeLimits,
    Shutdown,
    UniverseSelect,
    VenueAdapter,
    VenueJob,
    VenueLimits,
    subscribe_batches,
)
from recorder.venues._jsonspec import Obj, Payload, Str

FAMILIES = (_binance, _bybit, _sbe)
"""The venue families' modules, imported here so their codecs are registered."""

__all__ = [
    "FAMILIES",
    "VENUES",
    "Ack",
    "Control",
    "Instrument",
    "JsonChannel",
    "Obj",
    "OtherControl",
    "Payload",
    "Pong",
    "RawChannel",
    "Refusal",
    "Request",
    "Routed",
    "RuntimeLimits",
    "Shutdown",
    "Str",
    "UniverseSelect",
    "VenueAdapter",
    "VenueJob",
    "VenueLimits",
    "make_adapter",
    "subscribe_batches",
]
