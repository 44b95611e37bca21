"""One client connection: read a line, dispatch it, send the reply.

Requests are handled one at a time in the order received, so a client that writes and then
reads sees its write. A reply is sent as soon as it is ready and waits for room when the
client is not reading (slowing only this client's requests); a notification never waits,
and a client whose unread output passes ``max_outbound`` bytes after the last reply it was
sent is disconnected instead of holding anyone else up. Whatever ends the connection, but for
such a cut, every request that was executed has its reply sent before the channel closes.
"""

from __future__ import annotations

import logging

import anyio

from convd_schemas import JsonRpcErrCode

from .channel import Channel, LineTooLong
from .dispatcher import Dispatcher, error_line
from .session import ChangeEncoder, Session

__all__ = ["Connection"]

logger = logging.getLogger(__name__)

#: A connection whose unread output (replies and events the kernel has not taken) is past
#: this when an event is due is cut; it resumes from its last seq when it reconnects.
MAX_OUTBOUND_BYTES = 1024 * 1024


class Connection:
    def __init__(
        self,
        channel: Channel,
        dispatcher: Dispatcher,
        origin: str,
        *,
        outbox_size: int = 1024,
        max_outbound: int = MAX_OUTBOUND_BYTES,
        encoder: ChangeEncoder | None = None,
    ) -> None:
        self._channel = channel
        self._dispatcher = dispatcher
        self._max_outbound = max_outbound
        self.session = Session(
            origin, self._push, self._send, self._cut, outbox_size, encoder or ChangeEncoder()
        )
        self._scope = anyio.CancelScope()
        self._stopping = False
        #: Bytes handed to the channel in all, and where the last reply (or sync page) ends
        #: in that count: what of it the channel still holds is not counted against
        #: max_outbound.
        self._handed = 0
        self._reply_end = 0
        self.cut_reason: str | None = None

    @property
    def origin(self) -> str:
        return self.session.origin

    def abort(self) -> None:
        """Drop the connection now, whatever it still has to send (a shutdown's grace is
        over: the replies had their time)."""
        self._channel.abort()

    def stop(self) -> None:
        """Finish the request in progress (if any), flush the replies, then close."""
        self._stopping = True
        # Only the wait for a new line is interrupted: a request that has started always
        # runs to its reply.
        self._channel.interrupt()

    async def run(self) -> None:
        try:
            with self._scope:
                await self._read_loop()
        finally:
            if self.cut_reason is None:
                self._channel.close()  # sends what is queued first
            else:
                self._channel.abort()

    def _push(self, data: bytes) -> None:
        if self.cut_reason is not None:
            return
        # Judged on what is already queued, so one large event still reaches a client that
        # keeps up; and only on what is queued after the last reply, so that an event does
        # not cut a client that is reading a large reply (a page of conversations can pass
        # the bound alone). The channel sends in order, so that is the lesser of what it holds
        # and what it was handed since the reply.
        bound = self._max_outbound
        if self._channel.queued_bytes() > bound and self._handed - self._reply_end > bound:
            self._cut("outbound queue full: the client is not reading")
            return
        self._channel.send(data)  # (not through _hand: this runs once per event and subscriber)
        self._handed += len(data)

    async def _send(self, data: bytes) -> None:
        self._hand(data)
        self._reply_end = self._handed
        await self._channel.drain()

    def _hand(self, data: bytes) -> None:
        self._channel.send(data)
        self._handed += len(data)

    def _cut(self, reason: str) -> None:
        if self.cut_reason is None:
            self.cut_reason = reason
            logger.warning("disconnecting %s: %s", self.origin, reason)
            self._scope.cancel()

    async def _read_loop(self) -> None:
        channel = self._channel
        while not self._stopping:
            try:
                line = await channel.receive_line()
            except LineTooLong as exc:
                self._hand(error_line(JsonRpcErrCode.INVALID_REQUEST, str(exc)))
                logger.warning("closing %s: %s", self.origin, exc)
                return
            if self._stopping or line is None:
                return
            if not line.strip():
                continue
            reply = await self._dispatcher.dispatch(line, self.session)
            if reply is not None:
                await self._send(reply)
            while self.session.after_reply:
                await self.session.after_reply.pop(0)()
