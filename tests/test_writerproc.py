"""The archive writer in a child process: same archive, and no loss when the child dies."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from recorder import Message
from recorder.archive._buffer import as_unparsed
from recorder.archive._writerproc import WriterProcess
from replay import open_archive
from tests.archive_helpers import mixed_messages


def test_child_process_writes_the_same_archive(tmp_path: Path) -> None:
    msgs = mixed_messages(40)
    bad = as_unparsed(msgs[0], "invalid JSON: test", "trade")
    bad = Message(
        venue=bad.venue,
        stream=bad.stream,
        channel=bad.channel,
        symbol=bad.symbol,
        recv_ns=bad.recv_ns + 7,
        conn=bad.conn,
        seq=99_999,
        payload=b'{"stream":"btcusdt@trade","data":{"e":"tr',
        fields=bad.fields,
    )
    w = WriterProcess(str(tmp_path), writer_id="child", fsync=False)
    try:
        w.add_many([*msgs, bad])
        assert w.statistics().pending_rows == len(msgs) + 1
        assert w.flush() == len(msgs) + 1
        st = w.statistics()
        assert st.rows_written == len(msgs) + 1 and st.unparsed_rows == 1 and st.pending_rows == 0
    finally:
        w.shutdown()
    back = list(open_archive(str(tmp_path)))
    assert back == sorted([*msgs, bad], key=Message.sort_key)
    (u,) = [m for m in back if m.channel == "unparsed"]
    assert u.fields == {"error": "invalid JSON: test", "expected_channel": "trade"}


def test_a_killed_child_is_restarted_and_nothing_is_lost(tmp_path: Path) -> None:
    msgs = mixed_messages(60)
    w = WriterProcess(str(tmp_path), writer_id="child", fsync=False)
    try:
        w.add_many(msgs[:100])
        w.flush()
        assert w._proc is not None
        os.kill(w._proc.pid, signal.SIGKILL)
        w._proc.wait(10)
        w.add_many(msgs[100:])
        assert w.flush() == len(msgs) - 100  # sent again to a fresh child
    finally:
        w.shutdown()
    assert list(open_archive(str(tmp_path))) == sorted(msgs, key=Message.sort_key)


def test_a_child_killed_between_staging_and_writing_loses_nothing(tmp_path: Path) -> None:
    msgs = mixed_messages(60)
    w = WriterProcess(str(tmp_path), writer_id="child", fsync=False)
    try:
        w.add_many(msgs[:70])
        assert w.stage() == 70  # encoded in the child, not written yet
        assert w.statistics().pending_rows == 70
        assert w._proc is not None
        os.kill(w._proc.pid, signal.SIGKILL)
        w._proc.wait(10)
        w.add_many(msgs[70:])
        assert w.flush() == len(msgs)  # the fresh child was handed the staged batch again
        assert w.statistics().pending_rows == 0
    finally:
        w.shutdown()
    assert list(open_archive(str(tmp_path))) == sorted(msgs, key=Message.sort_key)
