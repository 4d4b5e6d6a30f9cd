"""The deployment examples name only metrics the recorder serves, and are well-formed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from recorder import RecorderStatistics
from recorder.archive._buffer import WriterStatistics
from recorder.capture._book_stats import BookStatistics
from recorder.capture._connection import ShardStatistics
from recorder.capture._metrics import metric_names

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
# Functions and keywords of PromQL that look like metric names.
_PROMQL_WORDS = {"by", "sum", "max", "rate", "increase", "humanize1024", "without", "on"}


def _full_stats() -> RecorderStatistics:
    shard = ShardStatistics("s.0", "binance-spot", 1, True, "c", 1, 1, 0, 0, 0, (), 0, 1, None)
    book = BookStatistics(**{f: 0 for f in BookStatistics.__dataclass_fields__})
    writer = WriterStatistics(0, 0, 0, 0, 0, 0, 0, 0, 0, last_error=None)
    return RecorderStatistics(
        started_ns=0, shards=(shard,), writer=writer, books=(book,), tap_drops=0
    )


def _names_in(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", "", expr)
    return {w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if w.startswith("ticktape_")}


def test_alert_rules_name_served_metrics() -> None:
    served = set(metric_names(_full_stats()))
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    named: set[str] = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["alert"].startswith("Ticktape")
            named |= _names_in(rule["expr"])
    assert named, "the rules name no metric"
    assert named <= served, f"rules name metrics nobody serves: {sorted(named - served)}"


def test_dashboard_names_served_metrics() -> None:
    served = set(metric_names(_full_stats()))
    board = json.loads((DEPLOY / "grafana" / "ticktape-dashboard.json").read_text())
    named = {n for p in board["panels"] for t in p["targets"] for n in _names_in(t["expr"])}
    assert named <= served, f"panels use metrics nobody serves: {sorted(named - served)}"


def test_statefulset_uses_probes_and_ordinal_shard() -> None:
    doc = yaml.safe_load((DEPLOY / "kubernetes" / "statefulset.yaml").read_text())
    container = doc["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    replicas = doc["spec"]["replicas"]
    assert f'--shard "${{HOSTNAME##*-}}/{replicas}"' in container["args"][0]


def test_alert_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus); rules parsed above")
    out = subprocess.run(
        [promtool, "check", "rules", str(DEPLOY / "prometheus" / "alerts.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
