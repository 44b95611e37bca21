"""The server's stop over the daemon's own Unix listener: the shutdown grace bounds it whole."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

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


async def test_a_client_that_reads_nothing_holds_the_stop_no_longer_than_the_grace(
    tmp_path: Path,
) -> None:
    """Its replies queue up unread; once the grace is over it is dropped, not given the
    channel's own flush time (5 s) on top."""
    with short_tmpdir() as root:
        path = root / "convd.sock"
        async with open_store(tmp_path / "convd.db", listing=ConvListing()) as store:
            server = RpcServer(
                ConversationService(store, EventBus()),
                build_openrpc,
                socket_path=path,
                database_path=tmp_path / "convd.db",
                grace=GRACE,
            )
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            try:
                async with bind_unix_listener(path) as raw:
                    listener = UnixChannelListener(raw, max_line=MAX_LINE_BYTES, uid=os.getuid())
                    async with anyio.create_task_group() as tg:
                        await tg.start(server.serve, listener)
                        client.connect(str(path))
                        # Replies of ~100 KB each (the OpenRPC document), none of them read.
                        request = {"jsonrpc": "2.0", "method": "rpc.discover", "id": 1}
                        client.sendall((json.dumps(request) + "\n").encode() * 40)
                        with anyio.fail_after(10):
                            while not any(
                                c._channel.queued_bytes() for c in list(server._connections)
                            ):
                                await anyio.sleep(0.01)
                        started = time.monotonic()
                        server.stop()
                    stopped_after = time.monotonic() - started  # serve has returned
            finally:
                client.close()
    # Under the grace plus the channel's 5 s flush, which the stop took before.
    assert stopped_after < GRACE + 2.5, stopped_after
