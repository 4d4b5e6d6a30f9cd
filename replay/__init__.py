"""ticktape replay: archives back through the recorder's message interface.

- :func:`open_archive` yields :class:`recorder.Message` objects in the archive's global order
  (recv_ns, connection, sequence), as a plain iterator or a Trio async iterator (optionally
  paced by the recorded receive times);
- :func:`book_states` rebuilds order books from the nearest checkpoint or snapshot;
- :func:`scan` and friends give Polars LazyFrames with analysis-ready columns;
- :func:`write_ndjson` / :func:`read_ndjson` convert to and from NDJSON lines with exact payloads.
"""

import os as _os
import signal as _signal
import sys as _sys


def _stop_while_starting(signum: int, frame: object) -> None:
    """Ctrl-C or SIGTERM while the ``ticktape`` command is still importing: one line and the
    conventional status, not a KeyboardInterrupt traceback from deep inside an import."""
    name = _signal.Signals(signum).name
    _os.write(2, f"ticktape: stopped by {name} while starting\n".encode())
    _os._exit(128 + signum)


def _started_as_the_cli() -> bool:
    argv = _sys.orig_argv
    if "-m" in argv:
        return argv[argv.index("-m") + 1 : argv.index("-m") + 2] == ["replay.cli"]
    return _os.path.basename(_sys.argv[0]).removesuffix(".exe") == "ticktape"


# Installed before the heavy imports below (the command takes over in recorder.cli); a
# library import (a notebook, a test) keeps its own handlers.
if _started_as_the_cli():
    _stop_while_starting.ticktape_startup = True  # type: ignore[attr-defined]
    _signal.signal(_signal.SIGINT, _stop_while_starting)
    _signal.signal(_signal.SIGTERM, _stop_while_starting)

from replay.books import BookBuilder, BookGap, BookReplay, BookState, OrderBook, book_states  # noqa: E402
from replay.reader import ArchiveReader, Selection, open_archive, read_ndjson, write_ndjson  # noqa: E402
from replay.scans import scan, scan_quotes, scan_tickers_merged, scan_trades  # noqa: E402

__all__ = [
    "ArchiveReader",
    "BookBuilder",
    "BookGap",
    "BookReplay",
    "BookState",
    "OrderBook",
    "Selection",
    "book_states",
    "open_archive",
    "read_ndjson",
    "scan",
    "scan_quotes",
    "scan_tickers_merged",
    "scan_trades",
    "write_ndjson",
]
