"""The capture job: configuration, the supervisor and what it decides with.

- ``_config.py``: :class:`RecorderConfig` and TOML/CLI job files, validated before connecting;
- ``_supervisor.py``: :class:`Recorder`, one nursery holding the writer and every shard;
- ``_shard.py``: the pure shard planner; ``_policy.py``: pure timing policies;
- ``_connection.py``: one shard's connection lifecycle;
- ``_universe.py``: symbol universes resolved from the exchange;
- ``_books.py``: order-book continuity, REST snapshots and checkpoints;
- ``_metrics.py``: the job's statistics, as Prometheus metrics and readiness answers;
- ``_ops_http.py``: the ``/metrics``, ``/healthz`` and ``/readyz`` endpoint.
"""

from recorder.capture._config import RecorderConfig
from recorder.capture._metrics import RecorderStatistics
from recorder.capture._supervisor import Recorder

__all__ = ["Recorder", "RecorderConfig", "RecorderStatistics"]
