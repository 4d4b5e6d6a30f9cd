"""The ticktape command line: config validation before connecting, workers and shards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from recorder import ConfigError
from recorder.capture._config import load_config, parse_share
from replay.cli import cli

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def test_bad_config_is_an_error_before_anything_connects(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = [
        ["record", "--venue", "binance-spot", "--streams", "BTCUSDT@trade", "--root", "x"],
        ["record", "--venue", "nope", "--streams", "btcusdt@trade", "--root", "x"],
        ["record", "--venue", "bybit-spot", "--streams", "orderbook.7.BTCUSDT", "--root", "x"],
        ["record", "--venue", "binance-spot", "--streams", "btcusdt@trade"],
        [
            "record",
            "--venue",
            "binance-spot",
            "--streams",
            "btcusdt@trade",
            "--root",
            "x",
            "--shard",
            "2/2",
        ],
    ]
    for args in bad:
        res = runner.invoke(cli, args)
        assert res.exit_code != 0, args
        assert "Error" in res.output, res.output
    toml = tmp_path / "job.toml"
    toml.write_text('root = "a"\n[[venues]]\nvenue = "binance-spot"\nsymbols = ["BTCUSDT"]\n')
    res = runner.invoke(cli, ["record", str(toml)])
    assert res.exit_code != 0 and "'symbols' and 'channels' go together" in res.output


def test_sbe_key_missing_names_the_variable_not_a_value() -> None:
    res = CliRunner().invoke(
        cli,
        ["record", "--venue", "binance-sbe", "--streams", "btcusdt@trade", "--root", "x"],
        env={"TICKTAPE_BINANCE_API_KEY": ""},
    )
    assert res.exit_code != 0 and "TICKTAPE_BINANCE_API_KEY" in res.output


def test_shards_and_workers_split_streams_disjointly_and_completely() -> None:
    streams = [f"s{i}usdt@trade" for i in range(200)]
    shares = []
    for i in range(3):
        for w in range(2):
            cfg = load_config(
                None,
                root="r",
                venue="binance-spot",
                streams=streams,
                shard=(i, 3),
                worker=(w, 2),
                writer_id="host",
            )
            shares.append(set(cfg.jobs[0].streams))
            assert cfg.writer_id == f"host-h{i}of3-w{w}"
            assert cfg.worker_count == 2
    assert set().union(*shares) == set(streams)
    assert sum(len(s) for s in shares) == len(streams)
    with pytest.raises(ConfigError):
        parse_share("3/3", "--shard")


def test_toml_job_with_several_venues(tmp_path: Path) -> None:
    toml = tmp_path / "job.toml"
    toml.write_text(
        'root = "arch"\nflush_interval = 2\n'
        '[[venues]]\nvenue = "binance-usdm"\nsymbols = ["BTCUSDT", "ETHUSDT"]\n'
        'channels = ["aggTrade", "depth@100ms"]\n'
        '[[venues]]\nvenue = "bybit-linear"\nstreams = ["publicTrade.BTCUSDT"]\n'
    )
    cfg = load_config(str(toml))
    assert cfg.root == "arch" and cfg.flush_interval == 2.0
    assert [j.venue for j in cfg.jobs] == ["binance-usdm", "bybit-linear"]
    assert cfg.jobs[0].streams == (
        "btcusdt@aggTrade",
        "btcusdt@depth@100ms",
        "ethusdt@aggTrade",
        "ethusdt@depth@100ms",
    )


@pytest.mark.slow
def _writers(root: Path) -> set[str]:
    """Writer ids of the part files under ``root``."""
    return {
        "-".join(p.name.split("-")[1:3])
        for p in root.rglob("part-*.parquet")
        if not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


def test_workers_record_into_one_archive_and_sigterm_flushes(tmp_path: Path) -> None:
    sim = subprocess.Popen(
        [sys.executable, "-m", "replay.cli", "sim", "--venue", "binance-spot"],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert sim.stdout is not None
        line = sim.stdout.readline()
        ws = line.split()[2]
        rec = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "replay.cli",
                "record",
                "--venue",
                "binance-spot",
                "--symbols",
                "BTCUSDT,ETHUSDT,SOLUSDT",
                "--channels",
                "trade,bookTicker,aggTrade",
                "--ws-url",
                ws,
                "--root",
                str(tmp_path / "arch"),
                "--workers",
                "2",
                "--flush-interval",
                "1",
                "--no-status",
                "--writer-id",
                "box",
            ],
            env=ENV,
        )
        # Stop once both workers have written (a busy machine may take a while to start them).
        deadline = time.monotonic() + 120
        while _writers(tmp_path / "arch") < {"box-w0", "box-w1"}:
            assert rec.poll() is None, "the recorder exited before recording"
            assert time.monotonic() < deadline, "the workers wrote nothing within 120 s"
            time.sleep(0.1)
        rec.send_signal(signal.SIGTERM)
        assert rec.wait(timeout=30) == 0
    finally:
        sim.terminate()
        sim.wait()
    assert {"box-w0", "box-w1"} <= _writers(tmp_path / "arch")
    res = CliRunner().invoke(cli, ["verify", str(tmp_path / "arch")])
    assert res.exit_code == 0, res.output
    assert "duplicates: 0" in res.output


def test_toml_selection_needs_channels_and_is_parsed(tmp_path: Path) -> None:
    toml = tmp_path / "job.toml"
    toml.write_text(
        'root = "a"\n[[venues]]\nvenue = "binance-spot"\n'
        'select = { quote = "USDT", max_symbols = 50 }\nchannels = ["trade"]\n'
    )
    cfg = load_config(str(toml))
    job = cfg.jobs[0]
    assert job.select is not None and job.select.quote == "USDT" and job.select.max_symbols == 50
    assert job.channels == ("trade",) and job.streams == ()
    toml.write_text('root = "a"\n[[venues]]\nvenue = "binance-spot"\nselect = { quote = "USDT" }\n')
    with pytest.raises(ConfigError, match="needs 'channels'"):
        load_config(str(toml))


@pytest.mark.slow
def test_ticktape_sim_process_ledger_matches_the_archive_of_a_record_process(
    tmp_path: Path,
) -> None:
    """Both sides as users run them: `ticktape sim --ledger` and `ticktape record`, then every
    message the simulator sent is in the archive exactly once, byte-exact."""
    from replay import open_archive
    from tests.simrec import Recording

    ledger = tmp_path / "ledger.ndjson"
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "replay.cli",
            "sim",
            "--venue",
            "binance-spot",
            "--ledger",
            str(ledger),
            "--rate",
            "300",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert sim.stdout is not None
        parts = sim.stdout.readline().split()
        ws, rest = parts[2], parts[4]
        rec = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "replay.cli",
                "record",
                "--venue",
                "binance-spot",
                "--streams",
                "btcusdt@trade,ethusdt@bookTicker,btcusdt@depth@100ms",
                "--ws-url",
                ws,
                "--rest-url",
                rest,
                "--root",
                str(tmp_path / "arch"),
                "--flush-interval",
                "1",
                "--no-status",
            ],
            env=ENV,
        )
        # Stop once the recorder has written data (a busy machine may take a while to start).
        deadline = time.monotonic() + 120
        while not _writers(tmp_path / "arch"):
            assert rec.poll() is None, "the recorder exited before recording"
            assert time.monotonic() < deadline, "nothing was written within 120 s"
            time.sleep(0.1)
        time.sleep(1.0)  # a little more traffic after the first flush; not a correctness wait
        stop_ns = time.time_ns()
        time.sleep(0.5)
        rec.send_signal(signal.SIGINT)
        assert rec.wait(timeout=30) == 0
    finally:
        sim.send_signal(signal.SIGINT)
        sim.wait(timeout=10)
    lines = [orjson.loads(x) for x in ledger.read_bytes().splitlines() if x]
    messages = list(open_archive(str(tmp_path / "arch")))
    r = Recording(tmp_path / "arch", lines, messages, stop_ns, None, None)  # type: ignore[arg-type]
    assert len(r.sent()) > 100
    r.check_exactly_once()
