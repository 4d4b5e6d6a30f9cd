"""Archives in object storage, against a real S3-compatible server (moto) on 127.0.0.1.

Credentials, region and endpoint reach ticktape the standard way (``AWS_*`` environment
variables) unless a test passes them in the URI or as ``storage_options``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest
import trio

pytest.importorskip("moto.server")
import boto3
from click.testing import CliRunner
from moto.server import ThreadedMotoServer

from recorder import ArchiveWriter, Message
from recorder.archive._inspect import group_summary, summarize, verify
from recorder.archive._reader import list_partitions
from recorder.archive._storage import open_archive_root, redact
from recorder.cli import cli
from recorder.core._errors import ArchiveError
from replay import open_archive
from tests.archive_helpers import (
    HOUR_NS,
    T0,
    binance_depth,
    binance_trade,
    bybit_trade,
    mixed_messages,
    session_event,
)

GRACE = 5_000_000_000
ACCESS_KEY = "AKIATICKTAPETEST0001"
SECRET_KEY = "tt-secret-Zq8uY2v0w9XkLmN4pRsT"  # moto accepts any credentials
REPO = str(Path(__file__).resolve().parent.parent)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on a free port of 127.0.0.1, for the whole session."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The standard AWS environment pointing at moto, and a boto3 client to check objects."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"ticks-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def keys(s3: Any, bucket: str) -> list[str]:
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        out.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(out)


def write_all(root: str, msgs: list[Message], *, flush_every: int = 50) -> ArchiveWriter:
    w = ArchiveWriter(root, writer_id="test", fsync=True)
    for i, m in enumerate(msgs):
        w.add(m)
        if i % flush_every == flush_every - 1:
            w.flush()
    w.flush()
    return w


def sort(msgs: list[Message]) -> list[Message]:
    return sorted(msgs, key=Message.sort_key)


def test_round_trip_across_an_hour_boundary_on_s3(s3: Any, bucket: str) -> None:
    root = f"s3://{bucket}/arch/v1"
    msgs = mixed_messages(120)  # 10:59:00 .. 11:01:00
    w = write_all(root, msgs)
    assert w.object_store and not w.local
    got = list(open_archive(root))
    assert got == sort(msgs)
    assert [m.payload for m in got] == [m.payload for m in sort(msgs)]
    assert [m.fields for m in got] == [m.fields for m in sort(msgs)]
    st = w.statistics()
    assert st.write_errors == 0 and st.raw_rows == 0 and st.files_written > 0
    assert {p.key.hour for p in list_partitions(root)[1]} == {10, 11}
    # Only finished Parquet objects in the bucket: no temp area, no directory markers.
    ks = keys(s3, bucket)
    assert ks and all(k.startswith("arch/v1/venue=") and k.endswith(".parquet") for k in ks)
    assert st.bytes_written == sum(
        s3.head_object(Bucket=bucket, Key=k)["ContentLength"] for k in ks
    )


def test_compaction_on_s3_leaves_one_object_per_partition(s3: Any, bucket: str) -> None:
    root = f"s3://{bucket}/arch"
    w = write_all(root, mixed_messages(120), flush_every=37)
    before = list(open_archive(root))
    assert w.compact_closed_hours(T0 + HOUR_NS * 2, GRACE) > 0
    _, parts = list_partitions(root)
    assert parts
    for p in parts:
        assert [os.path.basename(x) for x in p.paths] == ["data-test.parquet"]
        assert not p.superseded
    assert list(open_archive(root)) == before
    # pyarrow leaves a zero-byte "directory" marker (key ending in "/") after deleting a
    # file; readers and query engines ignore them. Every *file* is a compacted object.
    ks = [k for k in keys(s3, bucket) if not k.endswith("/")]
    assert len(ks) == len(parts) and all(k.endswith("/data-test.parquet") for k in ks)
    # Compacting again is a no-op; a restarted writer finds nothing to do.
    w2 = ArchiveWriter(root, writer_id="test")
    assert w2.recover(T0 + HOUR_NS * 2, GRACE) == 0
    assert [k for k in keys(s3, bucket) if not k.endswith("/")] == ks


def test_ls_and_verify_on_s3(s3: Any, bucket: str) -> None:
    root = f"s3://{bucket}/arch"
    # Receive times on whole microseconds: summarize() turns the footer statistics into
    # datetimes, which pyarrow refuses for nanosecond values (a local-archive issue too).
    msgs = [
        m
        for i in range(60)
        for m in (
            binance_trade(i, T0 + i * 1_000_000_000),
            binance_depth(i, T0 + i * 1_000_000_000 + 1000),
            bybit_trade(i, T0 + i * 1_000_000_000 + 2000),
            *((session_event(i, T0 + i * 1_000_000_000 + 3000),) if i % 10 == 0 else ()),
        )
    ]
    write_all(root, msgs)
    parts = summarize(root)
    assert sum(p.rows for p in parts) == len(msgs)
    assert all(p.bytes > 0 and p.first_ns is not None for p in parts)
    channels = {(g["venue"], g["channel"]) for g in group_summary(parts)}
    assert ("binance-spot", "trade") in channels and ("bybit-linear", "publicTrade") in channels
    rep = verify(root)
    assert rep.ok and rep.rows == len(msgs) and not rep.duplicates
    assert len(rep.recorded_gaps) == 6  # the session events of mixed_messages
    runner = CliRunner()
    res = runner.invoke(cli, ["ls", "--json", root])
    assert res.exit_code == 0, res.output
    assert '"publicTrade"' in res.output
    res = runner.invoke(cli, ["verify", root])
    assert res.exit_code == 0, res.output
    assert "result: OK" in res.output


def test_endpoint_and_credentials_from_uri_or_options(
    s3: Any, bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.delenv(var)
    msgs = mixed_messages(5)
    via_query = f"s3://{bucket}/q?endpoint_override={moto_endpoint}&region=us-east-1"
    w = ArchiveWriter(
        via_query,
        writer_id="opt",
        storage_options={"access_key": ACCESS_KEY, "secret_key": SECRET_KEY},
    )
    w.add_many(msgs)
    assert w.flush() == len(msgs)
    # Credentials embedded in the URI are accepted too (and never shown, see below).
    embedded = (
        f"s3://{ACCESS_KEY}:{SECRET_KEY}@{bucket}/q?endpoint_override={moto_endpoint}"
        "&region=us-east-1"
    )
    assert list(open_archive(embedded)) == sort(msgs)
    assert SECRET_KEY not in repr(open_archive_root(embedded))
    assert SECRET_KEY not in open_archive_root(embedded).display
    # A profile in the shared credentials file.
    creds = Path(os.environ.get("TMPDIR", "/tmp")) / f"creds-{uuid.uuid4().hex}"
    creds.write_text(
        f"[recorder]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    try:
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
        fs, parts = list_partitions(
            f"s3://{bucket}/q",
            {"profile": "recorder", "endpoint_override": moto_endpoint, "region": "us-east-1"},
        )
        assert sum(len(p.paths) for p in parts) > 0
        assert isinstance(fs, pafs.S3FileSystem)
    finally:
        creds.unlink()


def _all_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc)


def test_secrets_never_appear_in_errors_logs_or_reprs(
    s3: Any, moto_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    embedded_secret = "embedded-Secret/Value+9xYz"
    quoted = embedded_secret.replace("/", "%2F").replace("+", "%2B")
    # 1. A bad option: the message quotes the root, with its credentials masked.
    bad = f"s3://{ACCESS_KEY}:{quoted}@nowhere/p?bogus=1&secret_key={SECRET_KEY}"
    with pytest.raises(ArchiveError) as ei:
        list_partitions(bad)
    text = _all_text(ei.value)
    assert "bogus" in text and "***" in text
    for secret in (SECRET_KEY, embedded_secret, quoted, ACCESS_KEY):
        assert secret not in text
    # 2. A bucket that does not exist: writes fail, are logged and kept for retry.
    caplog.set_level(logging.DEBUG)
    missing = f"s3://{ACCESS_KEY}:{quoted}@no-such-bucket-{uuid.uuid4().hex[:8]}/p"
    w = ArchiveWriter(missing, writer_id="bad")
    w.add_many(mixed_messages(2))
    assert w.flush() == 0
    st = w.statistics()
    assert st.write_errors > 0 and st.pending_rows > 0 and st.last_error
    shown = caplog.text + (st.last_error or "") + repr(w) + repr(w.root)
    assert "could not write" in caplog.text
    for secret in (SECRET_KEY, embedded_secret, quoted):
        assert secret not in shown
    # 3. An unreachable endpoint: listing fails with an ArchiveError, nothing secret in it.
    dead = (
        f"s3://{ACCESS_KEY}:{quoted}@bkt/p?endpoint_override=http://127.0.0.1:9"
        "&connect_timeout=0.5&request_timeout=0.5"
    )
    with pytest.raises(ArchiveError) as ei:
        summarize(dead)
    text = _all_text(ei.value)
    assert "cannot list s3://***@bkt/p" in text
    for secret in (SECRET_KEY, embedded_secret, quoted):
        assert secret not in text
    res = CliRunner().invoke(cli, ["verify", dead])
    assert res.exit_code != 0
    assert embedded_secret not in res.output and quoted not in res.output
    # 4. redact() on its own.
    assert redact(f"s3://k:{quoted}@b/p?session_token=abc123&region=x") == (
        "s3://***@b/p?session_token=***&region=x"
    )
    assert SECRET_KEY not in redact(f"error: signature for {SECRET_KEY} mismatch")


# -- a recorder killed in the middle of an upload -------------------------------------------

CRASH_WRITER = r"""
import os, sys, time
sys.path.insert(0, sys.argv[2])
from recorder import ArchiveWriter, Message
from tests.archive_helpers import mixed_messages, T0

root = sys.argv[1]
w = ArchiveWriter(root, writer_id="crash")
w.recover(T0, 5_000_000_000)
small = mixed_messages(40, step_ns=3_000_000_000)  # 10:59:00 .. 11:01:00
for i in (0, len(small) // 2):
    w.add_many(small[i:i + len(small) // 2])
    w.flush()
    print("flushed", flush=True)
# A big part: random payloads (undecodable, so kept raw) that do not compress,
# about 24 MB, which pyarrow uploads as a multipart upload of 10 MB parts.
t = T0 + 200_000_000_000
big = [
    Message(venue="binance-spot", stream="btcusdt@trade", channel="trade", symbol="BTCUSDT",
            recv_ns=t + i, conn="binance-spot.0#1@t", seq=10_000 + i, payload=os.urandom(1024))
    for i in range(24_000)
]
w.add_many(big)
print("uploading", flush=True)
w.flush()
print("done", flush=True)
time.sleep(60)
"""


@pytest.mark.slow
def test_sigkill_mid_upload_leaves_no_object_and_restart_recovers(
    s3: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slow the server's UploadPart down so the kill reliably lands while parts are in flight.
    from moto.s3.models import S3Backend

    real_upload_part: Callable[..., Any] = S3Backend.upload_part

    def slow_upload_part(self: Any, *args: Any, **kwargs: Any) -> Any:
        time.sleep(1.5)
        return real_upload_part(self, *args, **kwargs)

    monkeypatch.setattr(S3Backend, "upload_part", slow_upload_part)
    root = f"s3://{bucket}/arch"
    script = tmp_path / "writer.py"
    script.write_text(CRASH_WRITER)
    proc = subprocess.Popen(
        [sys.executable, str(script), root, REPO], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    upload: dict[str, Any] | None = None
    lines: list[str] = []
    try:
        while True:
            line = proc.stdout.readline().strip()
            assert line, f"writer exited early: {lines}"
            lines.append(line)
            if line == "uploading":
                break
        deadline = time.monotonic() + 60
        while upload is None and time.monotonic() < deadline:
            ups = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
            upload = next((u for u in ups if "/part-crash-" in u["Key"]), None)
            if upload is None:
                assert proc.poll() is None, "writer finished before its upload was seen"
                time.sleep(0.01)
        assert upload is not None, "no multipart upload seen"
        # Mid-upload: the upload exists, parts are being sent, the object does not exist.
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert lines == ["flushed", "flushed", "uploading"]
    key = upload["Key"]
    time.sleep(2)  # let the server finish the part requests that were in flight
    # The S3 API: no object under that key, ever; the upload stays incomplete (invisible).
    assert key not in keys(s3, bucket)
    with pytest.raises(s3.exceptions.ClientError):
        s3.head_object(Bucket=bucket, Key=key)
    pending = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert key in [u["Key"] for u in pending]
    # Readers see exactly the two completed flushes.
    small = mixed_messages(40, step_ns=3_000_000_000)
    _, parts = list_partitions(root)
    listed = {os.path.basename(p) for pf in parts for p in pf.paths}
    assert os.path.basename(key) not in listed
    assert all(n.startswith("part-crash-") for n in listed)
    assert list(open_archive(root)) == sort(small)
    assert verify(root).ok
    # Restart: recovery adopts the completed parts and compacts the closed hours.
    w = ArchiveWriter(root, writer_id="crash")
    assert w.recover(T0 + 2 * HOUR_NS, GRACE) == len(parts)
    _, parts = list_partitions(root)
    for pf in parts:
        assert [os.path.basename(p) for p in pf.paths] == ["data-crash.parquet"]
    assert list(open_archive(root)) == sort(small)
    assert all(k.endswith(("/data-crash.parquet", "/")) for k in keys(s3, bucket))


def test_polars_scans_the_archive_in_place(s3: Any, bucket: str, moto_endpoint: str) -> None:
    import polars as pl

    root = f"s3://{bucket}/arch"
    w = write_all(root, mixed_messages(120), flush_every=60)
    w.compact_closed_hours(T0 + HOUR_NS * 2, GRACE)  # leaves markers: the glob ignores them
    df = pl.scan_parquet(
        f"{root}/venue=binance-spot/channel=trade/**/*.parquet",
        hive_partitioning=True,
        storage_options={
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "aws_region": "us-east-1",
            "aws_endpoint_url": moto_endpoint,
            "aws_allow_http": "true",
        },
    ).collect()
    assert df.height == 240
    assert set(df["symbol"].unique()) == {"BTCUSDT", "ETHUSDT"}
    assert sorted(df["hour"].unique().to_list()) == [10, 11]
    assert df.schema["recv_time"] == pl.Datetime("ns", "UTC")


def test_failed_part_upload_never_completes_a_partial_object(
    s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part that cannot be uploaded fails the whole file: no object, data kept for retry."""
    from moto.s3.models import S3Backend

    real_upload_part: Callable[..., Any] = S3Backend.upload_part
    broken = {"on": True}

    def failing_upload_part(self: Any, bucket_name: str, mid: str, part_id: int, value: Any) -> Any:
        if broken["on"] and part_id == 2:
            raise RuntimeError("injected part failure")
        return real_upload_part(self, bucket_name, mid, part_id, value)

    monkeypatch.setattr(S3Backend, "upload_part", failing_upload_part)
    root = f"s3://{bucket}/arch?request_timeout=5"
    w = ArchiveWriter(root, writer_id="f")
    t = T0 + 200_000_000_000
    big = [
        Message(
            venue="binance-spot",
            stream="btcusdt@trade",
            channel="trade",
            symbol="BTCUSDT",
            recv_ns=t + i,
            conn="binance-spot.0#1@t",
            seq=i,
            payload=os.urandom(1024),
        )
        for i in range(24_000)  # about 24 MB of incompressible bytes: three parts
    ]
    w.add_many(big)
    assert w.flush() == 0
    st = w.statistics()
    assert st.write_errors == 1 and st.pending_rows == len(big)
    failed = [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert len(failed) == 1 and "/part-f-" in failed[0]
    assert keys(s3, bucket) == []  # parts 1 and 3 went up, yet no object was completed
    assert list_partitions(root)[1] == []
    broken["on"] = False
    assert w.flush() == len(big)
    got = list(open_archive(root))
    assert [m.payload for m in got] == [m.payload for m in big]
    assert failed[0] not in keys(s3, bucket)


async def test_replay_scan_and_serve_source_work_on_s3(
    s3: Any, bucket: str, moto_endpoint: str
) -> None:
    from replay import scan_trades
    from replay.serve._serve import ArchiveSource

    root = f"s3://{bucket}/arch"
    write_all(root, mixed_messages(60))
    trades = scan_trades(
        root,
        "binance-spot",
        storage_options={
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "aws_region": "us-east-1",
            "aws_endpoint_url": moto_endpoint,
            "aws_allow_http": "true",
        },
    ).collect()
    assert trades.height == 120 and set(trades["symbol"]) == {"BTCUSDT", "ETHUSDT"}
    # The serve command's source reads the same archive in recorded order.
    source = ArchiveSource(root, "binance-spot", speed=1e6)
    async with trio.open_nursery() as nursery:
        await nursery.start(source.run)  # reads ahead, off the event loop
        first = source.advance(0, {"btcusdt@trade"})  # the replay clock starts at the first call
        events = [*first]
        with trio.fail_after(30):
            while not source.finished.is_set():
                events += source.advance(10**12, {"btcusdt@trade"})
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert len(first) == 1 and len(events) == 60
    assert all(e.stream == "btcusdt@trade" for e in events)
    assert events[0].payload.startswith(b'{"e":"trade"')  # unwrapped for per-connection wrapping
