"""JSON-RPC 2.0 over one line: parsing, envelope checks, batches, and the call itself.

The only module that imports jsonrpcserver. jsonrpcserver 5.0.9 finds the method, binds the
params, calls it and shapes the response; this module works around the parts of it that the
specification forbids (whole-batch rejection, concurrent batch entries, exception text
leaking into ``error.data``) and encodes with msgspec.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from jsonrpcserver import Error, InvalidParams, Success
from jsonrpcserver import async_dispatch_to_serializable as _dispatch
from jsonrpcserver.result import Result

from convd_schemas import JsonRpcErrCode, Request
from convd_schemas.limits import MAX_BATCH_SIZE

__all__ = ["Dispatcher", "Error", "Handler", "InvalidParams", "Result", "Success", "error_line"]

#: A method as jsonrpcserver calls it: the connection's context first, then params by name.
Handler = Callable[..., Awaitable[Result]]

logger = logging.getLogger(__name__)

_encoder = msgspec.json.Encoder()
_batch_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_MESSAGES = {
    JsonRpcErrCode.PARSE_ERROR: "Parse error",
    JsonRpcErrCode.INVALID_REQUEST: "Invalid Request",
}


def _error(code: JsonRpcErrCode, data: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "error": {"code": int(code), "message": _MESSAGES[code], "data": data},
        "id": None,
    }


def error_line(code: JsonRpcErrCode, data: str) -> bytes:
    """A complete error response line for a request whose id cannot be known."""
    return _encoder.encode(_error(code, data)) + b"\n"


def _pass_through(value: Any) -> Any:
    return value


def _guard(name: str, handler: Handler) -> Handler:
    """jsonrpcserver puts an escaping exception's text into ``error.data``: turn it into a
    bare -32603 with a correlation id instead, and log the details under that id."""

    @functools.wraps(handler)  # keeps the signature jsonrpcserver checks params against
    async def guarded(*args: Any, **kwargs: Any) -> Result:
        try:
            return await handler(*args, **kwargs)
        except Exception:
            correlation_id = uuid.uuid4().hex[:16]
            session = args[0] if args else None
            logger.exception(
                "internal error %s in %s (connection %s)",
                correlation_id,
                name,
                getattr(session, "origin", "?"),
            )
            return Error(
                int(JsonRpcErrCode.INTERNAL_ERROR),
                "Internal error",
                {"correlation_id": correlation_id},
            )

    return guarded


class Dispatcher:
    """Turns one request line into its response line (or None when nothing is owed)."""

    def __init__(self, methods: Mapping[str, Handler]) -> None:
        self._methods = {name: _guard(name, handler) for name, handler in methods.items()}

    async def dispatch(self, line: bytes, context: Any) -> bytes | None:
        if line.lstrip()[:1] == b"[":
            try:
                items = _batch_decoder.decode(line)
            except msgspec.DecodeError as exc:
                return error_line(JsonRpcErrCode.PARSE_ERROR, str(exc))
            if not items:
                return error_line(JsonRpcErrCode.INVALID_REQUEST, "empty batch")
            if len(items) > MAX_BATCH_SIZE:
                return error_line(
                    JsonRpcErrCode.INVALID_REQUEST,
                    f"batch of {len(items)} requests exceeds the limit of {MAX_BATCH_SIZE}",
                )
            # One entry at a time, in order: a bad entry gets its own error, and a batch that
            # writes then reads sees its own write.
            responses = []
            for item in items:
                response = await self._dispatch_one(bytes(item), context)
                if response is not None:
                    responses.append(response)
            return _encoder.encode(responses) + b"\n" if responses else None
        response = await self._dispatch_one(line, context)
        return None if response is None else _encoder.encode(response) + b"\n"

    async def _dispatch_one(self, raw: bytes, context: Any) -> dict[str, Any] | None:
        try:
            request = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            return _error(JsonRpcErrCode.PARSE_ERROR, str(exc))
        try:
            msgspec.convert(request, Request)
        except msgspec.ValidationError as exc:
            # Answered even without an id: an invalid object cannot be known to be a
            # notification (the specification's own example).
            return _error(JsonRpcErrCode.INVALID_REQUEST, str(exc))
        # Parsed and checked above (with messages that say what is wrong); jsonrpcserver's
        # own parse and schema steps get the decoded object and pass it through.
        response = await _dispatch(
            request,
            methods=self._methods,
            context=context,
            deserializer=_pass_through,
            validator=_pass_through,
        )
        assert not isinstance(response, list)  # one request object in, one response out
        return response
