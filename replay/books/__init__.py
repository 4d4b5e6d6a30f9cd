"""Order books rebuilt from an archive: snapshots or checkpoints plus diffs, per venue rules."""

from replay.books._books import BookBuilder, BookGap, BookReplay, BookState, OrderBook, book_states

__all__ = ["BookBuilder", "BookGap", "BookReplay", "BookState", "OrderBook", "book_states"]
