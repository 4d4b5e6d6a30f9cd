"""Deterministic messages of several venues and channels, for archive tests."""

from __future__ import annotations

import orjson

from recorder import HOUR_NS, Message
from recorder.venues._channels import session_payload
from recorder.venues.sbe import encode_trades

# 2026-11-21 10:59:00 UTC: a minute before an hour boundary.
T0 = 1_795_258_740_000_000_000


__all__ = ["HOUR_NS", "T0"]


def binance_trade(i: int, recv_ns: int, sym: str = "BTCUSDT") -> Message:
    e_ms = recv_ns // 1_000_000 - 3
    data = (
        f'{{"e":"trade","E":{e_ms},"s":"{sym}","t":{1000 + i},'
        f'"p":"{61000 + i % 97}.{i % 100:02d}000000","q":"0.{(i * 7919) % 100000:05d}000",'
        f'"T":{e_ms - 1},"m":{"true" if i % 3 else "false"},"M":true}}'
    )
    stream = f"{sym.lower()}@trade"
    payload = f'{{"stream":"{stream}","data":{data}}}'.encode()
    return Message(
        venue="binance-spot",
        stream=stream,
        channel="trade",
        symbol=sym,
        recv_ns=recv_ns,
        conn="binance-spot.0#1@t",
        seq=i,
        payload=payload,
    )


def binance_depth(i: int, recv_ns: int, sym: str = "BTCUSDT") -> Message:
    e_ms = recv_ns // 1_000_000
    first = 5000 + i * 3
    data = (
        f'{{"e":"depthUpdate","E":{e_ms},"s":"{sym}","U":{first},"u":{first + 2},'
        f'"b":[["6100{i % 10}.10000000","1.{i % 7}0000000"]],'
        f'"a":[["6101{i % 10}.20000000","0.00000000"]]}}'
    )
    stream = f"{sym.lower()}@depth@100ms"
    return Message(
        venue="binance-spot",
        stream=stream,
        channel="depth",
        symbol=sym,
        recv_ns=recv_ns,
        conn="binance-spot.0#1@t",
        seq=100_000 + i,
        payload=f'{{"stream":"{stream}","data":{data}}}'.encode(),
    )


def bybit_trade(i: int, recv_ns: int, sym: str = "ETHUSDT") -> Message:
    ts = recv_ns // 1_000_000
    payload = orjson.dumps(
        {
            "topic": f"publicTrade.{sym}",
            "type": "snapshot",
            "ts": ts,
            "data": [
                {
                    "T": ts - 2,
                    "s": sym,
                    "S": "Buy" if i % 2 else "Sell",
                    "v": f"{1 + i % 5}.{i % 10}0",
                    "p": f"{3000 + i % 13}.{i % 100:02d}",
                    "L": "PlusTick",
                    "i": f"b8d2a5d4-{i:04d}-5f0c-9d3a-3c1f1e2d{i:04d}",
                    "BT": False,
                    "RPI": False,
                    "seq": 900_000 + i,
                }
            ],
        }
    )
    return Message(
        venue="bybit-linear",
        stream=f"publicTrade.{sym}",
        channel="publicTrade",
        symbol=sym,
        recv_ns=recv_ns,
        conn="bybit-linear.0#1@t",
        seq=i,
        payload=payload,
    )


def sbe_trade(i: int, recv_ns: int) -> Message:
    us = recv_ns // 1000
    payload = encode_trades(
        event_time_us=us,
        transact_time_us=us - 5,
        price_exponent=-2,
        qty_exponent=-5,
        trades=[(7_000_000 + i, 3_712_345 + i, 150_000 + i, bool(i % 2))],
        symbol="BTCUSDT",
    )
    return Message(
        venue="binance-sbe",
        stream="btcusdt@trade",
        channel="trade",
        symbol="BTCUSDT",
        recv_ns=recv_ns,
        conn="binance-sbe.0#1@t",
        seq=i,
        payload=payload,
    )


def session_event(i: int, recv_ns: int) -> Message:
    return Message(
        venue="binance-spot",
        stream="binance-spot.0",
        channel="session",
        symbol="ALL",
        recv_ns=recv_ns,
        conn="binance-spot.0#1@t",
        seq=0,
        payload=session_payload(
            "gap",
            recv_ns,
            reason="test",
            streams=["btcusdt@trade"],
            gap_start_ns=recv_ns - 10,
            gap_end_ns=recv_ns,
        ),
    )


def mixed_messages(n: int, start_ns: int = T0, step_ns: int = 1_000_000_000) -> list[Message]:
    """``n`` rounds of messages of five channels on three venues, ``step_ns`` apart."""
    out: list[Message] = []
    for i in range(n):
        t = start_ns + i * step_ns
        out.append(binance_trade(i, t))
        out.append(binance_trade(i, t + 1, sym="ETHUSDT"))
        out.append(binance_depth(i, t + 2))
        out.append(bybit_trade(i, t + 3))
        out.append(sbe_trade(i, t + 4))
        if i % 10 == 0:
            out.append(session_event(i, t + 5))
    return out
