"""PipeStream, the anyio byte stream over a pipe's overlapped reads and writes, and the daemon's
Channel on top of it, over the in-memory pipe of tests/pipe_support.py."""

from __future__ import annotations

import anyio
import pytest

from convd.transport import StreamChannel
from convd_schemas.framing import LineTooLong
from convd_schemas.winpipe import PipeAttribute, PipeStream
from pipe_support import USER, connected_pair

pytestmark = pytest.mark.anyio


async def test_bytes_go_both_ways_and_the_peer_is_known() -> None:
    a, b = connected_pair()
    left, right = PipeStream(a, peer_pid=42, peer_sid=USER), PipeStream(b)
    await left.send(b"hello")
    assert await right.receive() == b"hello"
    await right.send(b"back")
    assert await left.receive() == b"back"
    assert left.extra(PipeAttribute.peer_pid) == 42
    assert left.extra(PipeAttribute.peer_sid) == USER
    assert right.extra(PipeAttribute.peer_pid, None) is None
    await left.aclose()
    await right.aclose()


async def test_receive_takes_at_most_max_bytes() -> None:
    a, b = connected_pair()
    left, right = PipeStream(a), PipeStream(b)
    await left.send(b"0123456789")
    assert await right.receive(4) == b"0123"
    assert await right.receive() == b"456789"


async def test_the_peer_closing_is_end_of_stream_after_its_data() -> None:
    a, b = connected_pair()
    left, right = PipeStream(a), PipeStream(b)
    await left.send(b"last words")
    await left.aclose()
    assert await right.receive() == b"last words"
    with pytest.raises(anyio.EndOfStream):
        await right.receive()
    # Writing to a pipe whose other end is gone: broken, not closed.
    with pytest.raises(anyio.BrokenResourceError):
        await right.send(b"anyone?")


async def test_after_aclose_this_side_is_closed() -> None:
    a, _b = connected_pair()
    left = PipeStream(a)
    await left.aclose()
    await left.aclose()  # idempotent
    assert a.closed
    with pytest.raises(anyio.ClosedResourceError):
        await left.receive()
    with pytest.raises(anyio.ClosedResourceError):
        await left.send(b"x")


async def test_aclose_ends_a_pending_receive_as_closed() -> None:
    a, _b = connected_pair()
    left = PipeStream(a)
    outcome: list[type[BaseException]] = []

    async def reader() -> None:
        try:
            await left.receive()
        except Exception as exc:
            outcome.append(type(exc))

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.wait_all_tasks_blocked()
        await left.aclose()
    assert outcome == [anyio.ClosedResourceError]


async def test_a_failed_read_is_a_broken_stream() -> None:
    a, _b = connected_pair()
    left = PipeStream(a)

    async def failing_read(max_bytes: int) -> bytes:
        raise ConnectionResetError("the network name is no longer available")

    a.read = failing_read  # type: ignore[method-assign]
    with pytest.raises(anyio.BrokenResourceError):
        await left.receive()


async def test_partial_writes_are_continued_until_all_is_sent() -> None:
    a, b = connected_pair()
    a.write_limit = 3
    left, right = PipeStream(a), PipeStream(b)
    await left.send(b"abcdefgh")
    assert a.written == [b"abc", b"def", b"gh"]
    received = b""
    while len(received) < 8:
        received += await right.receive()
    assert received == b"abcdefgh"


async def test_a_write_that_takes_nothing_is_a_broken_stream() -> None:
    a, _b = connected_pair()
    left = PipeStream(a)

    async def zero_write(data: bytes) -> int:
        return 0

    a.write = zero_write  # type: ignore[method-assign]
    with pytest.raises(anyio.BrokenResourceError):
        await left.send(b"x")


async def test_one_receiver_and_one_sender_at_a_time() -> None:
    a, _b = connected_pair(capacity=1)
    left = PipeStream(a)
    async with anyio.create_task_group() as tg:
        tg.start_soon(left.receive)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(anyio.BusyResourceError):
            await left.receive()
        await left.send(b"fills the one-byte buffer")
        tg.start_soon(left.send, b"waits for the reader")
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(anyio.BusyResourceError):
            await left.send(b"y")
        tg.cancel_scope.cancel()


async def test_a_pipe_cannot_be_half_closed() -> None:
    a, _b = connected_pair()
    with pytest.raises(NotImplementedError):
        await PipeStream(a).send_eof()


async def test_the_daemons_channel_over_a_pipe() -> None:
    # What the named-pipe listener hands the rpc layer: a StreamChannel over a PipeStream.
    a, b = connected_pair(capacity=16)
    client = PipeStream(b)
    channel = StreamChannel(PipeStream(a), max_line=32)
    async with anyio.create_task_group() as tg:
        tg.start_soon(channel.write_queued)
        await client.send(b'{"id":1}\r\n{"id":2}\n')
        assert await channel.receive_line() == b'{"id":1}'
        assert await channel.receive_line() == b'{"id":2}'
        # More than the pipe's buffer: it goes out as the client reads.
        channel.send(b"x" * 40 + b"\n")
        received = b""
        while not received.endswith(b"\n"):
            received += await client.receive()
        assert received == b"x" * 40 + b"\n"
        await client.send(b"y" * 40 + b"\n")
        with pytest.raises(LineTooLong):
            await channel.receive_line()
        channel.close()
    # The writer closed the pipe once the queue was sent.
    assert a.closed
    with pytest.raises(anyio.EndOfStream):
        await client.receive()


async def test_the_channel_sees_a_vanished_client_as_the_end() -> None:
    a, b = connected_pair()
    channel = StreamChannel(PipeStream(a), max_line=32)
    async with anyio.create_task_group() as tg:
        tg.start_soon(channel.write_queued)
        b.close()
        assert await channel.receive_line() is None
        channel.send(b"into the void\n")  # dropped, without an error
        channel.abort()
    assert a.closed
