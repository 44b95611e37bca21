"""The transport-free connection core and the framing, driven through in-memory streams."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import msgspec
import pytest
from anyio.abc import ByteStream

from convd_client._connection import Connection
from convd_client._framing import DEFAULT_MAX_LINE, LineReader, LineTooLong
from convd_client.errors import (
    ConnectionLost,
    ConvdError,
    InvalidParameters,
    NotLoggedIn,
    RequestTimeout,
    RevisionConflict,
    SeqTooOld,
)
from support import MemoryByteStream, memory_byte_stream_pair

pytestmark = pytest.mark.anyio


def stream_pair() -> tuple[MemoryByteStream, MemoryByteStream]:
    return memory_byte_stream_pair(100)


class FakeDaemon:
    """The server end: reads requests and answers however the test likes."""

    def __init__(self, stream: MemoryByteStream) -> None:
        self.stream = stream
        self.reader = LineReader(stream, DEFAULT_MAX_LINE)

    async def request(self) -> dict[str, Any]:
        line = await self.reader.receive_line()
        assert line is not None
        message: dict[str, Any] = json.loads(line)
        return message

    async def send(self, message: Any) -> None:
        await self.stream.send(json.dumps(message).encode() + b"\n")

    async def reply(self, request_id: Any, result: Any) -> None:
        await self.send({"jsonrpc": "2.0", "id": request_id, "result": result})

    async def fail(self, request_id: Any, code: int, message: str, data: Any = None) -> None:
        error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        await self.send({"jsonrpc": "2.0", "id": request_id, "error": error})

    async def notify(self, method: str, params: Any) -> None:
        await self.send({"jsonrpc": "2.0", "method": method, "params": params})


@asynccontextmanager
async def connected(
    notifications: list[tuple[str, Any]] | None = None, max_line: int = 1 << 20
) -> AsyncIterator[tuple[Connection, FakeDaemon]]:
    client_end, server_end = stream_pair()

    def on_notification(method: str, params: msgspec.Raw) -> None:
        if notifications is not None:
            notifications.append((method, msgspec.json.decode(params)))

    connection = Connection(
        client_end, on_notification=on_notification, socket_path="/x/convd.sock", max_line=max_line
    )
    async with server_end, anyio.create_task_group() as tg:
        await tg.start(connection.run)
        try:
            yield connection, FakeDaemon(server_end)
        finally:
            connection.close()


async def test_a_response_is_matched_to_its_call_by_id() -> None:
    async with connected() as (connection, daemon), anyio.create_task_group() as tg:

        async def serve() -> None:
            request = await daemon.request()
            assert request == {
                "jsonrpc": "2.0",
                "method": "conv.list",
                "params": {"count": 5},
                "id": request["id"],
            }
            await daemon.reply(request["id"], {"ok": True})

        tg.start_soon(serve)
        raw = await connection.call("conv.list", {"count": 5}, timeout=5)
        assert msgspec.json.decode(raw) == {"ok": True}


async def test_params_may_be_a_struct_or_absent() -> None:
    class Params(msgspec.Struct):
        conv_id: str
        if_revision: int | msgspec.UnsetType = msgspec.UNSET

    async with connected() as (connection, daemon), anyio.create_task_group() as tg:
        seen: list[dict[str, Any]] = []

        async def serve() -> None:
            for _ in range(2):
                request = await daemon.request()
                seen.append(request)
                await daemon.reply(request["id"], None)

        tg.start_soon(serve)
        await connection.call("a", Params(conv_id="x"), timeout=5)
        await connection.call("b", timeout=5)
    assert seen[0]["params"] == {"conv_id": "x"}  # UNSET members are left out
    assert "params" not in seen[1]


async def test_a_string_that_is_not_unicode_is_refused_before_sending() -> None:
    async with connected() as (connection, daemon), anyio.create_task_group() as tg:

        async def serve() -> None:
            request = await daemon.request()
            assert request["method"] == "after"
            await daemon.reply(request["id"], {"ok": True})

        tg.start_soon(serve)
        with pytest.raises(InvalidParameters) as refused:
            await connection.call("conv.set_draft", {"text": "emoji cut \ud83d"}, timeout=5)
        assert refused.value.code == 6017
        assert "not valid Unicode" in refused.value.description
        # Nothing was sent of it, and the connection goes on.
        assert msgspec.json.decode(await connection.call("after", timeout=5)) == {"ok": True}


async def test_out_of_order_responses_reach_the_right_callers() -> None:
    results: dict[str, Any] = {}
    async with connected() as (connection, daemon), anyio.create_task_group() as tg:

        async def call(name: str) -> None:
            raw = await connection.call(name, timeout=5)
            results[name] = msgspec.json.decode(raw)

        for name in ("first", "second", "third"):
            tg.start_soon(call, name)
        requests = [await daemon.request() for _ in range(3)]
        # Answer in reverse order.
        for request in reversed(requests):
            await daemon.reply(request["id"], f"answer to {request['method']}")
    assert results == {name: f"answer to {name}" for name in ("first", "second", "third")}


async def test_requests_are_sent_in_call_order_with_distinct_ids() -> None:
    async with connected() as (connection, daemon), anyio.create_task_group() as tg:
        for index in range(20):
            tg.start_soon(partial(connection.call, f"m{index}", timeout=5))
        requests = [await daemon.request() for _ in range(20)]
        for request in requests:
            await daemon.reply(request["id"], None)
    assert [r["method"] for r in requests] == [f"m{i}" for i in range(20)]
    assert len({r["id"] for r in requests}) == 20


class DirectStream(ByteStream):
    """A stream that also takes a write at once (as the asyncio transport does), except when
    told to refuse the next ones (the socket pushing back); records every write in order."""

    def __init__(self, refuse: int) -> None:
        self.refuse = refuse
        self.written: list[bytes] = []

    def send_nowait(self, data: bytes) -> bool:
        if self.refuse:
            self.refuse -= 1
            return False
        self.written.append(data)
        return True

    async def send(self, item: bytes) -> None:
        self.written.append(item)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await anyio.sleep_forever()
        raise AssertionError

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize("refuse", [0, 1, 3])
async def test_a_request_never_overtakes_one_waiting_for_the_writer_task(refuse: int) -> None:
    stream = DirectStream(refuse)
    connection = Connection(stream)
    async with anyio.create_task_group() as tg:
        await tg.start(connection.run)

        async def call(method: str) -> None:
            with pytest.raises(ConnectionLost):  # never answered: closed at the end
                await connection.call(method, timeout=5)

        for index in range(6):  # all in one loop turn: refused ones wait for the writer task
            tg.start_soon(call, f"m{index}")
        while len(b"".join(stream.written).splitlines()) < 6:
            await anyio.sleep(0.001)
        connection.close()
    methods = [json.loads(line)["method"] for line in b"".join(stream.written).splitlines()]
    assert methods == [f"m{i}" for i in range(6)]
    if not refuse:
        assert len(stream.written) == 6  # each written by its call, none by the writer task


async def test_notifications_are_routed_to_the_handler_in_order() -> None:
    notifications: list[tuple[str, Any]] = []
    async with connected(notifications) as (connection, daemon), anyio.create_task_group() as tg:

        async def serve() -> None:
            request = await daemon.request()
            await daemon.notify("conv.event", {"seq": 1})
            await daemon.notify("conv.event", {"seq": 2})
            await daemon.reply(request["id"], "done")
            await daemon.notify("other.thing", [1, 2])

        tg.start_soon(serve)
        assert msgspec.json.decode(await connection.call("x", timeout=5)) == "done"
        with anyio.fail_after(5):
            while len(notifications) < 3:
                await anyio.sleep(0.01)
    assert notifications == [
        ("conv.event", {"seq": 1}),
        ("conv.event", {"seq": 2}),
        ("other.thing", [1, 2]),
    ]


async def test_a_failing_notification_handler_does_not_stop_the_reader() -> None:
    client_end, server_end = stream_pair()
    daemon = FakeDaemon(server_end)

    def on_notification(method: str, params: msgspec.Raw) -> None:
        raise RuntimeError("listener bug")

    connection = Connection(client_end, on_notification=on_notification)
    async with server_end, anyio.create_task_group() as tg:
        await tg.start(connection.run)

        async def serve() -> None:
            request = await daemon.request()
            await daemon.notify("conv.event", {})
            await daemon.reply(request["id"], 7)

        tg.start_soon(serve)
        assert msgspec.json.decode(await connection.call("x", timeout=5)) == 7
        connection.close()


async def test_error_responses_raise_the_matching_error_class() -> None:
    conv = {
        "conv_id": "bob",
        "conv_type": 1,
        "conv_active_time": 3,
        "conv_is_has_draft": False,
        "conv_is_pinned": False,
        "conv_draft_revision": 4,
    }
    async with connected() as (connection, daemon), anyio.create_task_group() as tg:

        async def serve() -> None:
            request = await daemon.request()
            await daemon.fail(request["id"], 6014, "Not logged in")
            request = await daemon.request()
            await daemon.fail(request["id"], 90001, "conflict", conv)
            request = await daemon.request()
            await daemon.fail(request["id"], 90003, "too old", {"oldest_seq": 5, "current_seq": 9})
            request = await daemon.request()
            await daemon.fail(request["id"], 12345, "something else")

        tg.start_soon(serve)
        with pytest.raises(NotLoggedIn) as not_logged_in:
            await connection.call("conv.list", timeout=5)
        assert not_logged_in.value.code == 6014
        with pytest.raises(RevisionConflict) as conflict:
            await connection.call("conv.set_draft", timeout=5)
        assert conflict.value.current is not None
        assert conflict.value.current.conv_id == "bob"
        assert conflict.value.current_revision == 4
        with pytest.raises(SeqTooOld) as too_old:
            await connection.call("conv.subscribe", timeout=5)
        assert (too_old.value.oldest_seq, too_old.value.current_seq) == (5, 9)
        with pytest.raises(ConvdError) as other:
            await connection.call("x", timeout=5)
        assert type(other.value) is ConvdError
        assert (other.value.code, other.value.message, other.value.data) == (
            12345,
            "something else",
            None,
        )


async def test_a_call_times_out_and_a_late_response_is_dropped() -> None:
    async with connected() as (connection, daemon):
        with pytest.raises(RequestTimeout) as timed_out:
            await connection.call("slow", timeout=0.05)
        assert timed_out.value.method == "slow"
        assert isinstance(timed_out.value, TimeoutError)
        late = await daemon.request()
        assert connection.pending_calls == 0
        async with anyio.create_task_group() as tg:

            async def serve() -> None:
                await daemon.reply(late["id"], "too late")
                request = await daemon.request()
                await daemon.reply(request["id"], "fresh")

            tg.start_soon(serve)
            assert msgspec.json.decode(await connection.call("next", timeout=5)) == "fresh"


async def test_connection_loss_fails_pending_calls_at_once() -> None:
    async with connected() as (connection, daemon):
        failures: list[BaseException] = []

        async def call() -> None:
            try:
                await connection.call("waits", timeout=30)
            except ConnectionLost as exc:
                failures.append(exc)

        with anyio.fail_after(2):  # far below the calls' own timeout
            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                tg.start_soon(call)
                await daemon.request()
                await daemon.request()
                await daemon.stream.aclose()  # the daemon goes away
        assert len(failures) == 2
        assert all("/x/convd.sock" in str(exc) for exc in failures)
        assert connection.closed
        with anyio.fail_after(1), pytest.raises(ConnectionLost):
            await connection.call("after", timeout=30)


async def test_close_fails_pending_calls_with_the_given_error() -> None:
    async with connected() as (connection, daemon):

        class Closed(ConnectionLost):
            pass

        async def close_soon() -> None:
            await daemon.request()
            connection.close(lambda: Closed("/x", "closing"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(close_soon)
            with pytest.raises(Closed):
                await connection.call("x", timeout=30)
        await connection.wait_closed()


async def test_an_oversized_line_closes_the_connection() -> None:
    async with connected(max_line=64) as (connection, daemon), anyio.create_task_group() as tg:

        async def serve() -> None:
            request = await daemon.request()
            await daemon.reply(request["id"], "x" * 200)

        tg.start_soon(serve)
        with anyio.fail_after(2), pytest.raises(ConnectionLost) as lost:
            await connection.call("big", timeout=30)
        assert "exceeds 64 bytes" in str(lost.value)


async def test_garbage_lines_and_unknown_ids_are_ignored() -> None:
    async with connected() as (connection, daemon), anyio.create_task_group() as tg:

        async def serve() -> None:
            request = await daemon.request()
            await daemon.stream.send(b"this is not json\n\n[1,2]\n")
            await daemon.reply(999, "nobody asked")
            await daemon.send(
                {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "x"}}
            )
            await daemon.send({"jsonrpc": "2.0", "id": 5, "method": "server.request"})
            await daemon.reply(request["id"], "the answer")

        tg.start_soon(serve)
        assert msgspec.json.decode(await connection.call("q", timeout=5)) == "the answer"


# -- framing -----------------------------------------------------------------------------------


async def test_line_reader_splits_lines_across_and_within_chunks() -> None:
    client_end, server_end = stream_pair()
    async with client_end, server_end:
        await _split_lines(client_end, server_end)


async def _split_lines(client_end: MemoryByteStream, server_end: MemoryByteStream) -> None:
    reader = LineReader(client_end, max_line=100)
    await server_end.send(b"one\r\ntw")
    await server_end.send(b"o\nthree\nfour")
    await server_end.send_eof()
    assert [await reader.receive_line() for _ in range(5)] == [
        b"one",
        b"two",
        b"three",
        b"four",
        None,
    ]


async def test_line_reader_enforces_the_bound_within_one_chunk() -> None:
    client_end, server_end = stream_pair()
    async with client_end, server_end:
        reader = LineReader(client_end, max_line=10)
        await server_end.send(b"0123456789\n" + b"x" * 11 + b"\n")
        assert await reader.receive_line() == b"0123456789"
        with pytest.raises(LineTooLong):
            await reader.receive_line()


async def test_line_reader_enforces_the_bound_without_a_newline() -> None:
    client_end, server_end = stream_pair()
    async with client_end, server_end:
        reader = LineReader(client_end, max_line=10)
        await server_end.send(b"x" * 6)
        await server_end.send(b"x" * 6)
        with pytest.raises(LineTooLong):
            await reader.receive_line()
