"""One client connection: read a line, dispatch it, queue the reply; a writer drains the queue.

Requests are handled one at a time in the order received, so a client that writes and then
reads sees its write. Replies and notifications share one bounded outbound queue: a reply
waits for room (slowing only this client's reader), a notification never waits, and a
client whose queue is full is disconnected instead of holding anyone else up.
"""

from __future__ import annotations

import logging

import anyio
from anyio.abc import ByteStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from convd_schemas import JsonRpcErrCode
from convd_schemas.framing import LineReader, LineTooLong, send_queued

from .dispatcher import Dispatcher, error_line
from .session import Session

__all__ = ["Connection"]

logger = logging.getLogger(__name__)


class Connection:
    def __init__(
        self,
        stream: ByteStream,
        dispatcher: Dispatcher,
        origin: str,
        *,
        max_line: int,
        outbox_size: int,
    ) -> None:
        self._stream = stream
        self._dispatcher = dispatcher
        self._max_line = max_line
        send, receive = anyio.create_memory_object_stream[bytes](outbox_size)
        self._outbox: MemoryObjectSendStream[bytes] = send
        self._outbox_receive: MemoryObjectReceiveStream[bytes] = receive
        self.session = Session(origin, self._push, self._outbox.send, self._cut, outbox_size)
        self._scope = anyio.CancelScope()
        self._read_scope: anyio.CancelScope | None = None
        self._stopping = False
        self.cut_reason: str | None = None

    @property
    def origin(self) -> str:
        return self.session.origin

    def stop(self) -> None:
        """Finish the request in progress (if any), flush the replies, then close."""
        self._stopping = True
        if self._read_scope is not None:
            self._read_scope.cancel()

    async def run(self) -> None:
        with self._scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._write_loop)
                try:
                    await self._read_loop()
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass  # the peer went away mid-reply
                finally:
                    # The writer drains what is queued, then ends.
                    self._outbox.close()

    def _push(self, data: bytes) -> None:
        try:
            self._outbox.send_nowait(data)
        except anyio.WouldBlock:
            self._cut("outbound queue full: the client is not reading")
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    def _cut(self, reason: str) -> None:
        if self.cut_reason is None:
            self.cut_reason = reason
            logger.warning("disconnecting %s: %s", self.origin, reason)
            self._scope.cancel()

    async def _read_loop(self) -> None:
        reader = LineReader(self._stream, self._max_line)
        while not self._stopping:
            # Only the wait for a new line may be interrupted by stop(): a request that has
            # started always runs to its reply.
            with anyio.CancelScope() as self._read_scope:
                try:
                    line = await reader.receive_line()
                except LineTooLong as exc:
                    await self._outbox.send(error_line(JsonRpcErrCode.INVALID_REQUEST, str(exc)))
                    logger.warning("closing %s: %s", self.origin, exc)
                    return
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return
            self._read_scope = None
            if self._stopping:
                return
            if line is None:
                return
            if not line.strip():
                continue
            reply = await self._dispatcher.dispatch(line, self.session)
            if reply is not None:
                await self._outbox.send(reply)
            while self.session.after_reply:
                await self.session.after_reply.pop(0)()

    async def _write_loop(self) -> None:
        try:
            await send_queued(self._outbox_receive, self._stream)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # The peer went away: stop reading for it too.
            self._scope.cancel()
