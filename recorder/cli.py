"""The recorder's commands: ``ticktape record``, ``ticktape ls``, ``ticktape verify``.

``replay.cli`` adds ``sim``, ``serve`` and ``replay`` to this group and is the console entry
point (``replay`` may import ``recorder``, never the reverse).
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import signal
import sys
import time
from typing import Any

import click
import orjson
import trio

from recorder.archive._storage import redact
from recorder.core._errors import ConfigError, TicktapeError


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts_ns": int(record.created * 1e9),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "status", None)
        if extra is not None:
            obj["status"] = extra
        return orjson.dumps(obj).decode()


class _Redacting(logging.Filter):
    """Masks secrets in every log line, whichever module's text it quotes (the boundaries
    that take text in redact it already; this is the last line of defence)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = redact(text)
        if masked != text:
            record.msg, record.args = masked, None
        return True


def setup_logging(log_json: bool, verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Redacting())
    if log_json:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def _fmt_ns(ns: int | None) -> str:
    if ns is None:
        return "-"
    return _dt.datetime.fromtimestamp(ns / 1e9, tz=_dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)


class _StopSignals:
    """SIGINT/SIGTERM for ``ticktape record``, from the command's start to its exit.

    Until the recorder runs there is nothing to flush: a signal ends the process at once with
    one log line and 128 + the signal number (130, 143). While it runs, Trio receives the
    signals and the first one stops it (everything is flushed: exit 0). Once it has stopped,
    further signals are ignored: the last flush is done and the process is exiting.
    """

    def __init__(self) -> None:
        self.recording_done = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, prev in self._previous.items():
            # The import-time handler of the ``ticktape`` process says "while starting":
            # past this point the process is only exiting.
            starting = getattr(prev, "ticktape_startup", False)
            default = signal.SIG_DFL if prev is None else prev  # None: set outside Python
            signal.signal(sig, signal.SIG_IGN if starting else default)
        self._previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if self.recording_done:
            return
        name = signal.Signals(signum).name
        logging.getLogger("ticktape").warning("%s: stopped before recording began", name)
        logging.shutdown()
        os._exit(128 + signum)


def _release_startup_handlers() -> None:
    """Give commands other than ``record`` the default signal behaviour back (the import-time
    handler in ``replay`` is only meant for the time before a command runs)."""
    defaults: dict[signal.Signals, Any] = {
        signal.SIGINT: signal.default_int_handler,
        signal.SIGTERM: signal.SIG_DFL,
    }
    for sig, default in defaults.items():
        if getattr(signal.getsignal(sig), "ticktape_startup", False):
            signal.signal(sig, default)


@click.group()
@click.version_option(package_name="ticktape")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """ticktape: record exchange market data into a lossless Parquet archive, and replay it."""
    if ctx.invoked_subcommand != "record":
        _release_startup_handlers()


@cli.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--venue", help="Venue to record (binance-spot, binance-usdm, binance-sbe, bybit-*).")
@click.option("--streams", default="", help="Comma-separated stream names (exchange's own names).")
@click.option("--symbols", default="", help="Comma-separated symbols (with --channels).")
@click.option("--channels", default="", help="Comma-separated channels, e.g. trade,depth@100ms.")
@click.option("--root", help="Archive root directory (or object-store URI).")
@click.option(
    "--duration", type=float, help="Stop after this many seconds (default: run until stopped)."
)
@click.option(
    "--ws-url", help="WebSocket base URL (default: the exchange's; point at the simulator)."
)
@click.option("--rest-url", help="REST base URL.")
@click.option("--flush-interval", type=float, help="Seconds between part-file flushes (default 5).")
@click.option("--writer-id", help="Name of this writer in file names (default w0).")
@click.option(
    "--status/--no-status", default=None, help="Live status table (default: on a terminal)."
)
@click.option("--log-json", is_flag=True, help="Logs and periodic status as JSON lines on stderr.")
@click.option(
    "--shard", "shard_opt", help="I/N: record this host's share of the streams (0-based)."
)
@click.option("--workers", type=click.IntRange(1, 64), default=1, help="Processes on this host.")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus /metrics, /healthz and /readyz on this port (worker i: port + i).",
)
@click.option("--metrics-host", help="Address the metrics endpoint listens on (127.0.0.1).")
@click.option("--worker", "worker_opt", hidden=True, help="I/N: set by --workers for each child.")
def record(
    config: str | None,
    venue: str | None,
    streams: str,
    symbols: str,
    channels: str,
    root: str | None,
    duration: float | None,
    ws_url: str | None,
    rest_url: str | None,
    flush_interval: float | None,
    writer_id: str | None,
    status: bool | None,
    log_json: bool,
    shard_opt: str | None,
    workers: int,
    metrics_port: int | None,
    metrics_host: str | None,
    worker_opt: str | None,
) -> None:
    """Record market data until stopped (SIGINT/SIGTERM flush everything and exit 0)."""
    stops = _StopSignals()
    stops.install()
    try:
        from recorder.capture._config import load_config, parse_share
        from recorder.capture._supervisor import Recorder

        setup_logging(log_json)
        if duration is not None and not (math.isfinite(duration) and duration > 0):
            raise click.BadParameter(
                f"must be a positive number of seconds, got {duration}", param_hint="'--duration'"
            )
        if workers > 1 and worker_opt is None:
            sys.exit(_run_workers(workers))

        def split(s: str) -> list[str]:
            return [x.strip() for x in s.split(",") if x.strip()]

        try:
            cfg = load_config(
                config,
                root=root,
                venue=venue,
                streams=split(streams),
                symbols=split(symbols),
                channels=split(channels),
                ws_url=ws_url,
                rest_url=rest_url,
                flush_interval=flush_interval,
                writer_id=writer_id,
                shard=parse_share(shard_opt, "--shard"),
                worker=parse_share(worker_opt, "--worker"),
                metrics_port=metrics_port,
                metrics_host=metrics_host,
            )
            rec = Recorder(cfg)
        except TicktapeError as exc:
            raise click.ClickException(str(exc)) from None
        show = sys.stderr.isatty() if status is None else status
        if worker_opt is not None:
            show = False  # the parent's terminal is shared by every worker
        trio.run(run_recorder, rec, duration, show, log_json, stops)
    finally:
        stops.restore()


def _run_workers(n: int) -> int:
    """Run ``n`` recorder processes, each with a disjoint share of the streams and a writer id
    of its own; forward SIGINT/SIGTERM to them and return the worst exit status."""
    import subprocess

    args = sys.argv[1:]
    child_args: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--workers":
            skip = True
            continue
        if a.startswith("--workers="):
            continue
        child_args.append(a)
    procs = [
        subprocess.Popen([sys.executable, "-m", "replay.cli", *child_args, "--worker", f"{i}/{n}"])
        for i in range(n)
    ]

    def forward(signum: int, frame: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    return max(p.wait() for p in procs)


async def run_recorder(
    rec: Any,
    duration: float | None,
    show: bool,
    log_json: bool,
    stops: _StopSignals | None = None,
) -> None:
    """Run a :class:`~recorder.Recorder` until ``duration`` passes or SIGINT/SIGTERM arrives
    (then everything is flushed), with the live status table if ``show``."""
    log = logging.getLogger("ticktape")
    stops = stops or _StopSignals()
    # Trio takes the signals over before the recorder starts and keeps them until its last
    # flush is done, so a second Ctrl-C cannot interrupt that flush.
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with trio.open_nursery() as watching:
            recording = trio.CancelScope()

            async def watch() -> None:
                async for sig in signals:
                    if not recording.cancel_called:
                        name = signal.Signals(sig).name
                        log.info("%s: flushing and stopping (further signals wait for it)", name)
                        recording.cancel()

            watching.start_soon(watch)
            with recording:
                if duration is not None:
                    recording.deadline = trio.current_time() + duration
                async with trio.open_nursery() as nursery:
                    if show:
                        nursery.start_soon(_status_live, rec)
                    elif log_json:
                        nursery.start_soon(_status_json, rec)
                    await rec.run()
                    nursery.cancel_scope.cancel()
            stops.recording_done = True
            watching.cancel_scope.cancel()
    st = rec.statistics()
    log.info(
        "stopped: %d rows in %d files (%s), %d write errors",
        st.writer.rows_written,
        st.writer.files_written,
        _fmt_bytes(st.writer.bytes_written),
        st.writer.write_errors,
    )


def status_table(rec: Any, prev: dict[str, tuple[float, int]]) -> Any:
    from rich.table import Table

    st = rec.statistics()
    now = time.time()
    t = Table(title=f"ticktape record -> {redact(rec.config.root)}", expand=False)
    for col in ("shard", "streams", "state", "msgs", "msg/s", "lag", "reconn", "gaps", "refused"):
        t.add_column(col, justify="right" if col not in ("shard", "state") else "left")
    for s in st.shards:
        last_t, last_n = prev.get(s.shard_id, (now, s.messages))
        rate = (s.messages - last_n) / max(1e-9, now - last_t) if now > last_t else 0.0
        prev[s.shard_id] = (now, s.messages)
        lag = "-" if s.last_recv_ns is None else f"{max(0.0, now - s.last_recv_ns / 1e9):.1f}s"
        state = "[green]live[/]" if s.connected else "[red]down[/]"
        t.add_row(
            s.shard_id,
            str(s.streams),
            state,
            str(s.messages),
            f"{rate:.0f}",
            lag,
            str(s.reconnects),
            str(s.gaps),
            str(len(s.refused)) if s.refused else "",
        )
    w = st.writer
    t.caption = (
        f"rows written {w.rows_written}  files {w.files_written}"
        f"  disk {_fmt_bytes(w.bytes_written)}"
        f"  pending {w.pending_rows}  raw rows {w.raw_rows}  unparsed {w.unparsed_rows}"
        f"  write errors {w.write_errors}"
    )
    return t


async def _status_live(rec: Any) -> None:
    from rich.console import Console
    from rich.live import Live

    prev: dict[str, tuple[float, int]] = {}
    with Live(status_table(rec, prev), console=Console(stderr=True), refresh_per_second=2) as live:
        while True:
            await trio.sleep(1)
            live.update(status_table(rec, prev))


async def _status_json(rec: Any, every: float = 10.0) -> None:
    log = logging.getLogger("ticktape.status")
    while True:
        await trio.sleep(every)
        st = rec.statistics()
        status = {
            "shards": [
                {
                    "shard": s.shard_id,
                    "connected": s.connected,
                    "messages": s.messages,
                    "reconnects": s.reconnects,
                    "gaps": s.gaps,
                    "refused": list(s.refused),
                    "last_recv_ns": s.last_recv_ns,
                }
                for s in st.shards
            ],
            "rows_written": st.writer.rows_written,
            "bytes_written": st.writer.bytes_written,
            "write_errors": st.writer.write_errors,
        }
        log.info("status", extra={"status": status})


@cli.command("ls")
@click.argument("root")
@click.option("--partitions", is_flag=True, help="One line per partition instead of per channel.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def ls_cmd(root: str, partitions: bool, as_json: bool) -> None:
    """List what an archive holds: venues, channels, symbols, hours, rows, bytes, time span."""
    from rich.console import Console
    from rich.table import Table

    from recorder.archive._inspect import group_summary, summarize

    try:
        parts = summarize(root)
    except TicktapeError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        rows = (
            [
                p.__dict__
                if not hasattr(p, "__slots__")
                else {k: getattr(p, k) for k in p.__slots__}
                for p in parts
            ]
            if partitions
            else group_summary(parts)
        )
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    # Off a terminal (pipes, CI logs) rich would assume 80 columns and squeeze the table.
    console = Console(width=None if sys.stdout.isatty() else 120)
    if not parts:
        console.print(f"{redact(root)}: empty archive")
        return
    if partitions:
        t = Table(title=redact(root))
        for c in (
            "venue",
            "channel",
            "symbol",
            "date",
            "hour",
            "files",
            "rows",
            "bytes",
            "first",
            "last",
        ):
            t.add_column(c)
        for p in parts:
            t.add_row(
                p.venue,
                p.channel,
                p.symbol,
                p.date,
                f"{p.hour:02d}",
                str(p.files),
                str(p.rows),
                _fmt_bytes(p.bytes),
                _fmt_ns(p.first_ns),
                _fmt_ns(p.last_ns),
            )
    else:
        groups = group_summary(parts)
        firsts = [g["first_ns"] for g in groups if g["first_ns"] is not None]
        lasts = [g["last_ns"] for g in groups if g["last_ns"] is not None]
        span = f"{_fmt_ns(min(firsts))[:10]} .. {_fmt_ns(max(lasts))[:10]} UTC" if firsts else ""
        t = Table(title=f"{redact(root)}  {span}")
        for c in ("venue", "channel", "symbols", "hours", "rows", "size", "from", "to"):
            t.add_column(c, justify="right" if c in ("hours", "rows", "size") else "left")
        for g in groups:
            syms = g["symbols"]
            shown = ",".join(syms[:3]) + (f" +{len(syms) - 3}" if len(syms) > 3 else "")
            t.add_row(
                g["venue"],
                g["channel"],
                shown,
                str(g["hours"]),
                str(g["rows"]),
                _fmt_bytes(g["bytes"]),
                _fmt_ns(g["first_ns"])[11:19],
                _fmt_ns(g["last_ns"])[11:19],
            )
    console.print(t)


@cli.command()
@click.argument("root")
def verify(root: str) -> None:
    """Check an archive: gaps, sequence breaks, duplicates, unreadable files.

    Exits 1 when a file is unreadable or a row has lost its payload (corruption), when a row
    is there twice, or when an hour is listed twice (a compacted file and parts it absorbed)."""
    from recorder.archive._inspect import verify as do_verify

    try:
        rep = do_verify(root)
    except TicktapeError as exc:
        raise click.ClickException(str(exc)) from None
    for line in rep.lines():
        click.echo(line)
    if not rep.ok:
        sys.exit(1)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except ConfigError as exc:  # pragma: no cover - click handles most
        raise SystemExit(f"error: {exc}") from None
