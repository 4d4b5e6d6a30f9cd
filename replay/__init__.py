"""ticktape replay: archives back through the recorder's message interface.

- :func:`open_archive` yields :class:`recorder.Message` objects in the archive's global order
  (recv_ns, connection, sequence), as a plain iterator or a Trio async iterator (optionally
  paced by the recorded receive times);
- :func:`book_states` rebuilds order books from the nearest checkpoint or snapshot;
- :func:`scan` and friends give Polars LazyFrames with analysis-ready columns;
- :func:`write_ndjson` / :func:`read_ndjson` convert to and from NDJSON lines with exact payloads.
"""

from replay.books import BookBuilder, BookGap, BookReplay, BookState, OrderBook, book_states
from replay.reader import ArchiveReader, Selection, open_archive, read_ndjson, write_ndjson
from replay.scans import scan, scan_quotes, scan_tickers_merged, scan_trades

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
