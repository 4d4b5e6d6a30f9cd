"""Time units. ticktape keeps time as integer nanoseconds since the epoch, end to end."""

from __future__ import annotations

from typing import Final

US_NS: Final = 1_000
MS_NS: Final = 1_000_000
SECOND_NS: Final = 1_000_000_000
HOUR_NS: Final = 3_600 * SECOND_NS
"""Archive partitions are receive hours; this is their width."""

__all__ = ["HOUR_NS", "MS_NS", "SECOND_NS", "US_NS"]
