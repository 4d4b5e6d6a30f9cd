"""Hostile configurations end in one clear line before anything connects, never a traceback.

Each case goes through the real command (``ticktape record``) with a WebSocket URL pointing
at a listening socket of the test's own: a case passes when the command exits 1 (click
usage errors: 2) with a single ``Error: ...`` line naming the problem, and nothing ever
connected to that socket.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from replay.cli import cli

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "TICKTAPE_BINANCE_API_KEY": "k" * 24}


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A socket that accepts nothing: a connection to it is a config that got through."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        s.setblocking(False)
        yield s


def _connected(s: socket.socket) -> bool:
    try:
        conn, _ = s.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


# (name, TOML text with {ws} for the listener's URL and {file} for a regular file, the
# phrase the error must contain)
TOML_CASES: list[tuple[str, bytes, str]] = [
    ("invalid UTF-8", b'root = "{root}"\n# caf\xe9\n{venue}', "not UTF-8"),
    ("not TOML", b"[[[", "invalid TOML"),
    ("venues are numbers", b'root = "{root}"\nvenues = [1, 2]\n', "must be a table"),
    (
        "a venue is a string",
        b'root = "{root}"\nvenues = [{{venue = "binance-spot", streams = ["btcusdt@trade"],'
        b' ws_url = "{ws}"}}, "x"]\n',
        "venues[1]: each venue must be a table",
    ),
    ("venues is a string", b'root = "{root}"\nvenues = "binance-spot"\n', "array of tables"),
    ("venues is a table", b'root = "{root}"\n[venues]\nvenue = "binance-spot"\n', "array"),
    ("unknown top key", b'root = "{root}"\nflush = 1\n{venue}', "unknown keys ['flush']"),
    ("unknown venue key", b'root = "{root}"\n{venue}colour = "red"\n', "unknown keys"),
    ("unknown venue", b'root = "{root}"\n[[venues]]\nvenue = "nope"\n', "venue must be one of"),
    ("venue twice", b'root = "{root}"\n{venue}{venue}', "configured twice"),
    ("grace a string", b'root = "{root}"\ncompaction_grace = "x"\n{venue}', "compaction_grace"),
    ("grace negative", b'root = "{root}"\ncompaction_grace = -5\n{venue}', "compaction_grace"),
    ("grace nan", b'root = "{root}"\ncompaction_grace = nan\n{venue}', "compaction_grace"),
    ("flush a string", b'root = "{root}"\nflush_interval = "5"\n{venue}', "flush_interval"),
    ("flush a boolean", b'root = "{root}"\nflush_interval = true\n{venue}', "flush_interval"),
    ("flush too long", b'root = "{root}"\nflush_interval = 1e30\n{venue}', "flush_interval"),
    ("flush inf", b'root = "{root}"\nflush_interval = inf\n{venue}', "flush_interval"),
    ("root a number", b"root = 5\n{venue}", "no archive root"),
    ("no root", b"{venue}", "no archive root"),
    ("root is a file", b'root = "{file}"\n{venue}', "not a directory"),
    ("root under a file", b'root = "{file}/sub/dir"\n{venue}', "not a directory"),
    ("writer id a number", b'root = "{root}"\nwriter_id = 5\n{venue}', "writer_id"),
    ("shard malformed", b'root = "{root}"\nshard = [1]\n{venue}', "shard must be I/N"),
    ("shard out of range", b'root = "{root}"\nshard = "3/3"\n{venue}', "shard must be I/N"),
    (
        "ws_url is http",
        b'root = "{root}"\n[[venues]]\nvenue = "binance-spot"\nstreams = ["btcusdt@trade"]\n'
        b'ws_url = "http://127.0.0.1:1/"\n',
        "ws:// or wss://",
    ),
    (
        "ws_url port out of range",
        b'root = "{root}"\n[[venues]]\nvenue = "binance-spot"\nstreams = ["btcusdt@trade"]\n'
        b'ws_url = "ws://127.0.0.1:99999/"\n',
        "not a valid URL",
    ),
    (
        "ws_url without host",
        b'root = "{root}"\n[[venues]]\nvenue = "binance-spot"\nstreams = ["btcusdt@trade"]\n'
        b'ws_url = "ws:///stream"\n',
        "no host",
    ),
    ("ws_url a number", b'root = "{root}"\n{venue_nows}ws_url = 5\n', "URL string"),
    ("rest_url is ftp", b'root = "{root}"\n{venue}rest_url = "ftp://x/"\n', "http:// or https://"),
    ("streams a number", b'root = "{root}"\n{venue_nostreams}streams = 5\n', "list of strings"),
    ("streams of numbers", b'root = "{root}"\n{venue_nostreams}streams = [1]\n', "list of strings"),
    ("bad stream", b'root = "{root}"\n{venue_nostreams}streams = ["btcusdt@nope"]\n', "nope"),
    (
        "symbols without channels",
        b'root = "{root}"\n{venue_nostreams}symbols = ["BTCUSDT"]\n',
        "go together",
    ),
    (
        "max streams a boolean",
        b'root = "{root}"\n{venue}max_streams_per_connection = true\n',
        "max_streams_per_connection",
    ),
    ("refresh a boolean", b'root = "{root}"\n{venue}refresh_interval = true\n', "refresh_interval"),
    ("refresh too short", b'root = "{root}"\n{venue}refresh_interval = 1\n', "refresh_interval"),
    (
        "select not a table",
        b'root = "{root}"\n{venue_nostreams}channels = ["trade"]\nselect = "USDT"\n',
        "'select' must be a table",
    ),
    (
        "select quote a number",
        b'root = "{root}"\n{venue_nostreams}channels = ["trade"]\nselect = {{quote = 5}}\n',
        "select.quote",
    ),
    (
        "select cap a string",
        b'root = "{root}"\n{venue_nostreams}channels = ["trade"]\nselect = {{max_symbols = "x"}}\n',
        "select.max_symbols",
    ),
    (
        "select match a bad regex",
        b'root = "{root}"\n{venue_nostreams}channels = ["trade"]\nselect = {{match = "["}}\n',
        "regular expression",
    ),
    (
        "sbe key file a number",
        b'root = "{root}"\n[[venues]]\nvenue = "binance-sbe"\nstreams = ["btcusdt@trade"]\n'
        b'ws_url = "{ws}"\napi_key_file = 5\n',
        "api_key_file",
    ),
    (
        "sbe key env a number",
        b'root = "{root}"\n[[venues]]\nvenue = "binance-sbe"\nstreams = ["btcusdt@trade"]\n'
        b'ws_url = "{ws}"\napi_key_env = 5\n',
        "api_key_env",
    ),
    (
        "sbe key file missing",
        b'root = "{root}"\n[[venues]]\nvenue = "binance-sbe"\nstreams = ["btcusdt@trade"]\n'
        b'ws_url = "{ws}"\napi_key_file = "{root}/no-such-key"\n',
        "cannot read API key file",
    ),
]

# (name, extra command-line options, the phrase the error must contain)
OPTION_CASES: list[tuple[str, list[str], str]] = [
    ("--root is a file", ["--root", "{file}"], "not a directory"),
    ("--root under a file", ["--root", "{file}/x"], "not a directory"),
    ("--ws-url is http", ["--ws-url", "http://127.0.0.1:1/"], "--ws-url must be a ws://"),
    ("--rest-url is ws", ["--rest-url", "ws://127.0.0.1:1/"], "--rest-url must be a http://"),
    ("--duration negative", ["--duration", "-1"], "--duration"),
    ("--duration nan", ["--duration", "nan"], "--duration"),
    ("--flush-interval nan", ["--flush-interval", "nan"], "flush_interval"),
    ("--flush-interval zero", ["--flush-interval", "0"], "flush_interval"),
    ("--shard malformed", ["--shard", "x"], "--shard must be I/N"),
    ("--streams bad", ["--streams", "BTCUSDT@trade"], "BTCUSDT@trade"),
]


def _fill(text: bytes, tmp: Path, ws: str) -> bytes:
    venue_nows = '[[venues]]\nvenue = "binance-spot"\nstreams = ["btcusdt@trade"]\n'
    subs = {
        "venue": f'{venue_nows}ws_url = "{ws}"\n',
        "venue_nows": venue_nows,
        "venue_nostreams": f'[[venues]]\nvenue = "binance-spot"\nws_url = "{ws}"\n',
        "root": str(tmp / "arch"),
        "file": str(tmp / "a-file"),
        "ws": ws,
    }
    out = text
    for k, v in subs.items():
        out = out.replace(b"{" + k.encode() + b"}", v.encode())
    return out.replace(b"{{", b"{").replace(b"}}", b"}")


def _assert_one_line_error(res: object, phrase: str, what: str) -> None:
    from click.testing import Result

    assert isinstance(res, Result)
    # Anything but SystemExit escaping the command is a traceback for the user.
    assert isinstance(res.exception, SystemExit), (what, res.exc_info)
    assert res.exit_code in (1, 2), (what, res.exit_code, res.output)
    lines = [
        x for x in res.output.splitlines() if x.strip() and not x.startswith(("Usage:", "Try "))
    ]
    assert len(lines) == 1 and lines[0].startswith("Error: "), (what, res.output)
    assert phrase in lines[0], (what, phrase, lines[0])


@pytest.mark.parametrize(("name", "text", "phrase"), TOML_CASES, ids=[c[0] for c in TOML_CASES])
def test_hostile_config_file_is_one_line_error_before_connecting(
    tmp_path: Path, listener: socket.socket, name: str, text: bytes, phrase: str
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    ws = f"ws://127.0.0.1:{listener.getsockname()[1]}"
    cfg = tmp_path / "job.toml"
    cfg.write_bytes(_fill(text, tmp_path, ws))
    res = CliRunner().invoke(cli, ["record", str(cfg), "--duration", "3", "--no-status"], env=ENV)
    _assert_one_line_error(res, phrase, name)
    assert not _connected(listener), f"{name}: connected before rejecting the config"


@pytest.mark.parametrize(
    ("name", "options", "phrase"), OPTION_CASES, ids=[c[0] for c in OPTION_CASES]
)
def test_hostile_options_are_one_line_error_before_connecting(
    tmp_path: Path, listener: socket.socket, name: str, options: list[str], phrase: str
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    ws = f"ws://127.0.0.1:{listener.getsockname()[1]}"
    args = ["record", "--venue", "binance-spot", "--no-status"]
    given = {o for o in options if o.startswith("--")}
    defaults = {
        "--streams": "btcusdt@trade",
        "--root": str(tmp_path / "arch"),
        "--ws-url": ws,
        "--duration": "3",
    }
    for opt, value in defaults.items():
        if opt not in given:
            args += [opt, value]
    args += [o.replace("{file}", str(tmp_path / "a-file")) for o in options]
    res = CliRunner().invoke(cli, args, env=ENV)
    _assert_one_line_error(res, phrase, name)
    assert not _connected(listener), f"{name}: connected before rejecting the options"


@pytest.mark.parametrize(
    "text",
    [b'root = "{root}"\n# \xff\n{venue}', b'root = "{root}"\nvenues = [1, 2]\n'],
    ids=["invalid UTF-8", "venues are numbers"],
)
def test_hostile_config_in_a_real_process_prints_one_line(tmp_path: Path, text: bytes) -> None:
    """As a user runs it: a process, stderr as the terminal shows it."""
    cfg = tmp_path / "job.toml"
    cfg.write_bytes(_fill(text, tmp_path, "ws://127.0.0.1:9"))
    res = subprocess.run(
        [sys.executable, "-m", "replay.cli", "record", str(cfg), "--no-status"],
        capture_output=True,
        check=False,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
