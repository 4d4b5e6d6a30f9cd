"""The Binance WebSocket control protocol: subscribe/unsubscribe requests and their replies.

Reference: ``binance-spot.md`` §4-§5 and ``binance-usdm-futures.md`` §2.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import orjson

from recorder.core._errors import LocalProtocolError, RemoteProtocolError
from recorder.venues.binance._envelope import _STREAM_PREFIX, USDM
from recorder.venues.binance._streams import _check_venue, parse_stream_name

# --------------------------------------------------------------------------------------------
# Control protocol (§5 Spot, §4 USDⓈ-M)
# --------------------------------------------------------------------------------------------

MAX_STREAMS_PER_CONNECTION: Final = 1024
_ID_STRING = re.compile(r"[A-Za-z0-9]{1,36}\Z")

RequestId: TypeAlias = int | str | None


def _check_id(venue: str, request_id: RequestId) -> None:
    if venue == USDM:
        # USDⓈ-M documents the id as an unsigned integer only.
        if type(request_id) is not int or not 0 <= request_id < 2**64:
            raise LocalProtocolError(f"{venue}: request id must be an unsigned integer")
        return
    if request_id is None:
        return
    if type(request_id) is int:
        if not -(2**63) <= request_id < 2**63:
            raise LocalProtocolError(f"{venue}: request id {request_id} is not an int64")
        return
    if isinstance(request_id, str) and _ID_STRING.match(request_id):
        return
    raise LocalProtocolError(
        f"{venue}: request id must be an int64, an alphanumeric string of at most 36 "
        f"characters or None, got {request_id!r}"
    )


def _stream_params(venue: str, streams: Iterable[str]) -> list[str]:
    params = list(streams)
    if not params:
        raise LocalProtocolError(f"{venue}: no streams given")
    if len(params) > MAX_STREAMS_PER_CONNECTION:
        raise LocalProtocolError(
            f"{venue}: {len(params)} streams exceed {MAX_STREAMS_PER_CONNECTION} per connection"
        )
    for s in params:
        parse_stream_name(venue, s)
    return params


def subscribe(venue: str, streams: Iterable[str], request_id: RequestId) -> bytes:
    """A ``SUBSCRIBE`` request; raises LocalProtocolError for invalid names or ids."""
    _check_venue(venue)
    params = _stream_params(venue, streams)
    _check_id(venue, request_id)
    return orjson.dumps({"method": "SUBSCRIBE", "params": params, "id": request_id})


def unsubscribe(venue: str, streams: Iterable[str], request_id: RequestId) -> bytes:
    """An ``UNSUBSCRIBE`` request."""
    _check_venue(venue)
    params = _stream_params(venue, streams)
    _check_id(venue, request_id)
    return orjson.dumps({"method": "UNSUBSCRIBE", "params": params, "id": request_id})


def list_subscriptions(venue: str, request_id: RequestId) -> bytes:
    """A ``LIST_SUBSCRIPTIONS`` request."""
    _check_venue(venue)
    _check_id(venue, request_id)
    return orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": request_id})


@dataclass(frozen=True, slots=True)
class CommandResult:
    """``{"result":...,"id":...}``: success (``result`` None) or a query's answer."""

    id: RequestId
    result: Any


@dataclass(frozen=True, slots=True)
class CommandError:
    """``{"error":{"code":...,"msg":...},"id":...}``; ``id`` is None when the server omits it."""

    id: RequestId
    code: int
    msg: str


@dataclass(frozen=True, slots=True)
class ServerShutdown:
    """The ``serverShutdown`` notice: reconnect soon. ``event_time`` in ms."""

    event_time: int


ControlReply: TypeAlias = CommandResult | CommandError | ServerShutdown

_CONTROL_PREFIXES: Final = (b'{"result"', b'{"error"', b'{"id"', b'{"e":"serverShutdown"')
_SHUTDOWN_COMBINED: Final = b'{"stream":"!serverShutdown","data":'


def _loads(frame: bytes) -> Any:
    try:
        return orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise RemoteProtocolError(f"invalid JSON in control frame: {exc}") from None


def _reply_id(value: Any) -> RequestId:
    rid = value.get("id")
    if rid is None or type(rid) is int or isinstance(rid, str):
        return rid
    raise RemoteProtocolError(f"control reply id of unexpected type: {rid!r}")


def _control_from(value: Any) -> ControlReply | None:
    if not isinstance(value, dict):
        return None
    if value.get("e") == "serverShutdown":
        et = value.get("E")
        if type(et) is not int:
            raise RemoteProtocolError("serverShutdown without an integer E")
        return ServerShutdown(et)
    if "error" in value:
        err = value["error"]
        if (
            not isinstance(err, dict)
            or type(err.get("code")) is not int
            or not isinstance(err.get("msg"), str)
        ):
            raise RemoteProtocolError(f"malformed error reply: {value!r:.200}")
        return CommandError(_reply_id(value), err["code"], err["msg"])
    if "result" in value:
        return CommandResult(_reply_id(value), value["result"])
    return None


def parse_control(frame: bytes) -> ControlReply | None:
    """The control reply in ``frame``, or None for a data frame.

    Data frames are recognised by their first bytes and never parsed; control frames are
    rare and small. Raises RemoteProtocolError for a control frame that is malformed.
    """
    if frame.startswith(_STREAM_PREFIX):
        if not frame.startswith(_SHUTDOWN_COMBINED):
            return None
        value = _loads(frame)
        inner = value.get("data") if isinstance(value, dict) else None
        reply = _control_from(inner)
        if not isinstance(reply, ServerShutdown):
            raise RemoteProtocolError(f"malformed !serverShutdown frame: {frame[:200]!r}")
        return reply
    if frame.startswith(_CONTROL_PREFIXES):
        reply = _control_from(_loads(frame))
        if reply is None:
            raise RemoteProtocolError(f"unrecognised control frame: {frame[:200]!r}")
        return reply
    if frame[:1] == b"{" and frame[1:2] != b'"':
        # Not Binance's compact form (whitespace after '{'): rare, so parse it.
        return _control_from(_loads(frame))
    return None
