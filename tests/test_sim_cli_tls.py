"""``ticktape sim --tls-cert/--tls-key``: the simulator serves wss:// with a PEM certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

import orjson
import trustme
from click.testing import CliRunner
from trio_websocket import open_websocket_url

from replay.cli import cli, server_tls
from replay.sim import SimConfig
from tests.test_sim_support import collect, running


async def test_pem_files_serve_wss(tmp_path: Path) -> None:
    """The certificate and key files (as a user passes them) make a working wss:// server."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    ctx = server_tls(str(cert_path), str(key_path))
    assert ctx is not None
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with running(SimConfig(ssl_context=ctx)) as (_sim, urls):
        url = f"{urls.ws('binance-spot')}/ws/btcusdt@bookTicker"
        assert url.startswith("wss://")
        async with open_websocket_url(url, ssl_context=client_ctx) as ws:
            assert orjson.loads((await collect(ws, 1))[0])["s"] == "BTCUSDT"


def test_bad_tls_options_are_usage_errors(tmp_path: Path) -> None:
    """A key without a certificate, or files that are not PEM, stop `ticktape sim` at once."""
    key = tmp_path / "key.pem"
    key.write_text("not a key")
    runner = CliRunner()
    r = runner.invoke(cli, ["sim", "--venue", "binance-spot", "--tls-key", str(key)])
    assert r.exit_code == 2 and "--tls-key needs --tls-cert" in r.output
    r = runner.invoke(
        cli, ["sim", "--venue", "binance-spot", "--tls-cert", str(key), "--tls-key", str(key)]
    )
    assert r.exit_code == 2 and "cannot load TLS certificate/key" in r.output
