"""Run every analysis notebook against a freshly recorded archive (``make notebooks``).

1. Records the local exchange simulator (Binance spot, USDⓈ-M, spot SBE and Bybit linear) for
   ``--duration`` seconds (12) into ``notebooks/_archive/`` (deleted and recreated on every run)
   as ``ticktape record`` does (with the order-book keepers' REST ``depth_snapshot`` rows), with
   one scheduled disconnect (so that the archive holds a recorded gap) and a few dropped depth
   diffs (so that it holds a book resync).
2. Executes every ``notebooks/*.ipynb`` in memory with nbclient (kernel ``python3``, a few in
   parallel), with ``TICKTAPE_ARCHIVE`` pointing at that archive. The committed notebooks are
   never written to; ``--keep-executed`` writes the executed copies to ``notebooks/_executed/``.

Exits non-zero, naming the notebook and the cell, if any cell fails.

    .venv/bin/python notebooks/run_all.py [--duration 12] [--archive DIR] [--skip-record]
                                          [--jobs 3] [--keep-executed] [NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(REPO))

API_KEY_ENV = "TICKTAPE_BINANCE_API_KEY"

# What the notebooks need: trades, quotes, diff depth (with REST snapshots) on every venue,
# BTCUSDT everywhere for the cross-venue notebook.
STREAMS: dict[str, list[str]] = {
    "binance-spot": [
        f"{s}@{k}" for s in ("btcusdt", "ethusdt") for k in ("trade", "bookTicker", "depth@100ms")
    ],
    "binance-usdm": [
        f"{s}@{k}"
        for s in ("btcusdt", "ethusdt")
        for k in ("aggTrade", "bookTicker", "depth@100ms", "markPrice@1s")
    ],
    "bybit-linear": [
        f"{k}.{s}"
        for s in ("BTCUSDT", "ETHUSDT")
        for k in ("orderbook.50", "publicTrade", "tickers", "kline.1")
    ],
    "binance-sbe": ["btcusdt@trade", "btcusdt@bestBidAsk", "btcusdt@depth"],
}


# --------------------------------------------------------------------------------------------
# Recording


def _faults(duration: float) -> tuple[Any, ...]:
    """A disconnect of the USDⓈ-M connections (a recorded gap) and two dropped spot depth diffs
    (a sequence break: the book keeper records a gap, fetches a new snapshot, resyncs)."""
    from replay.sim import Fault

    return (
        Fault("close", venue="binance-usdm", at=duration * 0.4, abort=True),
        Fault(
            "drop", venue="binance-spot", stream="btcusdt@depth@100ms", at=duration * 0.6, count=2
        ),
    )


async def record(root: str, duration: float) -> None:
    """Record the simulator into ``root`` for ``duration`` seconds (real time)."""
    import trio

    from recorder import Recorder, RecorderConfig, VenueJob
    from recorder.cli import run_recorder
    from replay.sim import SimConfig, Simulator

    os.environ.setdefault(API_KEY_ENV, "notebooks-test-key")  # the simulator accepts any key
    sim = Simulator(SimConfig(venues=tuple(STREAMS), rate=400.0, seed=42, faults=_faults(duration)))
    async with trio.open_nursery() as outer:
        urls = await outer.start(sim.run)
        jobs = tuple(
            VenueJob(
                venue=v,
                streams=tuple(s),
                ws_url=urls.ws(v),
                rest_url=urls.rest(v),
                api_key_env=API_KEY_ENV if v == "binance-sbe" else None,
            )
            for v, s in STREAMS.items()
        )
        rec = Recorder(RecorderConfig(root=root, jobs=jobs, flush_interval=2.0))
        await run_recorder(rec, duration, False, False)  # as `ticktape record --duration`
        outer.cancel_scope.cancel()
    st = rec.statistics()
    print(
        f"recorded {duration:.0f} s: {st.writer.rows_written} rows in {st.writer.files_written} "
        f"files, {sum(s.reconnects for s in st.shards)} reconnects, "
        f"{sum(s.gaps for s in st.shards)} connection gaps"
    )


# --------------------------------------------------------------------------------------------
# Executing the notebooks


class NotebookFailed(Exception):
    pass


def run_notebook(path: Path, archive: str, timeout: int, out_dir: Path | None) -> float:
    """Execute ``path`` in memory; returns seconds taken. Raises NotebookFailed."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no kernel transport warnings
        resources={"metadata": {"path": str(path.parent)}},  # cwd of the kernel
    )
    env = os.environ.copy()
    env["TICKTAPE_ARCHIVE"] = archive
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    t0 = time.perf_counter()
    try:
        client.execute(env=env)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        raise NotebookFailed(_describe_failure(nb, exc)) from None
    finally:
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, out_dir / path.name)
    return time.perf_counter() - t0


def _describe_failure(nb: Any, exc: Exception) -> str:
    """Which code cell failed (1-based among code cells, and its first line), and why."""
    cells = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(cells, 1):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                first = next((ln for ln in cell.source.splitlines() if ln.strip()), "")
                return f"code cell {i} ({first.strip()[:60]!r}): {out['ename']}: {out['evalue']}"
    last = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {last[-1] if last else ''}"


def _run_one(path: Path, archive: str, timeout: int, out_dir: Path | None) -> tuple[str, float]:
    """Worker: ("", seconds) on success, (failure message, seconds) on failure."""
    t0 = time.perf_counter()
    try:
        return "", run_notebook(path, archive, timeout, out_dir)
    except NotebookFailed as exc:
        return str(exc), time.perf_counter() - t0
    except Exception as exc:  # the kernel did not start, the file is not a notebook, ...
        return f"{type(exc).__name__}: {exc}", time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("notebooks", nargs="*", help="notebooks to run (default: notebooks/*.ipynb)")
    ap.add_argument("--duration", type=float, default=12.0, help="seconds to record (12)")
    ap.add_argument("--archive", default=str(HERE / "_archive"), help="archive to (re)create")
    ap.add_argument("--skip-record", action="store_true", help="use the archive as it is")
    ap.add_argument("--timeout", type=int, default=120, help="seconds per cell (120)")
    ap.add_argument("--jobs", type=int, default=3, help="notebooks run in parallel (3)")
    ap.add_argument(
        "--keep-executed", action="store_true", help="write executed copies to notebooks/_executed/"
    )
    args = ap.parse_args(argv)

    paths = [Path(p).resolve() for p in args.notebooks] or sorted(HERE.glob("*.ipynb"))
    if not paths:
        print("run_all: no notebooks found", file=sys.stderr)
        return 2
    archive = os.path.abspath(args.archive)
    t0 = time.perf_counter()
    if not args.skip_record:
        import logging

        import trio

        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("ticktape").setLevel(logging.ERROR)  # the faults are on purpose
        shutil.rmtree(archive, ignore_errors=True)
        trio.run(record, archive, args.duration)
    if not any(Path(archive).glob("venue=*/channel=*/symbol=*/date=*/hour=*/*.parquet")):
        print(f"run_all: no archive at {archive}", file=sys.stderr)
        return 2
    t_rec = time.perf_counter() - t0

    out_dir = HERE / "_executed" if args.keep_executed else None
    ctx = multiprocessing.get_context("spawn")  # fresh workers, not forks of the recorder
    with ProcessPoolExecutor(max_workers=max(1, min(args.jobs, len(paths))), mp_context=ctx) as ex:
        futures = [ex.submit(_run_one, p, archive, args.timeout, out_dir) for p in paths]
        failed: list[str] = []
        for path, fut in zip(paths, futures, strict=True):
            error, secs = fut.result()
            if error:
                print(f"FAIL {path.name} ({secs:.1f} s): {error}", flush=True)
                failed.append(path.name)
            else:
                print(f"ok   {path.name:<24} {secs:5.1f} s", flush=True)
    total = time.perf_counter() - t0
    print(
        f"notebooks: {len(paths) - len(failed)}/{len(paths)} ok "
        f"(recording {t_rec:.1f} s, total {total:.1f} s)"
    )
    if failed:
        print(f"run_all: FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
