"""One JSON-RPC connection over a byte stream: ids, pending calls, a reader and a writer.

Transport-free: it takes any ``anyio.abc.ByteStream``, so tests drive it with in-memory
streams. It knows nothing about logins or subscriptions; :class:`convd_client.Client` does.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
from anyio.abc import ByteStream, TaskStatus

from convd_schemas import ERROR_TABLE, ErrorObject

from ._framing import DEFAULT_MAX_LINE, LineReader, LineTooLong, send_queued
from .errors import (
    ConnectionLost,
    ConvdClientError,
    ConvdError,
    InvalidParameters,
    RequestTimeout,
)

__all__ = ["Connection", "NotificationHandler"]

logger = logging.getLogger("convd_client")

#: Receives each notification's method and raw params, in the order they arrived. It is
#: called from the reader task and must not block.
NotificationHandler = Callable[[str, msgspec.Raw], None]


class _OutRequest(msgspec.Struct):
    jsonrpc: str
    method: str
    params: Any = msgspec.UNSET
    id: int | msgspec.UnsetType = msgspec.UNSET


class _Incoming(msgspec.Struct):
    """Any message from the daemon: a response (id + result/error) or a notification."""

    id: int | str | msgspec.UnsetType | None = msgspec.UNSET
    method: str | msgspec.UnsetType = msgspec.UNSET
    params: msgspec.Raw = msgspec.Raw(b"")
    result: msgspec.Raw = msgspec.Raw(b"")
    error: ErrorObject | msgspec.UnsetType | None = msgspec.UNSET


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Incoming)


class _Pending:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result = msgspec.Raw(b"")
        self.error: ConvdClientError | None = None


class Connection:
    """Calls over one stream; responses are matched to calls by id, in any order.

    :meth:`run` must be running (in a task group) for calls to complete. When the stream
    ends or breaks, every pending call fails at once with :class:`ConnectionLost`, and so does
    every later call.

    :param stream: the byte stream to the daemon; the connection closes it when done
    :param on_notification: receives every notification (method, raw params)
    :param socket_path: named in errors
    :param max_line: longest accepted line
    """

    def __init__(
        self,
        stream: ByteStream,
        *,
        on_notification: NotificationHandler | None = None,
        socket_path: Path | str = "<stream>",
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        self._stream = stream
        self._on_notification = on_notification
        self._path = socket_path
        self._max_line = max_line
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        # Unbounded, so that a call queues its request without awaiting: requests leave in
        # the order the calls were made. Each pending call holds at most one entry.
        self._outbox_send, self._outbox_receive = anyio.create_memory_object_stream[bytes](math.inf)
        # Lines queued for the writer task and not yet sent. While there are none, a call
        # writes its request itself when the stream can take it at once (see _send): one
        # task switch less per call, and still in call order.
        self._queued = 0
        self._send_nowait: Callable[[bytes], bool] | None = getattr(stream, "send_nowait", None)
        self._scope = anyio.CancelScope()
        self._reason = "the connection was closed"
        self._failure: Callable[[], ConvdClientError] | None = None
        self._closed = anyio.Event()

    @property
    def closed(self) -> bool:
        """True once the connection has ended; calls then fail at once."""
        return self._failure is not None

    @property
    def pending_calls(self) -> int:
        """How many calls are waiting for their response."""
        return len(self._pending)

    async def wait_closed(self) -> None:
        """Wait until the connection has ended."""
        await self._closed.wait()

    def close(self, error: Callable[[], ConvdClientError] | None = None) -> None:
        """End the connection; pending calls fail with ``error()`` (ConnectionLost by default)."""
        self._shutdown(error or (lambda: ConnectionLost(self._path, "the client closed it")))
        self._scope.cancel()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Read and write until the stream ends, breaks or :meth:`close` is called."""
        try:
            with self._scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._write_loop)
                    task_status.started()
                    await self._read_loop()
                    # At once, before waiting for the writer: no call may slip in between.
                    self._shutdown(self._lost())
                    tg.cancel_scope.cancel()
        finally:
            self._shutdown(self._lost())
            await anyio.aclose_forcefully(self._stream)

    async def call(
        self, method: str, params: Any = None, *, timeout: float | None = None
    ) -> msgspec.Raw:
        """Send one request and wait for its response.

        :param method: the method name
        :param params: a msgspec Struct or a dict (sent by name), or None for no params
        :param timeout: seconds to wait for the response (None: no limit)
        :return: the raw JSON of the response's ``result``
        :raises ConvdError: the daemon answered with an error
        :raises InvalidParameters: a string in ``params`` is not valid Unicode (not sent)
        :raises ConnectionLost: the connection is closed, or closed before the response came
        :raises RequestTimeout: no response within ``timeout``
        """
        if self._failure is not None:
            raise self._failure()
        request_id = next(self._ids)
        request = _OutRequest(
            jsonrpc="2.0",
            method=method,
            params=msgspec.UNSET if params is None else params,
            id=request_id,
        )
        try:
            line = _encoder.encode(request) + b"\n"
        except UnicodeEncodeError as exc:
            # A str that no UTF-8 can carry (a lone surrogate: an emoji cut in half, bytes
            # decoded with surrogateescape): refused before sending, as the daemon refuses an
            # invalid parameter.
            raise InvalidParameters(
                InvalidParameters.CODE,
                ERROR_TABLE[InvalidParameters.CODE].message,
                {"detail": f"a string parameter is not valid Unicode: {exc.reason}"},
            ) from None
        pending = _Pending()
        self._pending[request_id] = pending
        # No await before this point: concurrent calls are sent in the order they were made.
        try:
            self._send(line)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._pending.pop(request_id, None)
            self._shutdown(self._lost())
            assert self._failure is not None
            raise self._failure() from None
        try:
            with anyio.fail_after(timeout):
                await pending.done.wait()
        except TimeoutError:
            if not pending.done.is_set():
                raise RequestTimeout(method, math.inf if timeout is None else timeout) from None
        finally:
            self._pending.pop(request_id, None)
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _send(self, line: bytes) -> None:
        # Written directly only when no earlier line is still waiting for the writer task:
        # the order of the lines is the order of the calls either way.
        direct = self._send_nowait
        if self._queued == 0 and direct is not None and direct(line):
            return
        self._outbox_send.send_nowait(line)
        self._queued += 1

    def _sent(self, lines: int) -> None:
        self._queued -= lines

    def _lost(self) -> Callable[[], ConvdClientError]:
        reason = self._reason
        return lambda: ConnectionLost(self._path, reason)

    def _shutdown(self, failure: Callable[[], ConvdClientError]) -> None:
        if self._failure is not None:
            return
        self._failure = failure
        pending, self._pending = self._pending, {}
        for call in pending.values():
            call.error = failure()
            call.done.set()
        self._outbox_send.close()
        self._closed.set()

    async def _read_loop(self) -> None:
        reader = LineReader(self._stream, self._max_line)
        try:
            while True:
                line = await reader.receive_line()
                if line is None:
                    self._reason = "convd closed the connection"
                    return
                if line.strip():
                    self._dispatch(line)
        except LineTooLong as exc:
            self._reason = str(exc)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self._reason = f"the connection broke ({exc!r})"

    async def _write_loop(self) -> None:
        try:
            await send_queued(self._outbox_receive, self._stream, self._sent)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self._reason = f"the connection broke ({exc!r})"
            self._shutdown(self._lost())
            self._scope.cancel()

    def _dispatch(self, line: bytes) -> None:
        try:
            message = _decoder.decode(line)
        except msgspec.DecodeError as exc:
            logger.warning("ignoring a line from convd that is not a JSON-RPC message: %s", exc)
            return
        if not isinstance(message.method, msgspec.UnsetType):
            if isinstance(message.id, msgspec.UnsetType):
                self._notify(message.method, message.params)
            else:
                logger.warning("ignoring a request from convd: %s", message.method)
            return
        if not isinstance(message.id, int):
            # id null: convd could not read one of our requests (a bug on one side or the
            # other); the call it belonged to cannot be known and will time out.
            logger.warning("convd reported an error for an unknown request: %s", message.error)
            return
        pending = self._pending.get(message.id)
        if pending is None:
            logger.debug("dropping the response to request %s (no longer waited for)", message.id)
            return
        error = message.error
        if isinstance(error, ErrorObject):
            data = None if isinstance(error.data, msgspec.UnsetType) else error.data
            pending.error = ConvdError.from_wire(error.code, error.message, data)
        else:
            pending.result = message.result
        pending.done.set()

    def _notify(self, method: str, params: msgspec.Raw) -> None:
        if self._on_notification is None:
            return
        try:
            self._on_notification(method, params)
        except Exception:
            logger.exception("the handler of a %s notification failed", method)
