"""A received WebSocket message: what the network layer hands the venue adapters."""

from __future__ import annotations

from typing import NamedTuple


class Frame(NamedTuple):
    """One complete WebSocket message and its receive time (epoch ns).

    A named tuple rather than a frozen dataclass: one is built per message on the hot path,
    and a frozen dataclass's ``__init__`` costs about twice as much.
    """

    recv_ns: int
    payload: bytes
    text: bool


__all__ = ["Frame"]
