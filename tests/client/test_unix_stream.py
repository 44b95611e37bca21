"""The client's Unix-socket stream on asyncio's transport (convd_client._unix_stream), against a
real Unix socket served by anyio: bytes both ways, chunking, end of stream, closing, the peer
check's raw socket, and the bound on what it buffers unread."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import pytest
from anyio.abc import ByteStream, SocketAttribute

from convd_client._unix_stream import _HIGH_WATER, _ProtocolStream, connect_unix_stream
from convd_schemas.peer import peer_credentials, raw_unix_socket

pytestmark = pytest.mark.anyio

Handler = Callable[[ByteStream], Awaitable[None]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[[Handler], Awaitable[ByteStream]]]:
    """Serve one connection with ``handler``; return the client's stream to it."""
    path = tmp_path / "s.sock"
    async with anyio.create_task_group() as tg:
        listener = await anyio.create_unix_listener(path)

        async def connect(handler: Handler) -> ByteStream:
            async def accept_one() -> None:
                server = await listener.accept()
                async with server:
                    await handler(server)

            tg.start_soon(accept_one)
            return await connect_unix_stream(path)

        yield connect
        tg.cancel_scope.cancel()
        await listener.aclose()


async def test_it_is_asyncios_transport_and_carries_bytes_both_ways(serve: object) -> None:
    async def echo(server: ByteStream) -> None:
        while True:
            try:
                data = await server.receive()
            except anyio.EndOfStream:
                return
            await server.send(data.upper())

    stream = await serve(echo)  # type: ignore[operator]
    assert isinstance(stream, _ProtocolStream)
    async with stream:
        await stream.send(b"hello\n")
        assert await stream.receive() == b"HELLO\n"
        await stream.send(b"x" * 10)
        got = b""
        while len(got) < 10:
            got += await stream.receive(4)  # never more than asked for
            assert len(got) % 4 == 0 or len(got) == 10
        assert got == b"X" * 10


async def test_end_of_stream_and_closing(serve: object) -> None:
    async def say_bye(server: ByteStream) -> None:
        await server.send(b"bye")

    stream = await serve(say_bye)  # type: ignore[operator]
    assert await stream.receive() == b"bye"
    with pytest.raises(anyio.EndOfStream):
        await stream.receive()
    await stream.aclose()
    with pytest.raises(anyio.ClosedResourceError):
        await stream.receive()
    with pytest.raises(anyio.ClosedResourceError):
        await stream.send(b"x")


async def test_the_raw_socket_tells_who_serves_it(serve: object) -> None:
    async def idle(server: ByteStream) -> None:
        await anyio.sleep_forever()

    stream = await serve(idle)  # type: ignore[operator]
    async with stream:
        assert stream.extra(SocketAttribute.family) == socket.AF_UNIX
        raw = raw_unix_socket(stream)
        assert raw is not None
        assert peer_credentials(raw).uid == os.getuid()


async def test_unread_bytes_are_bounded(serve: object) -> None:
    size = 3 * _HIGH_WATER
    sent = anyio.Event()

    async def flood(server: ByteStream) -> None:
        await server.send(bytes(range(256)) * (size // 256))
        sent.set()
        await anyio.sleep_forever()

    stream = await serve(flood)  # type: ignore[operator]
    assert isinstance(stream, _ProtocolStream)
    async with stream:
        # Nobody reads: the transport stops reading past the bound, so the server's send
        # cannot finish (the rest waits in the kernel and the server).
        with anyio.move_on_after(1.0):
            await sent.wait()
        assert not sent.is_set()
        assert stream._protocol.reading_paused
        assert _HIGH_WATER < stream._protocol.buffered <= _HIGH_WATER + 1024 * 1024
        got = bytearray()
        while len(got) < size:
            got += await stream.receive(1 << 20)
        assert bytes(got) == bytes(range(256)) * (size // 256)
        await sent.wait()
