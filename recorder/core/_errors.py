"""Error types, translated at one boundary each (see ``_connection.py`` and ``_archive.py``).

As in h11, a *local* protocol error is our own mistake (we tried to send something the
protocol forbids), while a *remote* protocol error means the exchange (or a corrupted
frame) sent something we cannot accept. The recorder never lets a remote error escape a
connection task: it is counted, logged and the frame kept raw.
"""

from __future__ import annotations


class TicktapeError(Exception):
    """Base class of every error ticktape raises on purpose."""


class ConfigError(TicktapeError):
    """A configuration or command-line problem, reported before anything connects."""


class ProtocolError(TicktapeError):
    """Base of the two protocol error kinds."""


class LocalProtocolError(ProtocolError):
    """We were about to violate the exchange protocol (a bug or a bad request on our side)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something that does not follow the protocol (bad frame, bad reply)."""


class UnsupportedMessage(RemoteProtocolError):
    """A well-formed message of an API generation or kind ticktape does not support
    (for example Bybit's retired v2 ``realtime_public`` frames)."""


class ArchiveError(TicktapeError):
    """The archive could not be read or written (corrupt file, full disk, ...)."""
