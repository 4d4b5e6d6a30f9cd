"""``ticktape serve``: the simulator's exchange server, fed from a recorded archive."""

from replay.serve._serve import ArchiveSource

__all__ = ["ArchiveSource"]
