"""Order books rebuilt from an archive: snapshots/checkpoints plus diffs, per venue rules.

:class:`OrderBook` is a plain price-level book (sorted bids and asks, absolute quantities,
quantity 0 deletes). :func:`book_states` rebuilds the book of one symbol (one order-book
stream) over a time range and yields :class:`BookState` snapshots (top N levels), one per
book-changing message or sampled every N nanoseconds.

Where the book comes from. The recorder writes, beside the diffs, REST snapshots (Binance
channel ``depth_snapshot``) and at every UTC hour boundary a ``book_checkpoint`` (the full
book; Binance: REST-snapshot shape; Bybit: an ``orderbook`` snapshot message). To start at
``start_ns``, :func:`book_states` looks for the latest checkpoint or snapshot at or before it,
searching back hour by hour (Bybit: its own ``orderbook`` snapshots count too), and replays the
diffs from there; the states before ``start_ns`` are computed but not yielded.

Continuity rules (``shared/protocols``):

* Binance Spot (binance-spot.md 8): after a snapshot drop events with ``u <= lastUpdateId``;
  an event with ``U > book id + 1`` is a gap. USDⓈ-M (binance-usdm-futures.md 7): drop
  ``u < lastUpdateId``; after the first applied event, ``pu`` must equal the previous ``u``.
  Both are delegated to :class:`recorder.venues.binance.DepthSync`, the recorder's own state
  machine, so replay and recording agree. Diffs received before a REST snapshot are kept (as
  the live procedure buffers them) and re-applied after it.
* Bybit (bybit-v5.md 4.1, 6): every ``snapshot`` message replaces the book (``u = 1`` after a
  service restart included); ``delta`` levels are applied; ``u`` must step by one
  (:class:`recorder.venues.bybit.BookSync`, ``strict_increment``), a stale ``u`` is ignored.

A gap: the book is thrown away and no state is yielded until a later snapshot or checkpoint
re-synchronises it (a book is never invented). Every such stretch is reported as a
:class:`BookGap` in :attr:`BookReplay.gaps` (and logged), including the stretch at the start
when no snapshot is found.

Modules: ``_book.py`` (the book and its states), ``_engines.py`` (continuity per venue),
``_source.py`` (what a rebuild reads), ``_replay.py`` (the rebuilds).
"""

from replay.books._book import BookGap, BookState, OrderBook
from replay.books._replay import BookBuilder, BookReplay, book_states

__all__ = ["BookBuilder", "BookGap", "BookReplay", "BookState", "OrderBook", "book_states"]
