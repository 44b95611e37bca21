"""A Unix-socket byte stream on asyncio's own transport, for the client's hot path.

anyio's Unix socket stream waits for every read with ``loop.add_reader`` and drops the
reader again afterwards: on asyncio's selector loop that is two ``epoll_ctl`` calls and a
``KeyError`` whose message formats the socket's repr, on each read wait. A profile of
``Client.conv_set_draft`` put that at ~30 µs of a ~180 µs client overhead per call. A
protocol-based transport keeps the socket registered and hands each chunk to the waiting
reader with one future. Used only when the running backend is asyncio; elsewhere (trio)
``connect_unix_stream`` is ``anyio.connect_unix``. It is an ``anyio.abc.ByteStream`` like
any other, so the rest of the client does not know which one it holds.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

import anyio
import anyio.lowlevel
from anyio.abc import ByteStream, SocketAttribute

__all__ = ["connect_unix_stream"]

#: Received bytes held unread before the transport stops reading (the daemon then waits):
#: the bound on what one connection can buffer in the client.
_HIGH_WATER: Final = 4 * 1024 * 1024
_LOW_WATER: Final = _HIGH_WATER // 4
#: How long closing waits for queued bytes to go out to a peer that is not reading.
_CLOSE_TIMEOUT: Final = 1.0


async def connect_unix_stream(path: str | os.PathLike[str]) -> ByteStream:
    """Connect to the Unix socket ``path``: asyncio's transport when running on asyncio."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # another backend (trio): no asyncio loop runs in this thread
        return await anyio.connect_unix(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, os.fspath(path))
        transport, protocol = await loop.create_unix_connection(_StreamProtocol, sock=sock)
    except BaseException:
        sock.close()
        raise
    # uvloop calls connection_made a loop turn later: the transport is taken from here.
    protocol.transport = transport
    return _ProtocolStream(protocol, sock)


class _StreamProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.eof = False
        self.lost = False
        self.error: BaseException | None = None
        self.reading_paused = False
        self.writing_paused = False
        self.read_waiter: asyncio.Future[None] | None = None
        self.drain_waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > _HIGH_WATER and not self.reading_paused and self.transport:
            self.reading_paused = True
            self.transport.pause_reading()
        _wake(self.read_waiter)

    def eof_received(self) -> bool:
        self.eof = True
        _wake(self.read_waiter)
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        _wake(self.read_waiter)
        self.writing_paused = False
        _wake(self.drain_waiter)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        _wake(self.drain_waiter)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class _ProtocolStream(ByteStream):
    def __init__(self, protocol: _StreamProtocol, sock: socket.socket) -> None:
        assert protocol.transport is not None
        self._protocol = protocol
        self._transport = protocol.transport
        self._socket = sock
        self._closed = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        protocol = self._protocol
        while not protocol.chunks:
            if self._closed:
                raise anyio.ClosedResourceError
            if protocol.error is not None:
                raise anyio.BrokenResourceError from protocol.error
            if protocol.eof or protocol.lost:
                raise anyio.EndOfStream
            waiter = protocol.read_waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                protocol.read_waiter = None
        data = protocol.chunks.popleft()
        if len(data) > max_bytes:
            protocol.chunks.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        protocol.buffered -= len(data)
        if protocol.reading_paused and protocol.buffered <= _LOW_WATER:
            protocol.reading_paused = False
            if not protocol.lost:
                self._transport.resume_reading()
        return data

    async def send(self, item: bytes) -> None:
        protocol = self._protocol
        if self._closed:
            raise anyio.ClosedResourceError
        if protocol.lost or self._transport.is_closing():
            raise anyio.BrokenResourceError from protocol.error
        self._transport.write(item)
        while protocol.writing_paused and not protocol.lost:
            waiter = protocol.drain_waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                protocol.drain_waiter = None
        if protocol.error is not None:
            raise anyio.BrokenResourceError from protocol.error

    def send_nowait(self, item: bytes) -> bool:
        """Write ``item`` at once if the transport takes it without waiting; False if it
        would have to wait (or is broken: ``send`` then says how)."""
        if self._closed or self._protocol.lost or self._protocol.writing_paused:
            return False
        if self._transport.is_closing():
            return False
        self._transport.write(item)
        return True

    async def send_eof(self) -> None:
        if not self._transport.is_closing():
            self._transport.write_eof()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        transport = self._transport
        # What is still queued goes out before the socket closes (as a socket's close lets
        # the kernel's buffer go), but a peer that stopped reading cannot hold it open.
        transport.close()
        _wake(self._protocol.read_waiter)
        if transport.get_write_buffer_size():
            with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                while not self._protocol.lost:
                    await anyio.sleep(0.01)
            transport.abort()
        await anyio.lowlevel.checkpoint()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        sock = self._socket
        return {
            SocketAttribute.family: lambda: sock.family,
            SocketAttribute.local_address: lambda: sock.getsockname(),
            SocketAttribute.remote_address: lambda: sock.getpeername(),
            SocketAttribute.raw_socket: lambda: sock,
        }
