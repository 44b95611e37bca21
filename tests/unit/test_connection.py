"""Connection: framing, ordering, oversized lines, stop and backpressure, over in-memory
streams, with the real methods on a real database (and the outbound bound over the daemon's
own socket channel)."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
import pytest

from convd.domain import ConversationService, EventBus
from convd.rpc import ConvListing
from convd.rpc.connection import MAX_OUTBOUND_BYTES, Connection
from convd.rpc.dispatcher import Dispatcher, Result, Success
from convd.rpc.handlers import Methods
from convd.rpc.session import Session
from convd.store import open_store
from convd.transport import LineReader
from convd.transport.channel import SocketChannel
from convd_schemas.openrpc import build_openrpc
from support import (
    MemoryByteStream,
    fixed_status,
    memory_byte_stream_pair,
    run_stream_connection,
    stream_connection,
    text_draft,
)

pytestmark = pytest.mark.anyio

MAX_LINE = 1024


@pytest.fixture
async def dispatcher(tmp_path: Path) -> AsyncIterator[Dispatcher]:
    async with open_store(tmp_path / "convd.db", listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        yield Dispatcher(Methods(service, fixed_status, build_openrpc()).table())


def _line(method: str, params: Any = None, id: Any = None) -> bytes:
    request: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        request["params"] = params
    if id is not None:
        request["id"] = id
    return json.dumps(request).encode() + b"\n"


LOGIN = _line("session.login", {"user_id": "alice"}, id="login")


class Peer:
    """The client's end of one in-memory connection."""

    def __init__(self, stream: MemoryByteStream) -> None:
        self.stream = stream
        self.reader = LineReader(stream, 1 << 24)

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def read(self) -> Any:
        with anyio.fail_after(5):
            line = await self.reader.receive_line()
        assert line is not None, "connection closed"
        return json.loads(line)

    async def read_all(self) -> list[Any]:
        """Every remaining reply, up to the connection's end."""
        replies = []
        with anyio.fail_after(5):
            while (line := await self.reader.receive_line()) is not None:
                replies.append(json.loads(line))
        return replies


class Running:
    """A connection served as the server serves it: ``run()``, then its stream is closed."""

    def __init__(
        self, channel: Any, connection: Connection, stream: MemoryByteStream, peer: Peer
    ) -> None:
        self.channel = channel
        self.connection = connection
        self.stream = stream
        self.peer = peer
        self.finished = anyio.Event()

    async def run(self) -> None:
        try:
            await run_stream_connection(self.channel, self.connection)
        finally:
            await self.stream.aclose()
            self.finished.set()


@asynccontextmanager
async def connected(
    dispatcher: Dispatcher,
    origin: str = "c1",
    max_outbound: int | None = None,
    buffer: float = math.inf,
) -> AsyncIterator[Running]:
    ours, theirs = memory_byte_stream_pair(buffer)
    channel, connection = stream_connection(
        ours, dispatcher, origin, max_line=MAX_LINE, max_outbound=max_outbound
    )
    running = Running(channel, connection, ours, Peer(theirs))
    async with ours, theirs, anyio.create_task_group() as tg:
        tg.start_soon(running.run)
        yield running
        # The client hangs up; whatever the connection was doing, it must end.
        await theirs.aclose()
        with anyio.fail_after(5):
            await running.finished.wait()


async def test_pipelined_requests_are_answered_in_order(dispatcher: Dispatcher) -> None:
    async with connected(dispatcher) as c:
        burst = [LOGIN]
        for n in range(50):
            params = {"conv_id": "b", "conv_type": 1, "draft": text_draft(f"v{n}")}
            burst.append(_line("conv.set_draft", params, n))
        burst.append(_line("conv.get", {"convs": [{"conv_id": "b", "conv_type": 1}]}, "get"))
        # All in one write: nothing waits for a reply before the next request.
        await c.peer.send(b"".join(burst))
        await c.peer.stream.send_eof()
        replies = await c.peer.read_all()
    assert [r["id"] for r in replies] == ["login", *range(50), "get"]
    assert [r["result"]["conv_draft_revision"] for r in replies[1:-1]] == list(range(1, 51))
    (b,) = replies[-1]["result"]
    assert b["conv_draft"]["draft_msg"]["message_elem_array"][0]["text_elem_content"] == "v49"


async def test_crlf_and_blank_lines(dispatcher: Dispatcher) -> None:
    async with connected(dispatcher) as c:
        await c.peer.send(
            b"\n\r\n   \n"
            + _line("daemon.status", id=1).replace(b"\n", b"\r\n")
            + b"\r\n\t\r\n\n"
            + _line("daemon.status", id=2)
        )
        await c.peer.stream.send_eof()
        replies = await c.peer.read_all()
    assert [r["id"] for r in replies] == [1, 2]
    assert all("result" in r for r in replies)


async def test_final_line_without_newline_is_answered_at_eof(dispatcher: Dispatcher) -> None:
    async with connected(dispatcher) as c:
        await c.peer.send(_line("daemon.status", id=1).rstrip(b"\n"))
        await c.peer.stream.send_eof()
        replies = await c.peer.read_all()
    assert [r["id"] for r in replies] == [1]
    assert c.finished.is_set()


async def test_oversized_line_gets_invalid_request_and_closes(dispatcher: Dispatcher) -> None:
    async with connected(dispatcher) as c, connected(dispatcher, origin="c2") as other:
        await other.peer.send(LOGIN)
        assert (await other.peer.read())["id"] == "login"
        # One write: a good request, then a line one byte too long, then one that must not run.
        await c.peer.send(
            LOGIN
            + b"x" * (MAX_LINE + 1)
            + b"\n"
            + _line("conv.create", {"conv_id": "late", "conv_type": 1}, id=2)
        )
        replies = await c.peer.read_all()  # ends: the connection closed by itself
        assert [r["id"] for r in replies] == ["login", None]
        assert replies[1]["error"]["code"] == -32600
        assert str(MAX_LINE) in replies[1]["error"]["data"]
        with anyio.fail_after(5):
            await c.finished.wait()
        # The other connection is untouched and did not see the late create.
        await other.peer.send(_line("conv.list", id=3))
        page = (await other.peer.read())["result"]
        assert page["conversation_list_result_conv_list"] == []
        assert not other.finished.is_set()
        await other.peer.stream.send_eof()
        assert await other.peer.read_all() == []


async def test_line_of_exactly_max_bytes_is_served(dispatcher: Dispatcher) -> None:
    request = _line("daemon.status", id=1).rstrip(b"\n")
    padded = request[:-1] + b" " * (MAX_LINE - len(request)) + b"}"
    assert len(padded) == MAX_LINE
    async with connected(dispatcher) as c:
        await c.peer.send(padded + b"\n")
        await c.peer.stream.send_eof()
        replies = await c.peer.read_all()
    assert [r["id"] for r in replies] == [1] and "result" in replies[0]


async def test_stop_while_idle_closes_promptly(dispatcher: Dispatcher) -> None:
    async with connected(dispatcher) as c:
        await c.peer.send(LOGIN)
        assert (await c.peer.read())["id"] == "login"
        c.connection.stop()
        with anyio.fail_after(5):
            await c.finished.wait()
        assert await c.peer.read_all() == []


async def test_stop_lets_the_request_in_progress_finish() -> None:
    started, release = anyio.Event(), anyio.Event()
    calls: list[str] = []

    async def slow(session: Session, params: msgspec.Raw) -> Result:
        calls.append("slow")
        started.set()
        await release.wait()
        return Success("finished")

    async def quick(session: Session, params: msgspec.Raw) -> Result:
        calls.append("quick")
        return Success("quick")

    async with connected(Dispatcher({"slow": slow, "quick": quick})) as c:
        await c.peer.send(_line("slow", id=1))
        with anyio.fail_after(5):
            await started.wait()
        c.connection.stop()
        await c.peer.send(_line("quick", id=2))  # arrives after stop: never run
        await anyio.sleep(0.05)
        assert not c.finished.is_set()  # still waiting for the request in progress
        release.set()
        replies = await c.peer.read_all()
    assert replies == [{"jsonrpc": "2.0", "result": "finished", "id": 1}]
    assert calls == ["slow"]


async def test_peer_going_away_ends_the_connection(dispatcher: Dispatcher) -> None:
    async with connected(dispatcher) as c:
        await c.peer.send(LOGIN)
        await c.peer.stream.aclose()
        with anyio.fail_after(5):
            await c.finished.wait()


async def test_full_outbox_disconnects_a_client_that_does_not_read(
    dispatcher: Dispatcher,
) -> None:
    # buffer=0: nothing reaches the client until it reads, and it never does.
    async with connected(dispatcher, max_outbound=16, buffer=0) as c:
        await anyio.lowlevel.checkpoint()
        for n in range(10):
            c.connection.session.push(b'{"n":%d}\n' % n)
        with anyio.fail_after(5):
            await c.finished.wait()
    assert c.connection.cut_reason is not None
    assert "not reading" in c.connection.cut_reason


class _LargeReply:
    """Stands in for the dispatcher: answers every line with one reply of ``size`` bytes."""

    def __init__(self, size: int) -> None:
        head, tail = b'{"jsonrpc":"2.0","id":1,"result":"', b'"}\n'
        self.reply = head + b"x" * (size - len(head) - len(tail)) + tail

    async def dispatch(self, line: bytes, session: Session) -> bytes:
        return self.reply


_EVENT = b'{"jsonrpc":"2.0","method":"conv.event","params":{"pad":"' + b"y" * 950 + b'"}}\n'


@asynccontextmanager
async def _over_a_socket(reply_size: int) -> AsyncIterator[tuple[Connection, socket.socket]]:
    """The daemon's own channel (SocketChannel, its 1 MiB high-water mark) on one end of a
    socket pair, and the client's end, which has asked for a reply of ``reply_size`` bytes
    and read nothing yet."""
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    channel = SocketChannel(MAX_LINE)
    await loop.connect_accepted_socket(lambda: channel, ours)
    connection = Connection(channel, _LargeReply(reply_size), "c1")  # type: ignore[arg-type]
    theirs.setblocking(False)
    with theirs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(connection.run)
            theirs.send(b'{"jsonrpc":"2.0","method":"m","id":1}\n')
            with anyio.fail_after(5):
                while channel.queued_bytes() == 0:
                    await anyio.sleep(0.001)
            yield connection, theirs
            tg.cancel_scope.cancel()


async def _read(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = bytearray()
    with anyio.fail_after(10):
        while len(data) < size:
            chunk = await loop.sock_recv(sock, min(1 << 16, size - len(data)))
            assert chunk, "connection closed"
            data += chunk
    return bytes(data)


@pytest.mark.parametrize("reply_size", [1_200_000, 3_000_000])
async def test_events_up_to_the_bound_wait_behind_a_large_reply(reply_size: int) -> None:
    # A reply just past the bound (the kernel takes some of it, the rest stays below the
    # high-water mark: its send does not wait), and one far past it (its send waits): either
    # way, up to MAX_OUTBOUND_BYTES of events queue behind it, and the client gets it all.
    async with _over_a_socket(reply_size) as (connection, client):
        events = (MAX_OUTBOUND_BYTES - 64 * 1024) // len(_EVENT)
        for _ in range(events):
            connection.session.push(_EVENT)
        assert connection.cut_reason is None
        assert await _read(client, reply_size) == _LargeReply(reply_size).reply
        assert await _read(client, events * len(_EVENT)) == _EVENT * events


async def test_a_client_that_stops_reading_after_a_large_reply_is_cut_at_the_bound() -> None:
    # Once the reply has been read, it no longer counts: what queues after it is bounded,
    # events that came while the client read it included (they keep the channel's buffer
    # above its low-water mark, so the reply's send is still waiting).
    async with _over_a_socket(3_000_000) as (connection, client):
        pushed = 0
        while pushed < 500_000:
            connection.session.push(_EVENT)
            pushed += len(_EVENT)
        await _read(client, 3_000_000)
        while connection.cut_reason is None:
            connection.session.push(_EVENT)
            pushed += len(_EVENT)
            assert pushed < 4 * MAX_OUTBOUND_BYTES, "never cut"
        assert "not reading" in connection.cut_reason
        # The bound, and what the kernel's socket buffers hold.
        assert pushed < MAX_OUTBOUND_BYTES + 1024 * 1024


async def test_notification_never_waits_while_there_is_room(dispatcher: Dispatcher) -> None:
    async with connected(dispatcher, max_outbound=16) as c:
        c.connection.session.push(b'{"jsonrpc":"2.0","method":"x","params":{}}\n')
        assert (await c.peer.read())["method"] == "x"
        await c.peer.stream.send_eof()
        assert await c.peer.read_all() == []
    assert c.connection.cut_reason is None


async def test_the_daemons_channel_reads_ahead_a_bounded_number_of_bytes() -> None:
    """Lines the handler has not taken yet are bounded in bytes, not only in number: 64
    lines of up to max_line bytes each would otherwise be held for each connection."""
    limit = 64 * 1024  # the line limit: small, to keep the test quick
    count = 40  # well under the 64 lines read ahead at most
    line = b"x" * (limit - 1) + b"\n"
    ours, theirs = socket.socketpair()
    channel = SocketChannel(limit)
    transport, _ = await asyncio.get_running_loop().connect_accepted_socket(lambda: channel, ours)
    sender = threading.Thread(target=theirs.sendall, args=(line * count,))
    sender.start()
    try:
        with anyio.fail_after(10):
            while not channel._reading_paused:  # the handler takes nothing meanwhile
                await anyio.sleep(0.005)
        await anyio.sleep(0.05)
        # The limit, plus what one read brought (the event loops read up to 256 KiB at once).
        assert channel._line_bytes < 2 * limit + 256 * 1024
        assert len(channel._splitter.lines) < count
        # It reads on as the lines are taken: every line arrives, whole.
        with anyio.fail_after(10):
            for _ in range(count):
                assert await channel.receive_line() == line[:-1]
    finally:
        sender.join(10)
        transport.close()
        theirs.close()
