"""JSON-RPC 2.0 over one line: parsing, envelope checks, batches, and the call itself.

The only module that imports jsonrpcserver. jsonrpcserver 5.0.9 finds the method, checks the
call against its signature, calls it, and turns its Result into the response with the
request's id. Around it, this module:

* decodes the line once, with msgspec, into an envelope whose ``params`` stay raw bytes: each
  method decodes them straight into its own params type (no dict in between, no second
  check of the envelope);
* calls jsonrpcserver's per-request ``dispatch_request`` itself rather than its entry point,
  which wraps even a single request in ``asyncio.gather`` (a task per request);
* answers what the specification asks and jsonrpcserver does not: one error per bad entry of
  a batch, entries in order, float ids, and a parse error (not a dropped connection) for
  invalid UTF-8 or nesting deeper than the decoder allows;
* lets consecutive writes of one batch run together, so they share one group commit.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, Literal, cast

import anyio
import msgspec

if TYPE_CHECKING:
    from jsonrpcserver.result import Result
else:
    Result = Any  # jsonrpcserver's Either[ErrorResult, SuccessResult], imported when needed

from convd_schemas import ERROR_TABLE, JsonRpcErrCode
from convd_schemas.limits import MAX_BATCH_SIZE

__all__ = [
    "Dispatcher",
    "Error",
    "Handler",
    "InvalidParams",
    "Result",
    "Success",
    "error_line",
    "load",
]

#: A method as jsonrpcserver calls it: the connection's context, then the raw params.
Handler = Callable[[Any, msgspec.Raw], Awaitable["Result"]]


# jsonrpcserver's package imports jsonschema (and with it attrs and referencing): about 190 ms
# of a ~300 ms start, for a validator convd never uses. It is imported when first needed, and
# the daemon warms it up in a worker thread right after it starts accepting (``load``), so the
# socket accepts without waiting for it.
@functools.cache
def _jsonrpcserver() -> ModuleType:
    import jsonrpcserver
    import jsonrpcserver.async_dispatcher
    import jsonrpcserver.dispatcher
    import jsonrpcserver.request
    import jsonrpcserver.response
    import jsonrpcserver.sentinels

    return jsonrpcserver


def load() -> None:
    """Import jsonrpcserver now (safe from a worker thread)."""
    _jsonrpcserver()


def Success(*args: Any, **kwargs: Any) -> Result:
    """jsonrpcserver's success Result."""
    return cast("Result", _jsonrpcserver().Success(*args, **kwargs))


def Error(*args: Any, **kwargs: Any) -> Result:
    """jsonrpcserver's error Result (code, message, data)."""
    return cast("Result", _jsonrpcserver().Error(*args, **kwargs))


def InvalidParams(*args: Any, **kwargs: Any) -> Result:
    """jsonrpcserver's -32602 Result."""
    return cast("Result", _jsonrpcserver().InvalidParams(*args, **kwargs))


logger = logging.getLogger(__name__)

# msgspec's decoder recurses once per level of nesting, up to Python's recursion limit
# (about 900 levels here): a deeper text is answered with -32700, the connection kept.
_TOO_DEEP: Final = "JSON is nested too deeply (the limit is about 900 levels)"

_encoder = msgspec.json.Encoder()
_NO_PARAMS: Final = msgspec.Raw(b"{}")
# jsonrpcserver only checks that binding succeeds; it never reads the bound arguments.
_BOUND: Final = inspect.BoundArguments(inspect.Signature(), {})


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    jsonrpc: Literal["2.0"]
    method: str
    params: msgspec.Raw = _NO_PARAMS
    id: int | float | str | msgspec.UnsetType | None = msgspec.UNSET


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_batch_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_any_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder()


def _error(code: JsonRpcErrCode, data: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "error": {"code": int(code), "message": ERROR_TABLE[code].message, "data": data},
        "id": None,
    }


def error_line(code: JsonRpcErrCode, data: str) -> bytes:
    """A complete error response line for a request whose id cannot be known."""
    return _encoder.encode(_error(code, data)) + b"\n"


def _parse_failure(text: bytes) -> str | None:
    """Why ``text`` is not a JSON text, or None if it is one."""
    try:
        _any_decoder.decode(text)
    except UnicodeDecodeError as exc:
        return f"JSON is malformed: invalid UTF-8 ({exc.reason} at byte {exc.start})"
    except RecursionError:
        return _TOO_DEEP
    except msgspec.DecodeError as exc:
        return str(exc)
    return None


def _decode_envelope(raw: bytes) -> _Envelope | dict[str, Any]:
    """The envelope, or the error response that answers it."""
    try:
        return _envelope_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        # Well-formed JSON that is not a request object -- unless the text is malformed
        # further on, past where the typed decoder stopped: that is a parse error.
        failure = _parse_failure(raw)
        if failure is not None:
            return _error(JsonRpcErrCode.PARSE_ERROR, failure)
        # Answered even without an id: an invalid object cannot be known to be a
        # notification (the specification's own example).
        return _error(JsonRpcErrCode.INVALID_REQUEST, str(exc))
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return _error(JsonRpcErrCode.PARSE_ERROR, _parse_failure(raw) or "JSON is malformed")


class _HandlerSignature(inspect.Signature):
    """``(context, params)``, bound without the general machinery for the dispatcher's call."""

    __slots__ = ()

    def bind(self, /, *args: Any, **kwargs: Any) -> inspect.BoundArguments:
        if len(args) == 2 and not kwargs:
            return _BOUND
        return super().bind(*args, **kwargs)


def _guard(name: str, handler: Handler) -> Handler:
    """jsonrpcserver puts an escaping exception's text into ``error.data``: turn it into a
    bare -32603 with a correlation id instead, and log the details under that id. (The
    methods catch their own; this is the boundary's guarantee for any handler.)"""

    async def guarded(context: Any, params: msgspec.Raw) -> Result:
        try:
            return await handler(context, params)
        except Exception:
            correlation_id = os.urandom(8).hex()
            logger.exception(
                "internal error %s in %s (connection %s)",
                correlation_id,
                name,
                getattr(context, "origin", "?"),
            )
            return Error(
                int(JsonRpcErrCode.INTERNAL_ERROR),
                ERROR_TABLE[JsonRpcErrCode.INTERNAL_ERROR].message,
                {"correlation_id": correlation_id},
            )

    # jsonrpcserver checks every call with ``inspect.signature(handler).bind(...)``: give it
    # the signature up front, and one whose bind() recognises the only call the dispatcher
    # makes (context and raw params) without a general binding (about 5 us a request).
    guarded.__signature__ = _HandlerSignature.from_callable(guarded)  # type: ignore[attr-defined]
    return guarded


class Dispatcher:
    """Turns one request line into its response line (or None when nothing is owed).

    ``methods`` maps each name to its handler; ``writes`` names the methods that write, whose
    consecutive entries in a batch are dispatched together.
    """

    def __init__(self, methods: Mapping[str, Handler], writes: frozenset[str] = frozenset()):
        self._methods = {name: _guard(name, handler) for name, handler in methods.items()}
        self._writes = writes

    async def dispatch(self, line: bytes, context: Any) -> bytes | None:
        # JSON text is UTF-8 throughout; msgspec checks it only where it decodes a string,
        # not in what it skips (raw params, batch entries). ASCII (what json.dumps sends by
        # default) is UTF-8: checked without a copy; anything else is decoded once, in C.
        if not line.isascii():
            try:
                line.decode()
            except UnicodeDecodeError as exc:
                return error_line(
                    JsonRpcErrCode.PARSE_ERROR,
                    f"JSON is malformed: invalid UTF-8 ({exc.reason} at byte {exc.start})",
                )
        if line.lstrip()[:1] == b"[":
            return await self._dispatch_batch(line, context)
        response = await self._dispatch_one(line, context)
        return None if response is None else _encoder.encode(response) + b"\n"

    async def _dispatch_batch(self, line: bytes, context: Any) -> bytes | None:
        try:
            items = _batch_decoder.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return error_line(
                JsonRpcErrCode.PARSE_ERROR, _parse_failure(line) or "JSON is malformed"
            )
        if not items:
            return error_line(JsonRpcErrCode.INVALID_REQUEST, "empty batch")
        if len(items) > MAX_BATCH_SIZE:
            return error_line(
                JsonRpcErrCode.INVALID_REQUEST,
                f"batch of {len(items)} requests exceeds the limit of {MAX_BATCH_SIZE}",
            )
        # Entries take effect in order: a bad entry gets its own error, and an entry sees the
        # writes before it. Consecutive writes are started together (still in order, as the
        # group commit takes them in arrival order) so that they commit in one transaction.
        responses: list[dict[str, Any] | None] = [None] * len(items)
        decoded = [_decode_envelope(bytes(item)) for item in items]
        index = 0
        while index < len(decoded):
            end = index + 1
            while end < len(decoded) and self._is_write(decoded[index]):
                if not self._is_write(decoded[end]):
                    break
                end += 1
            if end - index == 1:
                responses[index] = await self._respond(decoded[index], context)
            else:
                async with anyio.create_task_group() as tg:
                    for at in range(index, end):
                        tg.start_soon(self._respond_into, decoded[at], context, responses, at)
            index = end
        found = [response for response in responses if response is not None]
        return _encoder.encode(found) + b"\n" if found else None

    def _is_write(self, envelope: _Envelope | dict[str, Any]) -> bool:
        return isinstance(envelope, _Envelope) and envelope.method in self._writes

    async def _respond_into(
        self,
        envelope: _Envelope | dict[str, Any],
        context: Any,
        responses: list[dict[str, Any] | None],
        position: int,
    ) -> None:
        responses[position] = await self._respond(envelope, context)

    async def _dispatch_one(self, raw: bytes, context: Any) -> dict[str, Any] | None:
        return await self._respond(_decode_envelope(raw), context)

    async def _respond(
        self, envelope: _Envelope | dict[str, Any], context: Any
    ) -> dict[str, Any] | None:
        if isinstance(envelope, dict):
            return envelope
        # (A raw value starts at its first byte, never at whitespace: no copy needed.)
        first = memoryview(envelope.params)[:1].tobytes()
        if first not in (b"{", b"["):
            return _error(JsonRpcErrCode.INVALID_REQUEST, "params must be an object or an array")
        server = _jsonrpcserver()
        noid = server.sentinels.NOID
        request_id = noid if envelope.id is msgspec.UNSET else envelope.id
        call = server.request.Request(envelope.method, [envelope.params], request_id)
        request, result = await server.async_dispatcher.dispatch_request(
            self._methods, context, call
        )
        if request.id is noid:
            return None  # a notification: executed, never answered
        response = server.response.to_serializable_one(
            server.dispatcher.to_response(request, result)
        )
        return cast(dict[str, Any], response)
