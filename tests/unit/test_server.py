"""The server over the daemon's own Unix listener: the shutdown grace bounds the stop whole, and
the connections served at once are bounded."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from convd.domain import ConversationService, EventBus
from convd.rpc import ConvListing
from convd.rpc.server import RpcServer
from convd.store import open_store
from convd.transport.channel import UnixChannelListener
from convd.transport.unix import bind_unix_listener
from convd_schemas.limits import MAX_LINE_BYTES
from convd_schemas.openrpc import build_openrpc
from support import short_tmpdir

pytestmark = pytest.mark.anyio

GRACE = 0.3


@asynccontextmanager
async def _server_and_listener(
    tmp_path: Path, **options: Any
) -> AsyncIterator[tuple[RpcServer, UnixChannelListener, Path]]:
    """An RpcServer on a real store, and the daemon's own Unix listener on a short path (not
    served yet: the test starts ``serve`` in its own task group)."""
    with short_tmpdir() as root:
        path = root / "convd.sock"
        async with open_store(tmp_path / "convd.db", listing=ConvListing()) as store:
            server = RpcServer(
                ConversationService(store, EventBus()),
                build_openrpc,
                socket_path=path,
                database_path=tmp_path / "convd.db",
                **options,
            )
            async with bind_unix_listener(path) as raw:
                yield (
                    server,
                    UnixChannelListener(raw, max_line=MAX_LINE_BYTES, uid=os.getuid()),
                    path,
                )


async def test_a_client_that_reads_nothing_holds_the_stop_no_longer_than_the_grace(
    tmp_path: Path,
) -> None:
    """Its replies queue up unread; once the grace is over it is dropped, not given the
    channel's own flush time (5 s) on top."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        async with _server_and_listener(tmp_path, grace=GRACE) as (server, listener, path):
            async with anyio.create_task_group() as tg:
                await tg.start(server.serve, listener)
                client.connect(str(path))
                # Replies of ~100 KB each (the OpenRPC document), none of them read.
                request = {"jsonrpc": "2.0", "method": "rpc.discover", "id": 1}
                client.sendall((json.dumps(request) + "\n").encode() * 40)
                with anyio.fail_after(10):
                    while not any(c._channel.queued_bytes() for c in list(server._connections)):
                        await anyio.sleep(0.01)
                started = time.monotonic()
                server.stop()
            stopped_after = time.monotonic() - started  # serve has returned
    finally:
        client.close()
    # Under the grace plus the channel's 5 s flush, which the stop took before.
    assert stopped_after < GRACE + 2.5, stopped_after


def _status(client: socket.socket) -> dict[str, object]:
    client.sendall(b'{"jsonrpc":"2.0","method":"daemon.status","id":1}\n')
    with client.makefile("rb") as reader:
        reply: dict[str, object] = json.loads(reader.readline())
    return reply


async def test_connections_past_the_limit_are_closed_until_some_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One client cannot use up the daemon's file descriptors: past max_connections, a new
    connection is closed at once (logged once), and served again once others have ended."""
    clients: list[socket.socket] = []
    try:
        async with (
            _server_and_listener(tmp_path, max_connections=2) as (server, listener, path),
            anyio.create_task_group() as tg,
        ):
            await tg.start(server.serve, listener)
            for _ in range(4):
                clients.append(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
                clients[-1].settimeout(5)
                clients[-1].connect(str(path))
            served = await anyio.to_thread.run_sync(
                lambda: ["result" in _status(c) for c in clients[:2]]
            )
            assert served == [True, True]
            for refused in clients[2:]:  # closed without a byte
                assert await anyio.to_thread.run_sync(refused.recv, 1) == b""
            clients[0].close()
            with anyio.fail_after(5):
                while len(server._connections) > 1:
                    await anyio.sleep(0.01)
            clients.append(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
            clients[-1].settimeout(5)
            clients[-1].connect(str(path))
            assert "result" in await anyio.to_thread.run_sync(_status, clients[-1])
            server.stop()
    finally:
        for client in clients:
            client.close()
    refusals = [r for r in caplog.records if "the most convd serves at once" in r.getMessage()]
    assert len(refusals) == 1


def test_accept_failures_are_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    """asyncio logs a traceback for every accept() that finds no descriptor left, up to a
    hundred per wake-up; the daemon's handler says it once a minute, and passes on the rest."""
    from convd.app import _AcceptFailures

    class Loop:
        def __init__(self) -> None:
            self.passed: list[dict[str, object]] = []

        def default_exception_handler(self, context: dict[str, object]) -> None:
            self.passed.append(context)

    loop, handler = Loop(), _AcceptFailures()
    failure = {
        "message": "socket.accept() out of system resource",
        "exception": OSError(24, "Too many open files"),
    }
    with caplog.at_level(logging.ERROR, logger="convd.app"):
        for _ in range(300):
            handler(loop, failure)  # type: ignore[arg-type]
        handler(loop, {"message": "something else"})  # type: ignore[arg-type]
    lines = [r.getMessage() for r in caplog.records if "cannot accept" in r.getMessage()]
    assert lines == [
        "cannot accept connections: [Errno 24] Too many open files (0 more since "
        "the last such line); convd retries"
    ]
    assert loop.passed == [{"message": "something else"}]
