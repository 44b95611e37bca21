"""Connections as channels of lines: the Unix-socket one on asyncio's protocols, and one over
any anyio byte stream (in-memory streams in tests).

Why asyncio protocols under an anyio daemon: a reply or an event is a ``transport.write``
that goes to the socket at once when its buffer is empty, with no task to wake and no await,
and received bytes are split into lines in the same callback that read them. Measured on this
project's 2-core machine (see the speed issue and bench/), that path costs a fraction of anyio
streams' per-message work (one writer task per connection woken per message, a
``wait_readable`` per read): an anyio-stream echo server peaked at ~6.2k messages/s with 8
clients where an asyncio protocol echo reached ~22k/s, and fanning an event out to a
subscriber went from ~28 us of daemon CPU each to a few. Everything above this module still
sees only ``Channel`` (rpc/channel.py); the daemon's tasks still live in anyio task groups.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, cast

import anyio
from anyio.abc import ByteStream, SocketAttribute, SocketListener, TaskGroup

from convd_schemas.framing import LineReader, LineSplitter, LineTooLong
from convd_schemas.peer import PeerCredentials, peer_credentials

__all__ = [
    "DEFAULT_HIGH_WATER",
    "SocketChannel",
    "StreamChannel",
    "UnixChannelListener",
    "open_stream_channel",
]

logger = logging.getLogger(__name__)

#: Above this many queued outbound bytes, ``drain`` waits (and the caller decides whether
#: that is backpressure or a client to cut).
DEFAULT_HIGH_WATER = 1024 * 1024
#: Complete lines read ahead of the handler before the socket stops being read: a client
#: that pipelines cannot make the daemon buffer without bound. Counted in bytes too (a line
#: may be up to max_line): 64 lines of a MiB each would hold 64 MiB per connection.
_READ_AHEAD_LINES = 64
#: How long replies queued for a connection that ended may take to reach a peer that is slow
#: to read them, before the connection is dropped.
_FLUSH_TIMEOUT = 5.0


class SocketChannel(asyncio.Protocol):
    """A Channel on an asyncio transport: lines in from ``data_received``, bytes out with
    ``transport.write``."""

    def __init__(self, max_line: int, high_water: int = DEFAULT_HIGH_WATER) -> None:
        self.peer = ""
        self.credentials: PeerCredentials | None = None
        self._max_line = max_line
        self._high_water = high_water
        self._transport: asyncio.Transport | None = None
        self._splitter = LineSplitter(max_line)
        #: Bytes of the complete lines read ahead (the partial line is bounded by max_line).
        self._line_bytes = 0
        self._eof = False
        self._interrupted = False
        self._lost = False
        self._reading_paused = False
        self._writing_paused = False
        self._line_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._closed = asyncio.Event()

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's and uvloop's transports both have the Transport API; only asyncio's are
        # instances of asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.set_write_buffer_limits(high=self._high_water)

    def data_received(self, data: bytes) -> None:
        splitter = self._splitter
        lines = splitter.lines
        before = len(lines)
        splitter.feed(data)
        for index in range(before - len(lines), 0):  # the lines this data completed
            self._line_bytes += len(lines[index])
        if (
            splitter.too_long
            or len(lines) >= _READ_AHEAD_LINES
            or self._line_bytes >= self._max_line
        ):
            self._pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        return True  # keep the transport open: the replies still have to go out

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._closed.set()
        self._wake_reader()
        self._writing_paused = False
        self._wake_drainer()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_drainer()

    # -- Channel ---------------------------------------------------------------------------

    async def receive_line(self) -> bytes | None:
        splitter = self._splitter
        while True:
            if self._interrupted:
                return None
            if splitter.lines:
                line = splitter.lines.popleft()
                self._line_bytes -= len(line)
                if (
                    self._reading_paused
                    and not splitter.too_long
                    and len(splitter.lines) < 8
                    and self._line_bytes < self._max_line // 2
                ):
                    self._resume_reading()
                return line
            if splitter.too_long:
                raise LineTooLong(self._max_line)
            if self._eof or self._lost:
                return splitter.finish()
            waiter = asyncio.get_running_loop().create_future()
            self._line_waiter = waiter
            try:
                await waiter
            finally:
                self._line_waiter = None

    def interrupt(self) -> None:
        self._interrupted = True
        self._wake_reader()

    def send(self, data: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def queued_bytes(self) -> int:
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    async def drain(self) -> None:
        while self._writing_paused and not self._lost:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiter = waiter
            try:
                await waiter
            finally:
                self._drain_waiter = None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def finish(self, timeout: float) -> None:
        """Close, letting the queued bytes go out for at most ``timeout`` seconds (a peer that
        stopped reading would otherwise hold the connection open), then drop what is left."""
        self.close()
        if self._transport is None:
            return
        with anyio.move_on_after(timeout):
            await self._closed.wait()
        self.abort()

    # -- helpers ---------------------------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None and not self._lost:
            self._reading_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self._transport is not None and not self._lost:
            self._reading_paused = False
            self._transport.resume_reading()

    def _wake_reader(self) -> None:
        waiter = self._line_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_drainer(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class UnixChannelListener:
    """Serves a listening Unix socket (bound by convd or passed by systemd) as channels.

    Only the daemon's owner gets in: every peer's uid is read (``SO_PEERCRED`` /
    ``getpeereid``) before a byte is read from it; anyone else is logged on one line with
    their pid and uid and disconnected. Root is not let in either (see peercred.py).
    """

    def __init__(
        self,
        listener: SocketListener,
        *,
        max_line: int,
        uid: int,
        high_water: int = DEFAULT_HIGH_WATER,
    ) -> None:
        self._listener = listener
        self._max_line = max_line
        self._uid = uid
        self._high_water = high_water
        self._server: asyncio.AbstractServer | None = None

    async def serve(self, handler: Callable[[Any], Awaitable[None]], task_group: TaskGroup) -> None:
        sock = self._listener.extra(SocketAttribute.raw_socket)

        def accepted() -> SocketChannel:
            channel = SocketChannel(self._max_line, self._high_water)
            original = channel.connection_made

            def connection_made(transport: asyncio.BaseTransport) -> None:
                original(transport)
                if self._admit(channel, transport):
                    task_group.start_soon(_run_handler, handler, channel)
                else:
                    channel.abort()

            channel.connection_made = connection_made  # type: ignore[method-assign]
            return channel

        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(accepted, sock=sock, start_serving=True)
        try:
            await anyio.sleep_forever()
        finally:
            self._server.close()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._listener.aclose()

    def _admit(self, channel: SocketChannel, transport: asyncio.BaseTransport) -> bool:
        sock = transport.get_extra_info("socket")
        try:
            peer = peer_credentials(sock)
        except (OSError, AttributeError) as exc:
            logger.warning("refused connection: cannot read the peer's credentials: %s", exc)
            return False
        if peer.uid != self._uid:
            logger.warning(
                "refused connection from %s: only uid %d may use this daemon", peer, self._uid
            )
            return False
        channel.credentials = peer
        channel.peer = str(peer)
        return True


async def _run_handler(handler: Callable[[Any], Awaitable[None]], channel: SocketChannel) -> None:
    try:
        await handler(channel)
    finally:
        # The handler has closed the channel (its replies still going out) or cut it; either
        # way it is gone within _FLUSH_TIMEOUT.
        with anyio.CancelScope(shield=True):
            await channel.finish(_FLUSH_TIMEOUT)


class StreamChannel:
    """A Channel over any anyio byte stream; a writer task (see ``open_stream_channel``)
    sends what is queued."""

    def __init__(
        self, stream: ByteStream, max_line: int, high_water: int = DEFAULT_HIGH_WATER
    ) -> None:
        self.peer = ""
        self._stream = stream
        self._reader = LineReader(stream, max_line)
        self._high_water = high_water
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._has_data = anyio.Event()
        self._below_high_water = anyio.Event()
        self._below_high_water.set()
        self._closing = False
        self._closed = False
        self._interrupted = False
        self._read_scope = anyio.CancelScope()
        self._writer_scope = anyio.CancelScope()

    async def receive_line(self) -> bytes | None:
        if self._closed or self._interrupted:
            return None
        with anyio.CancelScope() as self._read_scope:
            try:
                return await self._reader.receive_line()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return None
        return None  # interrupted

    def interrupt(self) -> None:
        self._interrupted = True
        self._read_scope.cancel()

    def send(self, data: bytes) -> None:
        if self._closing or self._closed:
            return
        self._queue.append(data)
        self._queued += len(data)
        if self._queued > self._high_water:
            self._below_high_water = anyio.Event()
        self._has_data.set()

    def queued_bytes(self) -> int:
        return self._queued

    async def drain(self) -> None:
        await self._below_high_water.wait()

    def close(self) -> None:
        self._closing = True
        self._has_data.set()

    def abort(self) -> None:
        self._closed = True
        self._queue.clear()
        self._queued = 0
        self._below_high_water.set()
        self._writer_scope.cancel()  # even a send the peer never takes

    async def write_queued(self) -> None:
        """The writer: sends queued bytes until closed (flushing first) or aborted."""
        try:
            with self._writer_scope:
                await self._write_until_closed()
        finally:
            self._closed = True
            self._below_high_water.set()
            with anyio.CancelScope(shield=True), suppress(Exception):
                await self._stream.aclose()

    async def _write_until_closed(self) -> None:
        try:
            while not self._closed:
                if not self._queue:
                    if self._closing:
                        break
                    self._has_data = anyio.Event()
                    await self._has_data.wait()
                    continue
                data = b"".join(self._queue)
                self._queue.clear()
                self._queued = 0
                self._below_high_water.set()
                await self._stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass


@asynccontextmanager
async def open_stream_channel(
    stream: ByteStream, *, max_line: int, high_water: int = DEFAULT_HIGH_WATER
) -> AsyncIterator[StreamChannel]:
    """A StreamChannel with its writer running; on exit, queued bytes are sent and the
    stream is closed (unless the channel was aborted)."""
    channel = StreamChannel(stream, max_line, high_water)
    async with anyio.create_task_group() as tg:
        tg.start_soon(channel.write_queued)
        try:
            yield channel
        finally:
            channel.close()
