"""The Bybit V5 control protocol: ``op`` subscribe/unsubscribe/ping, connection budgets,
and the replies.

Reference: ``bybit-v5.md`` §1-§3.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from recorder.core._errors import LocalProtocolError, RemoteProtocolError, UnsupportedMessage
from recorder.venues.bybit._topics import LEGACY_MESSAGE, category_of, validate_topic

# --------------------------------------------------------------------------------------------
# Control protocol

ARGS_CHARS_PER_CONNECTION: Final = 21_000
"""Sum of topic lengths allowed in ``args`` on one public connection (all categories)."""
OPTION_ARGS_PER_CONNECTION: Final = 2_000
SPOT_ARGS_PER_REQUEST: Final = 10
DERIVATIVE_ARGS_PER_REQUEST: Final = 100
"""Not a documented limit: third-party clients batch because very large requests were seen
to close connections (unconfirmed), so keep requests modest."""


def subscribe_request(
    topics: Sequence[str], req_id: str | None = None, *, venue: str | None = None
) -> bytes:
    """``{"req_id":…,"op":"subscribe","args":[…]}`` (req_id omitted when None).

    With ``venue``, every topic is validated (LocalProtocolError if invalid there) and the
    spot limit of 10 args per request is enforced; :func:`plan_requests` does the batching.
    """
    if venue is not None:
        for t in topics:
            validate_topic(venue, t)
        if category_of(venue) == "spot" and len(topics) > SPOT_ARGS_PER_REQUEST:
            raise LocalProtocolError(
                f"{venue}: {len(topics)} args in one request, spot allows {SPOT_ARGS_PER_REQUEST}"
            )
    return _op_request("subscribe", topics, req_id)


def unsubscribe_request(topics: Sequence[str], req_id: str | None = None) -> bytes:
    return _op_request("unsubscribe", topics, req_id)


def ping_request(req_id: str | None = None) -> bytes:
    """``{"req_id":…,"op":"ping"}``."""
    msg: dict[str, Any] = {} if req_id is None else {"req_id": req_id}
    msg["op"] = "ping"
    return orjson.dumps(msg)


def _op_request(op: str, topics: Sequence[str], req_id: str | None) -> bytes:
    if not topics:
        raise LocalProtocolError(f"{op} without topics")
    msg: dict[str, Any] = {} if req_id is None else {"req_id": req_id}
    msg["op"] = op
    msg["args"] = list(topics)
    return orjson.dumps(msg)


def check_connection_budget(venue: str, topics: Sequence[str]) -> None:
    """Raise LocalProtocolError if one connection would carry more than Bybit allows."""
    cat = category_of(venue)
    # Checked first, though with real topics (>= 13 characters) the 21,000-character budget
    # is always reached before 2000 option topics.
    if cat == "option" and len(topics) > OPTION_ARGS_PER_CONNECTION:
        raise LocalProtocolError(
            f"{venue}: {len(topics)} topics, more than {OPTION_ARGS_PER_CONNECTION} per "
            "option connection"
        )
    chars = sum(len(t) for t in topics)
    if chars > ARGS_CHARS_PER_CONNECTION:
        raise LocalProtocolError(
            f"{venue}: {len(topics)} topics use {chars} characters of args, more than "
            f"{ARGS_CHARS_PER_CONNECTION} per connection; split them over connections"
        )


def _unique_valid(venue: str, topics: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for t in topics:
        validate_topic(venue, t)
        seen.setdefault(t, None)
    return list(seen)


def plan_requests(
    venue: str, topics: Iterable[str], *, per_request: int | None = None
) -> list[list[str]]:
    """Subscribe batches for ONE connection: topics validated, de-duplicated (order kept),
    checked against the connection budget, and split to the per-request limit."""
    cat = category_of(venue)
    unique = _unique_valid(venue, topics)
    check_connection_budget(venue, unique)
    limit = SPOT_ARGS_PER_REQUEST if cat == "spot" else DERIVATIVE_ARGS_PER_REQUEST
    if per_request is not None:
        if per_request < 1:
            raise LocalProtocolError("per_request must be >= 1")
        limit = min(limit, per_request) if cat == "spot" else per_request
    return [unique[i : i + limit] for i in range(0, len(unique), limit)]


def plan_connections(venue: str, topics: Iterable[str]) -> list[list[str]]:
    """Split topics over as few connections as the per-connection budget allows."""
    cat = category_of(venue)
    conns: list[list[str]] = []
    chars = 0
    for t in _unique_valid(venue, topics):
        full = conns and (
            chars + len(t) > ARGS_CHARS_PER_CONNECTION
            or (cat == "option" and len(conns[-1]) >= OPTION_ARGS_PER_CONNECTION)
        )
        if not conns or full:
            conns.append([])
            chars = 0
        conns[-1].append(t)
        chars += len(t)
    return conns


@dataclass(frozen=True, slots=True)
class ControlReply:
    """A reply to one of our requests.

    ``op`` is ``subscribe``, ``unsubscribe`` or ``pong``. ``accepted``/``refused`` list topics
    only when the reply names them (option ``COMMAND_RESP``, or the topic of a ``handler not
    found`` error); spot/linear/inverse acknowledge a whole request, matched by ``req_id``
    (use :meth:`resolve`).
    """

    op: str
    success: bool
    req_id: str | None = None
    conn_id: str | None = None
    message: str = ""
    accepted: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    server_ms: int | None = None
    per_topic: bool = False

    def resolve(self, requested: Sequence[str]) -> tuple[list[str], list[str]]:
        """(accepted, refused) among the topics of the request this reply answers.

        Bybit does not say whether the other topics of a failed request were subscribed;
        they count as refused so the caller resubscribes them (without the named culprit).
        """
        if self.per_topic:
            ok = set(self.accepted)
            return [t for t in requested if t in ok], [t for t in requested if t not in ok]
        if self.success:
            return list(requested), []
        return [], list(requested)


_NOT_FOUND = "error:handler not found"


def parse_control(frame: bytes) -> ControlReply | None:
    """Parse a subscribe/unsubscribe/ping reply of any category; None for other frames.

    Raises UnsupportedMessage for a legacy v2 reply (``"request":{…}`` echo) and
    RemoteProtocolError for invalid JSON.
    """
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise RemoteProtocolError(f"bybit: invalid JSON: {exc}") from None
    if not isinstance(msg, dict) or "topic" in msg:
        return None
    if "request" in msg:
        raise UnsupportedMessage(f"bybit: {LEGACY_MESSAGE}")
    op = msg.get("op")
    conn_id = _opt_str(msg.get("conn_id"))
    req_id = _opt_str(msg.get("req_id"))
    if op == "pong":  # option/spread and private: {"args":["<ms>"],"op":"pong"}
        args = msg.get("args")
        ms = None
        if isinstance(args, list) and args and isinstance(args[0], str) and args[0].isdigit():
            ms = int(args[0])
        return ControlReply("pong", True, req_id, conn_id, server_ms=ms)
    if msg.get("type") == "COMMAND_RESP":  # option/spread subscribe reply
        raw = msg.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        ok = tuple(t for t in data.get("successTopics") or () if isinstance(t, str))
        bad = tuple(t for t in data.get("failTopics") or () if isinstance(t, str))
        kind = op if isinstance(op, str) else "subscribe"
        return ControlReply(
            kind,
            bool(msg.get("success")) and not bad,
            req_id,
            conn_id,
            _opt_str(msg.get("ret_msg")) or "",
            ok,
            bad,
            per_topic=True,
        )
    if "success" not in msg or not isinstance(op, str):
        return None
    ret_msg = _opt_str(msg.get("ret_msg")) or ""
    success = msg.get("success") is True
    if op == "ping" and ret_msg == "pong":  # spot/linear/inverse pong echoes op "ping"
        return ControlReply("pong", success, req_id, conn_id, ret_msg)
    refused: tuple[str, ...] = ()
    if not success and ret_msg.startswith(_NOT_FOUND):
        _, sep, topic = ret_msg.partition(",topic:")
        if sep and topic:
            refused = (topic,)
    return ControlReply(op, success, req_id, conn_id, ret_msg, refused=refused)


def _opt_str(v: Any) -> str | None:
    return v if isinstance(v, str) else None
