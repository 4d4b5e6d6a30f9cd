"""ticktape's benchmark harness (``make bench``; see ``benchmarks/run.py``)."""
