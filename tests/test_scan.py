"""Polars scans: partition pruning, superseded parts, uniform trades/quotes, merged tickers."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import orjson
import polars as pl
import pytest

from recorder import ArchiveWriter, Message
from recorder.archive._reader import list_partitions
from recorder.venues.sbe import encode_best_bid_ask, encode_trades
from replay.scans._scan import (
    HIVE_SCHEMA,
    QUOTE_SCHEMA,
    TRADE_SCHEMA,
    scan,
    scan_quotes,
    scan_tickers_merged,
    scan_trades,
)
from tests.archive_helpers import HOUR_NS, T0, binance_trade, mixed_messages

MS = 1_000_000
SEC = 1_000_000_000
NS_UTC = pl.Datetime("ns", "UTC")


def _write(root: Path, msgs: list[Message], flush_every: int = 25) -> ArchiveWriter:
    w = ArchiveWriter(str(root), writer_id="t", fsync=False)
    for i, m in enumerate(msgs):
        w.add(m)
        if i % flush_every == flush_every - 1:
            w.flush()
    w.flush()
    return w


def _msg(
    venue: str,
    channel: str,
    stream: str,
    symbol: str,
    recv: int,
    payload: bytes,
    conn: str = "c1",
    seq: int = 0,
) -> Message:
    return Message(
        venue=venue,
        stream=stream,
        channel=channel,
        symbol=symbol,
        recv_ns=recv,
        conn=conn,
        seq=seq,
        payload=payload,
    )


# --------------------------------------------------------------------------------------------
# scan


def test_scan_values_dtypes_and_hive_columns(tmp_path: Path) -> None:
    msgs = mixed_messages(120)  # 10:59 .. 11:01, two hours
    _write(tmp_path, msgs)
    df = scan(str(tmp_path), "binance-spot", "trade").collect()
    trades = [m for m in msgs if m.venue == "binance-spot" and m.channel == "trade"]
    assert df.height == len(trades)
    s = df.schema
    assert s["recv_time"] == NS_UTC
    assert s["event_time"] == pl.Datetime("ms", "UTC")
    assert s["price"] == pl.Float64 and s["qty"] == pl.Float64
    for name, dtype in HIVE_SCHEMA.items():
        assert s[name] == dtype
    assert set(df["venue"]) == {"binance-spot"} and set(df["channel"]) == {"trade"}
    assert set(df["symbol"]) == {"BTCUSDT", "ETHUSDT"}
    assert set(df["hour"]) == {10, 11}
    assert set(df["date"]) == {dt.date(2026, 11, 21)}
    got = df.sort("recv_time", "conn", "seq")
    want = sorted(trades, key=Message.sort_key)
    assert got["price"].to_list() == [m.fields["price"] for m in want]
    assert got["recv_time"].dt.epoch("ns").to_list() == [m.recv_ns for m in want]
    assert got["trade_id"].to_list() == [m.fields["trade_id"] for m in want]


def test_scan_filters_symbols_and_time(tmp_path: Path) -> None:
    msgs = mixed_messages(120)
    _write(tmp_path, msgs)
    root = str(tmp_path)
    start, end = T0 + 30 * SEC, T0 + 90 * SEC
    df = scan(root, "binance-spot", "trade", symbols="ETHUSDT", start=start, end=end).collect()
    want = [
        m
        for m in msgs
        if m.channel == "trade"
        and m.symbol == "ETHUSDT"
        and m.venue == "binance-spot"
        and start <= m.recv_ns < end
    ]
    assert df.height == len(want) == 60
    assert set(df["symbol"]) == {"ETHUSDT"}
    # datetime bounds work too (naive = UTC)
    t0 = dt.datetime.fromtimestamp(start // SEC, tz=dt.UTC).replace(tzinfo=None)
    t1 = dt.datetime.fromtimestamp(end // SEC, tz=dt.UTC)
    df2 = scan(root, "binance-spot", "trade", symbols=["ETHUSDT"], start=t0, end=t1).collect()
    assert df2.equals(df)
    # An hour that is not there: empty, full schema.
    empty = scan(root, "binance-spot", "trade", start=T0 + 5 * HOUR_NS).collect()
    assert empty.height == 0 and empty.schema == df.schema
    nothing = scan(str(tmp_path / "none"), "bybit-linear", "tickers").collect()
    assert nothing.height == 0 and "last_price" in nothing.schema


def test_superseded_parts_are_not_double_counted(tmp_path: Path) -> None:
    msgs = mixed_messages(120)
    w = _write(tmp_path, msgs, flush_every=17)
    root = str(tmp_path)
    before = scan(root, "binance-spot", "trade").collect().sort("recv_time", "conn", "seq")
    # Crash between compaction's rename and its deletes: the parts are still there.
    parts = sorted(tmp_path.glob("venue=binance-spot/channel=trade/**/hour=10/part-*.parquet"))
    assert len(parts) > 1
    saved = tmp_path.parent / (tmp_path.name + "-saved")
    saved.mkdir()
    for p in parts:
        shutil.copy2(p, saved / f"{p.parent.parent.parent.name}__{p.name}")
    w.compact_closed_hours(T0 + 2 * HOUR_NS, 0)
    for p in parts:
        assert not p.exists()
        shutil.copy2(saved / f"{p.parent.parent.parent.name}__{p.name}", p)
    _, listed = list_partitions(root)
    assert any(pf.superseded for pf in listed)
    after = scan(root, "binance-spot", "trade").collect().sort("recv_time", "conn", "seq")
    assert after.drop("raw").equals(before.drop("raw"))
    # A naive glob would count the hour twice.
    naive = pl.scan_parquet(
        str(tmp_path / "venue=binance-spot/channel=trade/**/*.parquet"), hive_partitioning=True
    ).collect()
    assert naive.height > after.height


def test_percent_encoded_symbol_comes_back(tmp_path: Path) -> None:
    m = binance_trade(1, T0)
    odd = _msg(m.venue, m.channel, m.stream, "BTC/USDT.X", T0, m.payload)
    _write(tmp_path, [odd])
    df = scan(str(tmp_path), "binance-spot", "trade").collect()
    assert df["symbol"].to_list() == ["BTC/USDT.X"]
    assert scan(str(tmp_path), "binance-spot", "trade", symbols="BTC/USDT.X").collect().height


# --------------------------------------------------------------------------------------------
# Trades


def _binance_agg(i: int, recv: int) -> Message:
    e = recv // MS
    data = (
        f'{{"e":"aggTrade","E":{e},"s":"BTCUSDT","a":{500 + i},"p":"6100{i}.50","q":"0.25000",'
        f'"f":{900 + i},"l":{901 + i},"T":{e - 1},"m":{"true" if i % 2 else "false"},"M":true}}'
    )
    payload = f'{{"stream":"btcusdt@aggTrade","data":{data}}}'.encode()
    return _msg("binance-spot", "aggTrade", "btcusdt@aggTrade", "BTCUSDT", recv, payload, seq=i)


def _bybit_trades(recv: int) -> Message:
    ts = recv // MS
    item = {
        "T": ts - 2,
        "s": "ETHUSDT",
        "S": "Buy",
        "v": "1.50",
        "p": "3000.25",
        "L": "PlusTick",
        "i": "aaa-1",
        "BT": False,
        "RPI": False,
        "seq": 7,
    }
    item2 = item | {"S": "Sell", "v": "0.50", "p": "3000.00", "i": "aaa-2", "L": "MinusTick"}
    payload = orjson.dumps(
        {"topic": "publicTrade.ETHUSDT", "type": "snapshot", "ts": ts, "data": [item, item2]}
    )
    return _msg("bybit-linear", "publicTrade", "publicTrade.ETHUSDT", "ETHUSDT", recv, payload)


def _sbe_trades(recv: int) -> Message:
    us = recv // 1000
    payload = encode_trades(
        symbol="BTCUSDT",
        event_time_us=us,
        transact_time_us=us - 7,
        price_exponent=-2,
        qty_exponent=-3,
        trades=[(11, 6_100_050, 1_500, True), (12, 6_100_100, 250, False)],
    )
    return _msg("binance-sbe", "trade", "btcusdt@trade", "BTCUSDT", recv, payload)


def test_scan_trades_uniform_schema_across_venues(tmp_path: Path) -> None:
    t = T0 + 10 * SEC
    msgs = [binance_trade(1, t), binance_trade(2, t + SEC), _binance_agg(1, t)]
    msgs += [_bybit_trades(t), _sbe_trades(t)]
    _write(tmp_path, msgs)
    root = str(tmp_path)
    frames = {
        "trade": scan_trades(root, "binance-spot").collect(),
        "aggTrade": scan_trades(root, "binance-spot", channel="aggTrade").collect(),
        "bybit": scan_trades(root, "bybit-linear").collect(),
        "sbe": scan_trades(root, "binance-sbe").collect(),
    }
    for df in frames.values():
        assert df.schema == pl.Schema(TRADE_SCHEMA)
    assert pl.concat(list(frames.values())).height == 2 + 1 + 2 + 2

    bt = frames["trade"].sort("recv_time")
    m1 = msgs[0]
    assert bt["price"][0] == m1.fields["price"] and bt["qty"][0] == m1.fields["qty"]
    # binance_trade(1): m = true (1 % 3) -> the buyer is the maker -> taker sold
    assert bt["side"].to_list() == ["sell", "sell"]
    assert bt["trade_id"][0] == str(m1.fields["trade_id"])
    assert bt["event_time"][0] == dt.datetime.fromtimestamp((t // MS - 3) / 1000, tz=dt.UTC)

    agg = frames["aggTrade"]
    assert agg.select("symbol", "price", "qty", "side", "trade_id", "venue").rows() == [
        ("BTCUSDT", 61001.5, 0.25, "sell", "501", "binance-spot")
    ]
    assert agg["trade_time"].dt.epoch("ms").to_list() == [t // MS - 1]

    by = frames["bybit"]
    assert by.select("symbol", "price", "qty", "side", "trade_id").rows() == [
        ("ETHUSDT", 3000.25, 1.5, "buy", "aaa-1"),
        ("ETHUSDT", 3000.0, 0.5, "sell", "aaa-2"),
    ]
    assert by["recv_time"].dt.epoch("ns").to_list() == [t, t]
    assert by["trade_time"][0] == dt.datetime.fromtimestamp((t // MS - 2) / 1000, tz=dt.UTC)

    sbe = frames["sbe"]
    assert sbe.select("price", "qty", "side", "trade_id").rows() == [
        (61000.5, 1.5, "sell", "11"),
        (61001.0, 0.25, "buy", "12"),
    ]
    assert sbe["trade_time"].dt.epoch("us").to_list() == [t // 1000 - 7] * 2


def test_scan_trades_rejects_other_channels() -> None:
    with pytest.raises(ValueError, match="trade"):
        scan_trades("/nonexistent", "binance-spot", channel="depth").collect()
    with pytest.raises(ValueError, match="no trade view"):
        scan_trades("/nonexistent", "nope-venue")


# --------------------------------------------------------------------------------------------
# Quotes


def _book_ticker(i: int, recv: int) -> Message:
    data = (
        f'{{"u":{4000 + i},"s":"BNBUSDT","b":"25.3{i}000000","B":"31.21000000",'
        f'"a":"25.4{i}000000","A":"40.66000000"}}'
    )
    payload = f'{{"stream":"bnbusdt@bookTicker","data":{data}}}'.encode()
    return _msg("binance-spot", "bookTicker", "bnbusdt@bookTicker", "BNBUSDT", recv, payload, seq=i)


def _bybit_l1(recv: int, u: int, depth: int = 1, bids: bool = True) -> Message:
    topic = f"orderbook.{depth}.BTCUSDT"
    data = {
        "s": "BTCUSDT",
        "b": [["100.10", "1.5"]] if bids else [],
        "a": [["100.20", "2.5"]],
        "u": u,
        "seq": 70 + u,
    }
    payload = orjson.dumps(
        {"topic": topic, "ts": recv // MS, "type": "snapshot", "data": data, "cts": recv // MS - 1}
    )
    return _msg("bybit-linear", "orderbook", topic, "BTCUSDT", recv, payload, seq=u)


def test_scan_quotes(tmp_path: Path) -> None:
    t = T0 + 5 * SEC
    sbe = encode_best_bid_ask(
        symbol="BTCUSDT",
        event_time_us=t // 1000 - 3,
        book_update_id=777,
        price_exponent=-2,
        qty_exponent=-4,
        bid_price=6_100_000,
        bid_qty=12_345,
        ask_price=6_100_010,
        ask_qty=5,
    )
    msgs = [_book_ticker(1, t), _book_ticker(2, t + SEC)]
    msgs += [_msg("binance-sbe", "bestBidAsk", "btcusdt@bestBidAsk", "BTCUSDT", t, sbe)]
    msgs += [_bybit_l1(t, 5), _bybit_l1(t + SEC, 6, bids=False), _bybit_l1(t, 9, depth=50)]
    _write(tmp_path, msgs)
    root = str(tmp_path)
    bn = scan_quotes(root, "binance-spot").collect().sort("recv_time")
    sb = scan_quotes(root, "binance-sbe").collect()
    by = scan_quotes(root, "bybit-linear").collect().sort("recv_time")
    for df in (bn, sb, by):
        assert df.schema == pl.Schema(QUOTE_SCHEMA)
    assert bn.select("symbol", "bid", "bid_qty", "ask", "ask_qty", "update_id").rows() == [
        ("BNBUSDT", 25.31, 31.21, 25.41, 40.66, 4001),
        ("BNBUSDT", 25.32, 31.21, 25.42, 40.66, 4002),
    ]
    assert bn["event_time"].null_count() == 2
    assert sb.select("bid", "bid_qty", "ask", "ask_qty", "update_id").rows() == [
        (61000.0, 1.2345, 61000.1, 0.0005, 777)
    ]
    assert sb["event_time"].dt.epoch("us").to_list() == [t // 1000 - 3]
    # Only orderbook.1: the level-50 snapshot is not a quote; an empty side is null.
    assert by.select("bid", "bid_qty", "ask", "ask_qty", "update_id").rows() == [
        (100.1, 1.5, 100.2, 2.5, 5),
        (None, None, 100.2, 2.5, 6),
    ]


# --------------------------------------------------------------------------------------------
# Bybit tickers merged


def _ticker(
    kind: str,
    recv: int,
    data: dict[str, str],
    conn: str = "c1",
    seq: int = 0,
    symbol: str = "BTCUSDT",
) -> Message:
    payload = orjson.dumps(
        {
            "topic": f"tickers.{symbol}",
            "type": kind,
            "data": {"symbol": symbol, **data},
            "cs": 1000 + seq,
            "ts": recv // MS,
        }
    )
    return _msg("bybit-linear", "tickers", f"tickers.{symbol}", symbol, recv, payload, conn, seq)


SNAP = {
    "tickDirection": "PlusTick",
    "lastPrice": "66666.60",
    "markPrice": "66666.50",
    "fundingRate": "-0.005",
    "bid1Price": "66666.60",
    "bid1Size": "23.165",
    "ask1Price": "66666.70",
    "ask1Size": "23.469",
    "turnover24h": "4936790807.6521",
}


def test_scan_tickers_merged(tmp_path: Path) -> None:
    t = T0
    msgs = [
        _ticker("delta", t, {"bid1Price": "1.00"}, conn="c0", seq=1),  # before any snapshot
        _ticker("snapshot", t + 1 * SEC, SNAP, seq=1),
        _ticker("delta", t + 2 * SEC, {"bid1Price": "66667.00", "bid1Size": "1.500"}, seq=2),
        _ticker(
            "delta",
            t + 3 * SEC,
            {"lastPrice": "66668.10", "tickDirection": "ZeroPlusTick", "fundingRate": ""},
            seq=3,
        ),
        _ticker("snapshot", t + 4 * SEC, {"lastPrice": "70000.00", "bid1Price": "69999.90"}, seq=4),
        _ticker("delta", t + 5 * SEC, {"ask1Price": "70000.10"}, seq=5),
        _ticker("snapshot", t + 2 * SEC, SNAP | {"lastPrice": "3000.00"}, seq=1, symbol="ETHUSDT"),
        _ticker("delta", t + 3 * SEC, {"markPrice": "3001.00"}, seq=2, symbol="ETHUSDT"),
    ]
    _write(tmp_path, msgs)
    df = scan_tickers_merged(str(tmp_path), "bybit-linear").collect()
    btc = df.filter(pl.col("symbol") == "BTCUSDT").sort("recv_time")
    cols = [
        "msg_type",
        "from_snapshot",
        "last_price",
        "bid1_price",
        "bid1_size",
        "ask1_price",
        "funding_rate",
        "tick_direction",
        "mark_price",
    ]
    assert btc.select(cols).rows() == [
        ("delta", False, None, 1.0, None, None, None, None, None),
        ("snapshot", True, 66666.6, 66666.6, 23.165, 66666.7, -0.005, "PlusTick", 66666.5),
        ("delta", True, 66666.6, 66667.0, 1.5, 66666.7, -0.005, "PlusTick", 66666.5),
        # fundingRate "" is present-but-empty: null, not the previous value
        ("delta", True, 66668.1, 66667.0, 1.5, 66666.7, None, "ZeroPlusTick", 66666.5),
        # a snapshot resets: fields it lacks are unknown
        ("snapshot", True, 70000.0, 69999.9, None, None, None, None, None),
        ("delta", True, 70000.0, 69999.9, None, 70000.1, None, None, None),
    ]
    # The digit counts travel with the values (render back "66667.00" / "1.500").
    assert btc["bid1_price_dp"].to_list()[1:4] == [2, 2, 2]
    assert btc["bid1_size_dp"].to_list()[1:4] == [3, 3, 3]
    assert btc["funding_rate_dp"].to_list()[3] == -1  # "" kept as empty
    assert btc["turnover_24h"].to_list()[1:4] == [4936790807.6521] * 3
    eth = df.filter(pl.col("symbol") == "ETHUSDT")
    assert eth.select("last_price", "mark_price").rows() == [(3000.0, 66666.5), (3000.0, 3001.0)]
    assert df.schema["recv_time"] == NS_UTC and df.schema["last_price"] == pl.Float64
    # Restricting the time range keeps the semantics within the range.
    late = scan_tickers_merged(str(tmp_path), "bybit-linear", "BTCUSDT", start=t + 4 * SEC)
    assert late.collect().select("from_snapshot", "last_price").rows() == [
        (True, 70000.0),
        (True, 70000.0),
    ]


def test_scan_tickers_merged_is_bybit_only() -> None:
    with pytest.raises(ValueError, match="Bybit"):
        scan_tickers_merged("/nonexistent", "binance-spot")


def test_scan_tickers_merged_on_a_real_capture(tmp_path: Path) -> None:
    from tests._shared import corpus

    msgs = [
        _msg(
            "bybit-linear",
            "tickers",
            line.stream,
            line.stream.split(".", 1)[1],
            int(line.recv_ts * 1e9),
            line.payload,
            seq=i,
        )
        for i, line in enumerate(corpus("bybit-linear", "tickers"))
        if line.exact and line.recv_ts is not None and line.stream is not None
    ]
    assert len(msgs) > 50
    _write(tmp_path, msgs)
    df = scan_tickers_merged(str(tmp_path), "bybit-linear").collect()
    assert df.height == len(msgs)
    assert df["from_snapshot"].all()
    nulls = df.select(pl.col("last_price", "bid1_price", "ask1_price", "mark_price").null_count())
    assert nulls.row(0) == (0, 0, 0, 0)
    # Each delta's own fields win; the rest are the snapshot's (or an earlier delta's).
    fields = {m.seq: m.fields for m in msgs}  # seq is unique here
    for row in df.iter_rows(named=True):
        src = fields[row["seq"]]
        for col in ("last_price", "bid1_price", "mark_price"):
            if src[col + "_dp"] is not None:
                assert row[col] == src[col]
