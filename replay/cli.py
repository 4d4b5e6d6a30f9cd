"""The ``ticktape`` command: the recorder's commands plus ``sim``, ``replay`` and ``serve``.

This is the console entry point because ``replay`` may import ``recorder`` but never the
reverse: the recorder's own commands are defined in ``recorder.cli`` and added to here.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import ssl
import sys
from dataclasses import replace

import click
import trio

from recorder.cli import cli, setup_logging
from replay.sim import VenueConfig

__all__ = ["cli", "main"]


def parse_time(text: str | None) -> int | None:
    """Epoch nanoseconds from an ISO-8601 time (UTC if no zone) or an integer of ns."""
    if text is None:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        t = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not an ISO-8601 time or epoch ns: {text!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.UTC)
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


def _ports(port: int, i: int) -> VenueConfig:
    """Venue ``i``'s WebSocket and REST ports when the first venue's is ``port`` (0: any)."""
    return VenueConfig(ws_port=port + 2 * i, rest_port=port + 2 * i + 1) if port else VenueConfig()


def server_tls(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The simulator's server-side TLS context from ``--tls-cert`` / ``--tls-key`` (None: plain)."""
    if cert is None:
        if key is not None:
            raise click.BadParameter("--tls-key needs --tls-cert")
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise click.BadParameter(f"cannot load TLS certificate/key: {exc}") from None
    return ctx


def _csv(text: str) -> list[str] | None:
    items = [x.strip() for x in text.split(",") if x.strip()]
    return items or None


@cli.command()
@click.option(
    "--venue",
    "venues",
    multiple=True,
    required=True,
    help="binance-spot, binance-usdm, binance-coinm, binance-sbe, bybit-spot, bybit-linear, "
    "bybit-inverse, bybit-option (repeat for several).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=0, help="WebSocket port of the first venue (0: any).")
@click.option("--seed", type=int, default=1, show_default=True, help="Synthetic market seed.")
@click.option("--symbols", default="", help="Comma-separated symbols (default: a few per venue).")
@click.option("--rate", type=float, default=200.0, show_default=True, help="Market steps/s/venue.")
@click.option("--ledger", type=click.Path(dir_okay=False), help="Append every sent message here.")
@click.option("--max-connection-age", type=float, help="Forced disconnect age in s (24 h default).")
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    help="PEM certificate (chain): serve wss:// and https:// instead of ws:// and http://.",
)
@click.option(
    "--tls-key", type=click.Path(exists=True, dir_okay=False), help="PEM private key of --tls-cert."
)
def sim(
    venues: tuple[str, ...],
    host: str,
    port: int,
    seed: int,
    symbols: str,
    rate: float,
    ledger: str | None,
    max_connection_age: float | None,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Run the local exchange simulator until stopped; prints the URLs it serves."""
    from replay.sim import DEFAULT_SYMBOLS, VENUES, SimConfig, Simulator

    unknown = [v for v in venues if v not in VENUES]
    if unknown:
        raise click.BadParameter(f"unknown venue(s) {unknown}; known: {', '.join(VENUES)}")
    wanted = set(_csv(symbols) or [])
    vcfg: dict[str, VenueConfig] = {}
    for i, v in enumerate(venues):
        c = _ports(port, i)
        if wanted:
            specs = tuple(s for s in DEFAULT_SYMBOLS[v] if s.symbol in wanted)
            if not specs:
                raise click.BadParameter(f"{v}: none of {sorted(wanted)} is a simulated symbol")
            c = replace(c, symbols=specs)
        if max_connection_age is not None:
            c = replace(c, max_connection_age=max_connection_age)
        vcfg[v] = c
    cfg = SimConfig(
        venues=venues, host=host, seed=seed, rate=rate, ledger_path=ledger, venue_config=vcfg,
        ssl_context=server_tls(tls_cert, tls_key),
    )  # fmt: skip
    setup_logging(False)

    async def main() -> None:
        simulator = Simulator(cfg)
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(simulator.run)
            for v in venues:
                click.echo(f"{v}: ws {urls.ws(v)}  rest {urls.rest(v)}")
            sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a simulator is stopped
        trio.run(main)


@cli.command("replay")
@click.argument("root")
@click.option("--venue", "venues", default="", help="Comma-separated venues (default: all).")
@click.option("--channel", "channels", default="", help="Comma-separated channels.")
@click.option("--symbol", "symbols", default="", help="Comma-separated symbols.")
@click.option("--start", help="Receive time from (ISO-8601, UTC if no zone, or epoch ns).")
@click.option("--end", help="Receive time before (exclusive).")
@click.option("--speed", type=float, help="Pace by recorded times: 1 = real time, 10 = 10x.")
@click.option("--format", "fmt", type=click.Choice(["ndjson"]), default="ndjson")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="File (default stdout).")
def replay_cmd(
    root: str,
    venues: str,
    channels: str,
    symbols: str,
    start: str | None,
    end: str | None,
    speed: float | None,
    fmt: str,
    output: str | None,
) -> None:
    """Write archived messages as NDJSON lines ``{"recv_ns","venue","stream","payload"}`` with
    the exact payload text (``payload_hex`` for binary), in archive order."""
    from replay.reader._archive import open_archive
    from replay.reader._ndjson import write_ndjson

    reader = open_archive(
        root,
        venues=_csv(venues),
        channels=_csv(channels),
        symbols=_csv(symbols),
        start_ns=parse_time(start),
        end_ns=parse_time(end),
    )
    out = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
    try:
        if speed is None:
            write_ndjson(reader, out)
        else:

            async def paced() -> None:
                async with reader.stream(speed=speed) as messages:
                    async for m in messages:
                        write_ndjson([m], out)
                        out.flush()

            trio.run(paced)
    except BrokenPipeError:  # `ticktape replay ... | head` is normal use
        pass
    finally:
        if output:
            out.close()


@cli.command()
@click.argument("root")
@click.option("--venue", "venues", multiple=True, help="Venues to serve (default: all recorded).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=0, help="WebSocket port of the first venue (0: any).")
@click.option("--speed", type=float, default=1.0, show_default=True, help="1 = recorded pace.")
@click.option("--from", "start", help="Start at this receive time (ISO-8601 or epoch ns).")
def serve(
    root: str, venues: tuple[str, ...], host: str, port: int, speed: float, start: str | None
) -> None:
    """Serve an archive over the exchanges' own WebSocket protocols: existing Binance or Bybit
    clients connect unchanged and receive the recorded payloads byte-exact, paced by their
    recorded times."""
    from recorder.archive import list_partitions
    from replay.serve._serve import ArchiveSource
    from replay.sim import VENUES, SimConfig, Simulator

    recorded = sorted({p.key.venue for p in list_partitions(root)[1]} & set(VENUES))
    chosen = list(venues) or recorded
    missing = [v for v in chosen if v not in recorded]
    if missing or not chosen:
        raise click.ClickException(f"nothing recorded for {missing or 'any venue'} in {root}")
    start_ns = parse_time(start)
    sources = {v: ArchiveSource(root, v, start_ns=start_ns, speed=speed) for v in chosen}
    vcfg = {v: _ports(port, i) for i, v in enumerate(chosen)}
    cfg = SimConfig(venues=tuple(chosen), host=host, sources=dict(sources), venue_config=vcfg)
    setup_logging(False)

    async def main() -> None:
        server = Simulator(cfg)
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(server.run)
            for v in chosen:
                click.echo(f"{v}: ws {urls.ws(v)}  rest {urls.rest(v)}")
            sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt):
        trio.run(main)


def main() -> None:
    """Console entry point of ``ticktape``."""
    cli()


if __name__ == "__main__":
    main()
