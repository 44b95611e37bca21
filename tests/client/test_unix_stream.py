"""The client's Unix-socket stream on asyncio's transport (convd_client._unix_stream), against a
real Unix socket served by anyio: bytes both ways, chunking, end of stream, closing, the peer
check's raw socket, the bound on what it buffers unread, and the order of requests written
directly or queued."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
import pytest
from anyio.abc import ByteStream, SocketAttribute

from convd_client._connection import Connection
from convd_client._framing import DEFAULT_MAX_LINE, LineReader
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


async def test_calls_written_directly_or_queued_reach_the_daemon_in_call_order(
    serve: object,
) -> None:
    """A call writes its request itself while nothing waits for the writer task; once the
    socket pushes back, later calls queue behind. Either way the daemon reads them in the
    order they were made."""
    arrived: list[int] = []
    count = 40

    async def slow_reader(server: ByteStream) -> None:
        reader = LineReader(server, DEFAULT_MAX_LINE)
        for _ in range(count):
            line = await reader.receive_line()
            assert line is not None
            request = json.loads(line)
            arrived.append(request["params"]["n"])
            await anyio.sleep(0.005)  # slower than the calls: the transport pauses writing
            reply = {"jsonrpc": "2.0", "id": request["id"], "result": request["params"]["n"]}
            await server.send(json.dumps(reply).encode() + b"\n")
        await anyio.sleep_forever()

    stream = await serve(slow_reader)  # type: ignore[operator]
    connection = Connection(stream)
    taken: list[bool] = []
    send_nowait = connection._send_nowait
    assert send_nowait is not None

    def counted(line: bytes) -> bool:
        taken.append(send_nowait(line))
        return taken[-1]

    connection._send_nowait = counted
    results: dict[int, Any] = {}
    async with anyio.create_task_group() as tg:
        await tg.start(connection.run)

        async def call(n: int) -> None:
            results[n] = await connection.call("x.y", {"n": n, "pad": "p" * 50_000})

        for n in range(count):
            tg.start_soon(call, n)
            await anyio.lowlevel.checkpoint()
        while len(results) < count:
            await anyio.sleep(0.01)
        connection.close()
    assert arrived == list(range(count))
    assert results == {n: msgspec.Raw(str(n).encode()) for n in range(count)}
    # Both ways were taken: written directly, and queued (refused while the socket pushed
    # back, or not even tried while earlier lines waited for the writer task).
    assert any(taken)
    assert taken.count(True) < count
