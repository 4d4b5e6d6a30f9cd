"""Stopping ``ticktape record`` with signals, as terminals and service managers do.

Ctrl-C sends SIGINT to the terminal's whole process group; systemd sends SIGTERM to the main
process (or to every process of the service). From the first import to the last flush the
recorder answers with one log line and no traceback: exit 0 with everything flushed once it
records, 128 + the signal number (130, 143) when stopped before that. The archive writer's
child process must not be stopped by the group's signal before the parent's last flush.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from replay import open_archive

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR|DEBUG) \S+: ")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sim_ws() -> Iterator[str]:
    sim = subprocess.Popen(
        [sys.executable, "-m", "replay.cli", "sim", "--venue", "binance-spot"],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert sim.stdout is not None
        yield sim.stdout.readline().split()[2]
    finally:
        sim.send_signal(signal.SIGINT)
        sim.wait(timeout=30)


def _record(root: Path, ws: str) -> subprocess.Popen[str]:
    # A session of its own: its process group is the one a terminal would signal.
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "replay.cli",
            "record",
            "--venue",
            "binance-spot",
            "--streams",
            "btcusdt@trade,ethusdt@trade,btcusdt@bookTicker",
            "--ws-url",
            ws,
            "--root",
            str(root),
            "--flush-interval",
            "1",
            "--no-status",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        start_new_session=True,
    )


def _wait_for_parts(rec: subprocess.Popen[str], root: Path) -> None:
    deadline = time.monotonic() + 120
    while not any(root.rglob("part-*.parquet")):
        assert rec.poll() is None, rec.communicate()[1]
        assert time.monotonic() < deadline, "nothing written in 120 s"
        time.sleep(0.1)


def _stop(rec: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = rec.communicate(timeout=60)
    finally:
        if rec.poll() is None:
            os.killpg(rec.pid, signal.SIGKILL)
            rec.wait()
    return rec.returncode, err


def _assert_clean_log(err: str) -> None:
    assert "Traceback" not in err, err
    assert "died" not in err and "restarting" not in err, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert all(LOG_LINE.match(x) for x in lines), err  # nothing but log lines
    assert len([x for x in lines if "flushing and stopping" in x]) == 1, err


def _recorded(root: Path) -> int:
    return sum(1 for m in open_archive(str(root)) if m.channel in ("trade", "bookTicker"))


@pytest.mark.parametrize(
    ("sig", "group", "repeat"),
    [
        (signal.SIGINT, True, False),  # Ctrl-C
        (signal.SIGINT, True, True),  # Ctrl-C, Ctrl-C
        (signal.SIGTERM, False, False),  # systemd, KillMode=mixed / kill PID
        (signal.SIGTERM, True, False),  # every process of the service
    ],
    ids=["SIGINT-group", "SIGINT-twice", "SIGTERM-process", "SIGTERM-group"],
)
def test_a_signal_while_recording_flushes_and_exits_0(
    tmp_path: Path, sim_ws: str, sig: signal.Signals, group: bool, repeat: bool
) -> None:
    root = tmp_path / "arch"
    rec = _record(root, sim_ws)
    _wait_for_parts(rec, root)
    for _ in range(2 if repeat else 1):
        if group:
            os.killpg(rec.pid, sig)
        else:
            rec.send_signal(sig)
        time.sleep(0.05 if repeat else 0)
    code, err = _stop(rec)
    assert code == 0, err
    _assert_clean_log(err)
    assert f"{sig.name}: flushing and stopping" in err
    assert re.search(r"stopped: [1-9]\d* rows", err), err
    assert _recorded(root) > 0


def _caught(pid: int, sig: signal.Signals) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_starting_is_one_line_and_128_plus_the_signal(
    tmp_path: Path, sim_ws: str, sig: signal.Signals
) -> None:
    root = tmp_path / "arch"
    rec = _record(root, sim_ws)
    # Python does not catch SIGTERM by default: once it does, ticktape's start-up handler
    # is in place and the heavy imports (Arrow, Polars, NumPy) are still to come.
    deadline = time.monotonic() + 60
    while not _caught(rec.pid, signal.SIGTERM):
        assert rec.poll() is None and time.monotonic() < deadline
        time.sleep(0.001)
    os.killpg(rec.pid, sig)
    code, err = _stop(rec)
    assert code == 128 + sig, err
    assert "Traceback" not in err and "Aborted" not in err, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and sig.name in lines[0], err
